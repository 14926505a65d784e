#include "ReferenceENNElectrostatics.h"
#include "ReferenceENNNeighbors.h"
#include "ReferenceENNPME.h"
#include "openmmenn/ENNModel.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cmath>

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::vector;

ENNCouplingParameters::ENNCouplingParameters(const OpenMM::System& system, const ENNForce& force)
    : method(force.getElectrostaticsMethod()), cutoff(force.getCutoffDistance()), implicitSolvent(force.getUseImplicitSolvent()) {
    const ENNModel& model = force.getModel();
    numML = force.getNumParticles();
    std::map<int, int> siteOf;
    for (int i = 0; i < numML; i++) {
        int particle, z;
        force.getParticleParameters(i, particle, z);
        siteOf[particle] = static_cast<int>(sites.size());
        sites.push_back(particle);
    }
    for (int i = 0; i < force.getNumMMParticles(); i++) {
        int particle;
        double charge;
        force.getMMParticleParameters(i, particle, charge);
        if (siteOf.count(particle))
            throw OpenMM::OpenMMException("ENNForce: particle " + std::to_string(particle) +
                                          (siteOf[particle] < numML ? " is both an ML and an MM particle" : " is listed twice as an MM particle"));
        siteOf[particle] = static_cast<int>(sites.size());
        sites.push_back(particle);
        mmCharges.push_back(charge);
    }
    // The model's energy decides what ML-ML pairs get (docs/electrostatics.md, the bookkeeping table):
    // with its own Coulomb term they are ordinary pairs of the chosen method (an uncoupled force then
    // sums that term itself, as NoCutoff); without it they are excluded in every method.
    const bool modelCoulomb = force.includesCoulombTerm();
    mlPairsExcluded = !modelCoulomb;
    if (modelCoulomb && method == ENNForce::NoElectrostatics) {
        if (force.usesPeriodicBoundaryConditions())
            throw OpenMM::OpenMMException("ENNForce: the model's energy includes the Coulomb energy of its charges and the force is "
                                          "periodic; choose how that sum is done with setElectrostaticsMethod (PME or CutoffPeriodic)");
        method = ENNForce::NoCutoff;
    }
    for (int e = 0; e < force.getNumElectrostaticExceptions(); e++) {
        int p1, p2;
        double scale;
        force.getElectrostaticExceptionParameters(e, p1, p2, scale);
        auto a = siteOf.find(p1), b = siteOf.find(p2);
        if (a == siteOf.end() || b == siteOf.end() || (a->second >= numML && b->second >= numML))
            throw OpenMM::OpenMMException("ENNForce: electrostatic exception " + std::to_string(p1) + "-" + std::to_string(p2) +
                                          " must join an ML particle to an ML or MM particle of this force");
        if (a->second < numML && b->second < numML) {
            // ML-ML pairs are the model's: already excluded without its Coulomb term (an exception there,
            // as Systems coupled by earlier versions hold, changes nothing), fixed by it otherwise.
            if (modelCoulomb)
                throw OpenMM::OpenMMException("ENNForce: electrostatic exception " + std::to_string(p1) + "-" + std::to_string(p2) +
                                              " joins two ML particles, whose Coulomb energy the model declares itself");
            continue;
        }
        exceptionScale[{std::min(a->second, b->second), std::max(a->second, b->second)}] = scale;
    }
    if (modelCoulomb && model.chargeGaussianSigma > 0) {
        gaussianSigma = model.chargeGaussianSigma * model.lengthToNm;
        if (model.chargeGaussianSelfEnergy)
            gaussianSelfEnergy = 1.0 / (gaussianSigma * std::sqrt(2 * M_PI));
    }
    if (method == ENNForce::CutoffNonPeriodic || method == ENNForce::CutoffPeriodic) {
        const double eps = force.getReactionFieldDielectric();
        if (!(eps > 0))
            throw OpenMM::OpenMMException("ENNForce: the reaction-field dielectric must be positive");
        krf = std::pow(cutoff, -3.0) * (eps - 1.0) / (2.0 * eps + 1.0);
        crf = (1.0 / cutoff) * (3.0 * eps) / (2.0 * eps + 1.0);
    }
    if (method == ENNForce::PME) {
        int nx, ny, nz;
        force.getPMEParameters(alpha, nx, ny, nz);
        grid[0] = nx;
        grid[1] = ny;
        grid[2] = nz;
        if (alpha == 0.0) {
            Vec3 box[3];
            system.getDefaultPeriodicBoxVectors(box[0], box[1], box[2]);
            choosePMEParameters(cutoff, force.getEwaldErrorTolerance(), box, alpha, grid);
        }
        if (grid[0] < 5 || grid[1] < 5 || grid[2] < 5)
            throw OpenMM::OpenMMException("ENNForce: PME grid dimensions must be at least 5 (the B-spline order)");
    }
    if (method != ENNForce::NoElectrostatics && method != ENNForce::NoCutoff && !(cutoff > 0))
        throw OpenMM::OpenMMException("ENNForce: the cutoff distance must be positive");
    if (implicitSolvent) {
        double solute, solvent, surface;
        force.getGBSAOBCParameters(solute, solvent, surface);
        gbModel = force.getImplicitSolventModel();
        const bool app = force.getGBFormulation() == ENNForce::AppCustomGBFormulation;
        if (!app && gbModel != ENNForce::OBC2)
            throw OpenMM::OpenMMException("ENNForce: GBSAOBCForce's formulation exists for OBC2 only; choose AppCustomGBFormulation for other models");
        gbCoulomb = app ? GBConstants::appCoulomb : ONE_4PI_EPS0;
        gbSoluteInverse = 1.0 / solute;
        gbSolventInverse = 1.0 / solvent;
        gbKappa = force.getImplicitSolventKappa();
        gbCutoff = force.getImplicitSolventCutoff();
        gbPeriodic = gbCutoff > 0 && force.usesPeriodicBoundaryConditions();
        surfaceAreaFactor = 4 * M_PI * surface;
        gbBuriedAtomTerm = !app;
        gbTanh = gbModel != ENNForce::HCT;
        gbOffset = gbModel == ENNForce::GBn2 ? GBConstants::gbn2Offset : GBConstants::offset;
        if (gbModel == ENNForce::GBn || gbModel == ENNForce::GBn2) {
            neckScale = gbModel == ENNForce::GBn ? GBConstants::gbnNeckScale : GBConstants::gbn2NeckScale;
            force.getGBNeckTables(neckSize, neckM0, neckD0);
            if (neckSize == 0)
                throw OpenMM::OpenMMException("ENNForce: GBn and GBn2 need the neck tables (setGBNeckTables)");
        }
        double alpha, beta, gamma;
        GBConstants::tanhParameters(gbModel, alpha, beta, gamma);
        std::map<int, int> mlIndex;
        for (int i = 0; i < numML; i++)
            mlIndex[sites[i]] = i;
        for (int i = 0; i < force.getNumGBParticles(); i++) {
            int particle, neckIndex;
            double charge, radius, scale;
            force.getGBParticleParameters(i, particle, charge, radius, scale);
            if (!(radius > gbOffset))
                throw OpenMM::OpenMMException("ENNForce: GB radius of particle " + std::to_string(particle) + " must exceed " +
                                              std::to_string(gbOffset) + " nm");
            if (std::find(gbParticles.begin(), gbParticles.end(), particle) != gbParticles.end())
                throw OpenMM::OpenMMException("ENNForce: particle " + std::to_string(particle) + " has GB parameters twice");
            gbParticles.push_back(particle);
            auto ml = mlIndex.find(particle);
            gbMLIndex.push_back(ml == mlIndex.end() ? -1 : ml->second);
            if (ml != mlIndex.end())
                mlIndex.erase(ml);
            gbCharges.push_back(charge);
            gbRadii.push_back(radius);
            gbScales.push_back(scale);
            if (gbModel == ENNForce::GBn2)
                force.getGBParticleBornParameters(i, alpha, beta, gamma, neckIndex);
            else {
                double unused;
                force.getGBParticleBornParameters(i, unused, unused, unused, neckIndex);
            }
            if (neckSize > 0 && (neckIndex < 0 || neckIndex >= neckSize))
                throw OpenMM::OpenMMException("ENNForce: the neck index of GB particle " + std::to_string(particle) + " is outside the neck tables");
            gbAlpha.push_back(alpha);
            gbBeta.push_back(beta);
            gbGamma.push_back(gamma);
            gbNeckIndex.push_back(neckIndex);
        }
        if (!mlIndex.empty())
            throw OpenMM::OpenMMException("ENNForce: ML particle " + std::to_string(mlIndex.begin()->first) + " has no GB parameters");
    }
}

