#include "ENNCouplingParameters.h"
#include "ENNLatentEwald.h"
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
    latentCharges = force.hasLatentCharges();
    // A periodic, uncoupled model that declares the periodic sum it was trained with (MACELES) gets that sum
    // (ENNLatentEwald), not this coupling.
    const bool trainedPeriodicSum = usesTrainedPeriodicSum(force);
    if (trainedPeriodicSum && implicitSolvent)
        throw OpenMM::OpenMMException("ENNForce: the model's periodic sum as trained (MACELES's truncated reciprocal sum) does not combine "
                                      "with implicit solvent; choose setElectrostaticsMethod(PME) for its converged sum");
    if (modelCoulomb && method == ENNForce::NoElectrostatics && !trainedPeriodicSum) {
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
    // The model's own Coulomb constant for the terms among its own charges (docs/electrostatics.md): where they are the
    // only charges (no MM charges, no GB), every Coulomb term is theirs, and scaling the charges by the square root of
    // the constants' ratio gives it exactly in every method; with MM charges, the ML-ML pairs summed directly take it
    // (PME's split of each pair between real and reciprocal space takes one constant, OpenMM's).
    if (modelCoulomb && mmCharges.empty() && !implicitSolvent)
        mlChargeScale = std::sqrt(model.coulombConstantRatio());
    else if (modelCoulomb && method != ENNForce::PME) {
        mlCoulombScale = model.coulombConstantRatio();
        gaussianSelfEnergy *= mlCoulombScale;
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
    if (mlPair) {
        f *= mlCoulombScale;
        dfdr *= mlCoulombScale;
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
