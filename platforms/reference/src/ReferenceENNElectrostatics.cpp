#include "ReferenceENNElectrostatics.h"
#include "ReferenceENNPME.h"
#include "openmmenn/ENNModel.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cmath>

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::vector;

double ReferenceENNElectrostatics::compute(const vector<Vec3>& positions, const Vec3* box, const vector<double>& mlCharges,
                                           vector<Vec3>& forces, vector<double>& potential) const {
    potential.assign(c.numML, 0.0);
    c.checkBox(box);
    double energy = 0.0;
    if (c.method != ENNForce::NoElectrostatics) {
        vector<double> charges(mlCharges);
        for (double& q : charges) // (the model's own Coulomb constant, where its charges are the only ones)
            q *= c.mlChargeScale;
        charges.insert(charges.end(), c.mmCharges.begin(), c.mmCharges.end());
        vector<double> sitePotential(c.sites.size(), 0.0);
        energy += coulomb(positions, box, charges, forces, sitePotential);
        for (int i = 0; i < c.numML; i++)
            potential[i] += sitePotential[i] * c.mlChargeScale;
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