void ENNCouplingParameters::updateCharges(const ENNForce& force) {
    if (force.getNumMMParticles() != static_cast<int>(mmCharges.size()))
        throw OpenMM::OpenMMException("ENNForce: updateParametersInContext cannot change the number of MM particles");
    for (int i = 0; i < force.getNumMMParticles(); i++) {
        int particle;
        force.getMMParticleParameters(i, particle, mmCharges[i]);
        if (particle != sites[numML + i])
            throw OpenMM::OpenMMException("ENNForce: updateParametersInContext cannot change which particles are MM particles");
    }
    if (force.getNumGBParticles() != static_cast<int>(gbCharges.size()))
        throw OpenMM::OpenMMException("ENNForce: updateParametersInContext cannot change the number of GB particles");
    for (int i = 0; i < force.getNumGBParticles(); i++) {
        int particle;
        double radius, scale;
        force.getGBParticleParameters(i, particle, gbCharges[i], radius, scale);
    }
}

void ENNCouplingParameters::checkBox(const Vec3* box) const {
    auto check = [&](double distance, const std::string& what) {
        checkPeriodicBox(box, distance);
        const double half = 0.5 * std::min(box[0][0], std::min(box[1][1], box[2][2]));
        if (distance > half)
            throw OpenMM::OpenMMException("ENNForce: the " + what + " (" + std::to_string(distance) + " nm) is larger than half the periodic box (" +
                                          std::to_string(half) + " nm)");
    };
    if (periodic())
        check(cutoff, "cutoff");
    if (gbPeriodic)
        check(gbCutoff, "implicit-solvent cutoff");
}

