#ifndef OPENMM_ENN_COUPLING_PARAMETERS_H_
#define OPENMM_ENN_COUPLING_PARAMETERS_H_

// The electrostatic coupling of an ENNForce as every platform reads it (double precision): the charged sites, the
// method and its parameters, the exceptions, the pair functions of each method, and the generalized Born
// parameters, constants and pair functions. Units: nm, e, kJ/mol.

#include "openmmenn/ENNForce.h"
#include "ENNEwald.h"
#include "ENNPeriodicGeometry.h"
#include "openmm/System.h"
#include "openmm/Vec3.h"
#include <cmath>
#include <map>
#include <vector>

namespace OpenMMENN {

/** The GB constants of the models (nm): dielectric offsets, the ACE probe radius, the neck's scale and reach
 *  (Onufriev et al. 2004, Mongan et al. 2007, Nguyen et al. 2013, as Amber and openmm.app use them). */
struct GBConstants {
    static constexpr double offset = 0.009, gbn2Offset = 0.0195141, probe = 0.14;
    static constexpr double gbnNeckScale = 0.361825, gbn2NeckScale = 0.826836, neckCut = 0.68;
    /** 1/(4 pi eps0) as openmm.app's CustomGBForce models write it. */
    static constexpr double appCoulomb = 138.935485;
    /** alpha, beta, gamma of the tanh rescaling of OBC1, OBC2 and GBn (GBn2's are per particle). */
    static void tanhParameters(ENNForce::ImplicitSolventModel model, double& alpha, double& beta, double& gamma) {
        alpha = beta = gamma = 0;
        if (model == ENNForce::OBC1) { alpha = 0.8; beta = 0.0; gamma = 2.909125; }
        if (model == ENNForce::OBC2) { alpha = 1.0; beta = 0.8; gamma = 4.85; }
        if (model == ENNForce::GBn) { alpha = 1.09511284; beta = 1.907992938; gamma = 2.50798245; }
    }
};

/**
 * The electrostatic coupling of an ENNForce, read and checked once: the charged sites (ML particles
 * first, then MM particles), the method and its parameters, the exceptions, and the GB parameters.
 * One home for every platform: the Reference/CPU sums and the GPU kernels read the same fields.
 * (The user-facing coupling API, coupleToNonbondedForce and friends, is in openmmapi/src/ENNCoupling.cpp.)
 */
struct ENNCouplingParameters {
    /** Read the coupling from a force; `system` supplies the default box for automatic PME parameters. */
    ENNCouplingParameters(const OpenMM::System& system, const ENNForce& force);
    bool active() const { return method != ENNForce::NoElectrostatics || implicitSolvent; }
    bool periodic() const { return method == ENNForce::CutoffPeriodic || method == ENNForce::PME; }
    bool useCutoff() const { return method != ENNForce::NoElectrostatics && method != ENNForce::NoCutoff; }
    /** Update what updateParametersInContext may change (MM and GB charges). */
    void updateCharges(const ENNForce& force);
    /** Throws an OpenMMException if a periodic method's cutoff, or a periodic GB cutoff, exceeds half the box. */
    void checkBox(const OpenMM::Vec3* box) const;
    /** An ordinary pair's k q_a q_b f(r) within the cutoff: f = 1/r, or erf(r / (sqrt(2) sigma)) / r between the ML
     *  atoms of a Gaussian-damped model (`mlPair`); minus erf(alpha r)/r with PME (the reciprocal sum holds it), plus
     *  k_rf r^2 - c_rf with a reaction field; an ML pair's times mlCoulombScale. Sets f and df/dr. */
    void ordinaryPair(double r, bool mlPair, double& f, double& dfdr) const;
    /** A listed pair at its plain (unwrapped) distance r, without cutoff: an exception of Coulomb scale `scale`, or an
     *  excluded ML-ML pair (scale 0); with PME minus erf(alpha r)/r, which the reciprocal sum holds for every pair. */
    void listedPair(double r, double scale, double& f, double& dfdr) const;
    /** The exceptions as per-site lists sorted by partner, each pair in the lists of both its sites: site s's partners
     *  are partner[start[s] .. start[s+1]), with their scales. */
    struct ExceptionLists {
        std::vector<int> start, partner;
        std::vector<double> scale;
    };
    ExceptionLists exceptionLists() const;