void ENNCouplingParameters::ordinaryPair(double r, bool mlPair, double& f, double& dfdr) const {
    static const double sqrtPi = std::sqrt(M_PI);
    f = 1.0 / r;
    dfdr = -1.0 / (r * r);
    if (gaussianSigma > 0 && mlPair) {
        const double s = 1.0 / (std::sqrt(2.0) * gaussianSigma);
        f = std::erf(s * r) / r;
        dfdr = (2 * s / sqrtPi * std::exp(-s * s * r * r) * r - std::erf(s * r)) / (r * r);
    }
    if (method == ENNForce::PME) {
        const double ar = alpha * r;
        f -= std::erf(ar) / r;
        dfdr -= (2 * alpha / sqrtPi * std::exp(-ar * ar) * r - std::erf(ar)) / (r * r);
    } else if (useCutoff()) {
        f += krf * r * r - crf;
        dfdr += 2 * krf * r;
    }
}

void ENNCouplingParameters::listedPair(double r, double scale, double& f, double& dfdr) const {
    static const double sqrtPi = std::sqrt(M_PI);
    f = scale / r;
    dfdr = -scale / (r * r);
    if (method == ENNForce::PME) {
        const double ar = alpha * r, erfar = std::erf(ar);
        if (erfar > 1e-6) {
            f -= erfar / r;
            dfdr -= (2 * alpha / sqrtPi * std::exp(-ar * ar) * r - erfar) / (r * r);
        } else // r -> 0: erf(alpha r)/r -> 2 alpha / sqrt(pi), flat
            f -= 2 * alpha / sqrtPi;
    }
}

ENNCouplingParameters::ExceptionLists ENNCouplingParameters::exceptionLists() const {
    vector<vector<std::pair<int, double>>> lists(sites.size());
    for (const auto& e : exceptionScale) {
        lists[e.first.first].push_back({e.first.second, e.second});
        lists[e.first.second].push_back({e.first.first, e.second});
    }
    ExceptionLists out;
    out.start.push_back(0);
    for (auto& list : lists) {
        std::sort(list.begin(), list.end());
        for (const auto& e : list) {
            out.partner.push_back(e.first);
            out.scale.push_back(e.second);
        }
        out.start.push_back(static_cast<int>(out.partner.size()));
    }
    return out;
}

void ENNCouplingParameters::gbIntegral(int i, int j, double r, double& term, double& dterm) const {
    const double ri = gbRadii[i] - gbOffset, sj = (gbRadii[j] - gbOffset) * gbScales[j];
    term = dterm = 0.0;
    if (neckSize > 0 && r < gbRadii[i] + gbRadii[j] + GBConstants::neckCut) {
        const int cell = gbNeckIndex[i] + neckSize * gbNeckIndex[j];
        double dneck;
        term = 2 * neckScale * gbNeckTerm(neckM0[cell], neckD0[cell], r, dneck);
        dterm = 2 * neckScale * dneck;
    }
    if (ri >= r + sj)
        return;
    const bool inner = ri >= std::abs(r - sj);
    const double l = 1.0 / (inner ? ri : std::abs(r - sj)), u = 1.0 / (r + sj);
    const double dl = inner ? 0.0 : -(r > sj ? 1.0 : -1.0) * l * l, du = -u * u;
    const double l2 = l * l, u2 = u * u, logRatio = std::log(u / l);
    term += l - u + 0.25 * r * (u2 - l2) + 0.5 / r * logRatio + 0.25 * sj * sj / r * (l2 - u2);
    dterm += dl - du + 0.25 * (u2 - l2) + 0.5 * r * (u * du - l * dl) - 0.5 / (r * r) * logRatio + 0.5 / r * (du / u - dl / l) -
             0.25 * sj * sj / (r * r) * (l2 - u2) + 0.5 * sj * sj / r * (l * dl - u * du);
    if (gbBuriedAtomTerm && ri < sj - r) {
        term += 2.0 * (1.0 / ri - l);
        dterm -= 2.0 * dl;
    }
}

void ENNCouplingParameters::gbBornRadius(int i, double sum, double& born, double& chain) const {
    const double ri = gbRadii[i] - gbOffset;
    if (!gbTanh) { // HCT: R = 1 / (1/ri - sum/2)
        born = 1.0 / (1.0 / ri - 0.5 * sum);
        chain = 0.5 * born * born;
        return;
    }
    const double a = gbAlpha[i], b = gbBeta[i], g = gbGamma[i];
    const double psi = 0.5 * ri * sum;
    const double t = std::tanh(a * psi - b * psi * psi + g * psi * psi * psi);
    born = 1.0 / (1.0 / ri - t / gbRadii[i]);
    // chain = dR/dsum: R^2 (1 - t^2) (alpha - 2 beta psi + 3 gamma psi^2) / radius * dpsi/dsum
    chain = born * born * (1.0 - t * t) * (a - 2 * b * psi + 3 * g * psi * psi) / gbRadii[i] * 0.5 * ri;
}

double ReferenceENNElectrostatics::compute(const vector<Vec3>& positions, const Vec3* box, const vector<double>& mlCharges,
                                           vector<Vec3>& forces, vector<double>& potential) const {
    potential.assign(c.numML, 0.0);
    c.checkBox(box);
    double energy = 0.0;
    if (c.method != ENNForce::NoElectrostatics) {
        vector<double> charges(mlCharges);
        charges.insert(charges.end(), c.mmCharges.begin(), c.mmCharges.end());
        vector<double> sitePotential(c.sites.size(), 0.0);
        energy += coulomb(positions, box, charges, forces, sitePotential);
        for (int i = 0; i < c.numML; i++)
            potential[i] += sitePotential[i];
    }
    if (c.implicitSolvent)
        energy += generalizedBorn(positions, box, mlCharges, forces, potential);
    return energy;
}