    /** The method used: the force's, or NoCutoff for an uncoupled model that declares its own Coulomb term. */
    ENNForce::ElectrostaticsMethod method;
    /** ML-ML pairs are excluded (the model's energy has no Coulomb term of its own); otherwise they are
     *  ordinary pairs of the method, Gaussian-damped where the model declares it, and take no exceptions. */
    bool mlPairsExcluded = true;
    /** The ML charges are latent (not constrained to a total): their net charge, hence PME's neutralizing background,
     *  moves with them, and the background's potential acts on each. */
    bool latentCharges = false;
    double cutoff, krf = 0, crf = 0, alpha = 0, gaussianSigma = 0;
    /** c of the model's Gaussian self energy k c q_i^2 per ML atom (1/(sigma sqrt(2 pi)), 1/nm, times mlCoulombScale), or 0. */
    double gaussianSelfEnergy = 0;
    /** The model's own Coulomb constant over OpenMM's, for its ML-ML pairs summed directly (1 with PME, where mlChargeScale
     *  applies, and for models that declare none). */
    double mlCoulombScale = 1;
    /** The factor each platform applies to the ML charges going into the Coulomb sums and to the potential coming out:
     *  the square root of the model's constant over OpenMM's where the model's charges are the only charges, else 1. */
    double mlChargeScale = 1;
    int grid[3] = {0, 0, 0};
    int numML;
    std::vector<int> sites;           // System particle of each site: ML particles first, then MM
    std::vector<double> mmCharges;    // charge of site numML + i
    std::map<std::pair<int, int>, double> exceptionScale; // by (site, site), smaller first
    bool implicitSolvent;
    // Generalized Born: the energy -k/2 sum_ij (1/eps_in - exp(-kappa f_ij)/eps_out) q_i q_j / f_ij plus ACE.
    ENNForce::ImplicitSolventModel gbModel = ENNForce::OBC2;
    double gbCoulomb = 0, gbSoluteInverse = 0, gbSolventInverse = 0, gbKappa = 0, surfaceAreaFactor = 0;
    double gbOffset = 0, neckScale = 0;
    bool gbBuriedAtomTerm = false, gbTanh = true; // the HCT term of an atom inside a scaled sphere; OBC-type rescaling
    int neckSize = 0;                            // 0: no neck correction
    std::vector<double> neckM0, neckD0;          // [a + neckSize b]
    std::vector<int> gbParticles, gbMLIndex, gbNeckIndex; // System particle; its ML index or -1; its neck-table index
    std::vector<double> gbCharges, gbRadii, gbScales, gbAlpha, gbBeta, gbGamma;
    /** GB pairs beyond gbCutoff (nm; 0: none) add nothing; with a cutoff they take the nearest image when the force is
     *  periodic (gbPeriodic), as GBSAOBCForce's and CustomGBForce's CutoffNonPeriodic and CutoffPeriodic. */
    double gbCutoff = 0;
    bool gbPeriodic = false;
    /** The displacement x_j - x_i of GB particles at a and b: the nearest image when gbPeriodic. */
    OpenMM::Vec3 gbDisplacement(const OpenMM::Vec3& a, const OpenMM::Vec3& b, const OpenMM::Vec3* box) const {
        return gbPeriodic ? wrapDisplacement(b - a, box) : b - a;
    }
    /** Whether a GB pair at squared distance r2 interacts (the cutoff's test, as OpenMM's: r > cutoff is out). */
    bool gbWithin(double r2) const { return gbCutoff == 0 || r2 <= gbCutoff * gbCutoff; }
    /** Twice the integral I_ij of GB particle j's scaled sphere (and GBn/GBn2's neck) seen from particle i, at
     *  distance r, and its r-derivative: the terms of i's Born-radius sum. */
    void gbIntegral(int i, int j, double r, double& term, double& dterm) const;
    /** Particle i's Born radius from its sum of gbIntegral terms, rescaled by tanh (OBC1/OBC2/GBn/GBn2) or not (HCT);
     *  `chain` = dR/dsum. */
    void gbBornRadius(int i, double sum, double& born, double& chain) const;
    /** The ACE surface energy of particle i at Born radius `born`; sets dE/dborn. */
    double gbSurfaceEnergy(int i, double born, double& dEdBorn) const {
        const double ratio6 = std::pow(gbRadii[i] / born, 6.0);
        const double energy = surfaceAreaFactor * (gbRadii[i] + GBConstants::probe) * (gbRadii[i] + GBConstants::probe) * ratio6;
        dEdBorn = -6.0 * energy / born;
        return energy;
    }
    /** The GB distance f = sqrt(r^2 + R_i R_j exp(-r^2 / 4 R_i R_j)) of a pair at squared distance r2 with Born radii
     *  bornI and bornJ; sets e = exp(-r^2 / 4 R_i R_j) and df/d(R_i R_j). */
    static double gbDistance(double r2, double bornI, double bornJ, double& e, double& dfdrr) {
        const double rr = bornI * bornJ, D = r2 / (4 * rr);
        e = std::exp(-D);
        const double f = std::sqrt(r2 + rr * e);
        dfdrr = e * (1.0 + D) / (2 * f);
        return f;
    }
    /** The pair function P(f) = S(f) (1/f - shift), S(f) = -k (1/eps_in - exp(-kappa f)/eps_out), and dP/df. shift is
     *  1/cutoff for the pairs i != j of a GB with a cutoff (so that P vanishes there, as OpenMM's forms), 0 otherwise. */
    void gbPair(double f, double shift, double& P, double& dPdf) const {
        const double screened = gbKappa > 0 ? std::exp(-gbKappa * f) : 1.0;
        const double S = -gbCoulomb * (gbSoluteInverse - screened * gbSolventInverse), dSdf = -gbCoulomb * gbKappa * screened * gbSolventInverse;
        P = S * (1.0 / f - shift);
        dPdf = dSdf * (1.0 / f - shift) - S / (f * f);
    }
    /** gbPair's shift for GB particles i and j. */
    double gbShift(int i, int j) const { return i != j && gbCutoff > 0 ? 1.0 / gbCutoff : 0.0; }
};

/** GBn/GBn2's neck integral between particles of neck indices a (the particle whose radius it corrects) and b,
 *  at distance r, where r < radius_a + radius_b + neckCut; and its r-derivative. */
inline double gbNeckTerm(double m0, double d0, double r, double& dterm) {
    const double x = r - d0, x2 = x * x, x5 = x2 * x2 * x;
    const double denominator = 1.0 + 100.0 * x2 + 0.3e6 * x5 * x;
    dterm = -m0 * (200.0 * x + 1.8e6 * x5) / (denominator * denominator);
    return m0 / denominator;
}

} // namespace OpenMMENN

#endif