double ReferenceENNElectrostatics::coulomb(const vector<Vec3>& positions, const Vec3* box, const vector<double>& q,
                                           vector<Vec3>& forces, vector<double>& phi) const {
    const int numSites = static_cast<int>(c.sites.size());
    const bool periodic = c.periodic(), pme = c.method == ENNForce::PME, useCutoff = c.useCutoff();
    const double sqrtPi = std::sqrt(M_PI);
    double energy = 0.0;
    // Pair (a, b) contributes k q_a q_b f(r); add its energy, forces and potentials.
    auto addPair = [&](int a, int b, const Vec3& d, double f, double dfdr) {
        const double r = std::sqrt(d.dot(d));
        energy += ONE_4PI_EPS0 * q[a] * q[b] * f;
        phi[a] += ONE_4PI_EPS0 * q[b] * f;
        phi[b] += ONE_4PI_EPS0 * q[a] * f;
        const Vec3 force = d * (ONE_4PI_EPS0 * q[a] * q[b] * dfdr / r); // on b, d = x_b - x_a
        forces[c.sites[b]] -= force;
        forces[c.sites[a]] += force;
    };
    for (int a = 0; a < c.numML; a++)
        for (int b = a + 1; b < numSites; b++) {
            // An ML-ML pair of a model without its own Coulomb term is excluded: nothing, but with PME the
            // removal of the part erf(alpha r)/r that the reciprocal sum holds for every pair.
            const bool excludedMLPair = c.mlPairsExcluded && b < c.numML;
            if (excludedMLPair && !pme)
                continue;
            auto exception = excludedMLPair ? c.exceptionScale.end() : c.exceptionScale.find({a, b});
            const Vec3 plain = positions[c.sites[b]] - positions[c.sites[a]];
            double f, dfdr;
            if (excludedMLPair || exception != c.exceptionScale.end()) {
                c.listedPair(std::sqrt(plain.dot(plain)), excludedMLPair ? 0.0 : exception->second, f, dfdr);
                addPair(a, b, plain, f, dfdr);
                continue;
            }
            const Vec3 d = periodic ? wrapDisplacement(plain, box) : plain;
            const double r = std::sqrt(d.dot(d));
            if (useCutoff && r >= c.cutoff)
                continue;
            c.ordinaryPair(r, b < c.numML, f, dfdr);
            addPair(a, b, d, f, dfdr);
        }
    for (int a = 0; a < c.numML; a++) { // the model's own Gaussian self energies, in every method
        energy += ONE_4PI_EPS0 * c.gaussianSelfEnergy * q[a] * q[a];
        phi[a] += 2 * ONE_4PI_EPS0 * c.gaussianSelfEnergy * q[a];
    }
    if (pme) {
        for (int a = 0; a < c.numML; a++) {
            energy -= ONE_4PI_EPS0 * c.alpha / sqrtPi * q[a] * q[a];
            phi[a] -= 2 * ONE_4PI_EPS0 * c.alpha / sqrtPi * q[a];
        }
        // Reciprocal space: everything minus the MM-MM part, which the NonbondedForce computes.
        vector<Vec3> pos(numSites), fullForces(numSites), mmForces(numSites);
        vector<double> mmOnly(q), fullPhi(numSites);
        for (int s = 0; s < numSites; s++)
            pos[s] = positions[c.sites[s]];
        std::fill(mmOnly.begin(), mmOnly.begin() + c.numML, 0.0);
        energy += pmeReciprocal(pos, q, box, c.alpha, c.grid, &fullForces, &fullPhi);
        energy -= pmeReciprocal(pos, mmOnly, box, c.alpha, c.grid, &mmForces, nullptr);
        for (int s = 0; s < numSites; s++)
            forces[c.sites[s]] += fullForces[s] - mmForces[s];
        double total = 0.0, mmTotal = 0.0;
        for (int s = 0; s < numSites; s++) {
            total += q[s];
            mmTotal += mmOnly[s];
        }
        energy += neutralizingBackgroundEnergy(total, box, c.alpha) - neutralizingBackgroundEnergy(mmTotal, box, c.alpha);
        const double dBackground = 2 * neutralizingBackgroundEnergy(1.0, box, c.alpha) * total;
        for (int a = 0; a < c.numML; a++)
            phi[a] += fullPhi[a] + dBackground;
    }
    return energy;
}

double ReferenceENNElectrostatics::generalizedBorn(const vector<Vec3>& positions, const Vec3* box, const vector<double>& mlCharges,
                                                   vector<Vec3>& forces, vector<double>& potential) const {
    // Born radii from the HCT pair integrals (plus GBn/GBn2's neck), rescaled by tanh (OBC1/OBC2/GBn/GBn2) or not
    // (HCT); the pair energies P(f_ij) q_i q_j with f_ij^2 = r^2 + R_i R_j exp(-r^2 / 4 R_i R_j); the ACE term.
    // With a cutoff, pairs beyond it take part in none of these.
    const int n = static_cast<int>(c.gbParticles.size());
    vector<double> q(n), born(n), chain(n);
    for (int i = 0; i < n; i++)
        q[i] = c.gbMLIndex[i] >= 0 ? mlCharges[c.gbMLIndex[i]] : c.gbCharges[i];
    auto displacement = [&](int i, int j) { return c.gbDisplacement(positions[c.gbParticles[i]], positions[c.gbParticles[j]], box); };
    for (int i = 0; i < n; i++) {
        double sum = 0.0;
        for (int j = 0; j < n; j++) {
            const Vec3 d = displacement(i, j);
            if (j == i || !c.gbWithin(d.dot(d)))
                continue;
            double term, dterm;
            c.gbIntegral(i, j, std::sqrt(d.dot(d)), term, dterm);
            sum += term;
        }
        c.gbBornRadius(i, sum, born[i], chain[i]);
    }
    double energy = 0.0;
    vector<double> dEdBorn(n, 0.0);
    for (int i = 0; i < n; i++)
        energy += c.gbSurfaceEnergy(i, born[i], dEdBorn[i]);
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++) {
            const Vec3 d = displacement(i, j);
            if (!c.gbWithin(d.dot(d)))
                continue;
            double e, dfdrr;
            const double f = c.gbDistance(d.dot(d), born[i], born[j], e, dfdrr);
            const double weight = i == j ? 0.5 : 1.0;
            double P, dPdf;
            c.gbPair(f, c.gbShift(i, j), P, dPdf);
            energy += weight * P * q[i] * q[j];
            const double dEdf = weight * dPdf * q[i] * q[j];
            dEdBorn[i] += dEdf * dfdrr * born[j];
            dEdBorn[j] += dEdf * dfdrr * born[i];
            if (i != j) {
                const Vec3 force = d * (dEdf * (1.0 - 0.25 * e) / f); // dE/dx_j
                forces[c.gbParticles[j]] -= force;
                forces[c.gbParticles[i]] += force;
            }
            if (c.gbMLIndex[i] >= 0)
                potential[c.gbMLIndex[i]] += weight * P * q[j];
            if (c.gbMLIndex[j] >= 0)
                potential[c.gbMLIndex[j]] += weight * P * q[i];
        }
    // Born radii depend on positions through the pair integrals sum_i = sum_j term(i, j).
    for (int i = 0; i < n; i++) {
        const double dEdSum = dEdBorn[i] * chain[i];
        for (int j = 0; j < n; j++) {
            const Vec3 d = displacement(i, j);
            if (j == i || !c.gbWithin(d.dot(d)))
                continue;
            const double r = std::sqrt(d.dot(d));
            double term, dterm;
            c.gbIntegral(i, j, r, term, dterm);
            const Vec3 force = d * (dEdSum * dterm / r); // dE/dx_j through sum_i
            forces[c.gbParticles[j]] -= force;
            forces[c.gbParticles[i]] += force;
        }
    }
    return energy;
}
