#ifndef OPENMM_ENN_FORCE_H_
#define OPENMM_ENN_FORCE_H_

#include "openmm/Context.h"
#include "openmm/Force.h"
#include "openmm/System.h"
#include <memory>
#include <string>
#include <vector>

namespace OpenMM {
class NonbondedForce;
class GBSAOBCForce;
class CustomGBForce;
} // namespace OpenMM

namespace OpenMMENN {

class ENNModel;

/**
 * An equivariant neural-network potential (MACE-family architecture) evaluated natively.
 *
 * The force applies to a subset of the System's particles (the ML region), each with an
 * element given by its atomic number. The model is read from an openmm-enn model file
 * (docs/model-format.md); its units are converted to OpenMM's (nm, kJ/mol). Forces are the
 * exact negative gradient of the energy. If the model has a charge head, the predicted
 * per-atom charges (constrained to sum to the total charge, or latent: unconstrained, as MACELES's) can be read with
 * getCharges().
 *
 * The model file declares its energy: the network alone, or the network plus the (optionally
 * Gaussian-damped) Coulomb energy of its predicted charges between its own atoms, which this force then
 * evaluates itself, coupled or not. Electrostatics with predicted charges: ENNForce can compute every
 * electrostatic term that involves the ML atoms' predicted charges (ML-MM Coulomb with NoCutoff, reaction field or
 * PME; generalized Born HCT/OBC1/OBC2/GBn/GBn2 with the ACE surface term), with the chain-rule force
 * -sum_i phi_i dq_i/dx that makes the dynamics conserve energy. coupleToNonbondedForce(),
 * coupleToGBSAOBCForce() and coupleToCustomGBForce() rewire a System so that MM-MM terms stay with OpenMM's own forces.
 */
class ENNForce : public OpenMM::Force {
public:
    /** Load a model file. Throws OpenMMException naming the problem if it is not valid. */
    explicit ENNForce(const std::string& modelFile);
    /** Build a force from the bytes of a model file (used by deserialization). */
    static ENNForce* createFromModelData(const std::string& modelData);

    /** The bytes of the model file, exactly as loaded. */
    const std::string& getModelData() const { return modelData; }
    /** The parsed, validated model. */
    const ENNModel& getModel() const { return *model; }
    std::shared_ptr<const ENNModel> getModelPtr() const { return model; }

    /** Add a System particle to the ML region; returns its index within this force. */
    int addParticle(int particle, int atomicNumber);
    /** The number of particles in the ML region. */
    int getNumParticles() const { return static_cast<int>(particles.size()); }
    /** The System particle and atomic number of ML particle `index`. */
    void getParticleParameters(int index, int& particle, int& atomicNumber) const;
    /** Change the System particle and atomic number of ML particle `index`. */
    void setParticleParameters(int index, int particle, int atomicNumber);

    /** Total charge of the ML region (elementary charges): what predicted charges sum to, and, for a model that
     *  takes the total charge as an input (MACE's charge embedding, e.g. MACE-OMOL-0), what it reads. */
    double getTotalCharge() const { return totalCharge; }
    /** Set the total charge (e) of the ML region. A model that embeds it as a class needs a whole number. A model with
     *  latent (unconstrained) charges that does not read the total charge refuses it (hasLatentCharges). */
    void setTotalCharge(double charge);
    /** Spin multiplicity 2S + 1 of the ML region (1: singlet, 2: doublet, ...), which a model with a spin input
     *  (MACE's spin embedding, e.g. MACE-OMOL-0) reads; other models ignore it. Default 1. */
    int getSpinMultiplicity() const { return spinMultiplicity; }
    /** Set the spin multiplicity (at least 1); changeable in a Context with updateParametersInContext. */
    void setSpinMultiplicity(int multiplicity);
    /** A uniform external electric field E (kJ/mol/nm/e: the force on a charge q is qE) on the ML region of a PolarMACE
     *  model: its potential and field enter every field-update step (the multipoles respond to it) and the energy gains
     *  -E . (sum_i q_i x_i + sum_i p_i), the region's dipole at the Context's positions, as the model was built to take
     *  it (mace's external_field is -E). It acts on the ML region only: a field on MM atoms is a force of its own (e.g. a
     *  CustomExternalForce). Needs a model file that holds the field's projection (converted by this version); changeable
     *  in a Context with updateParametersInContext. Default zero. */
    void setExternalField(const OpenMM::Vec3& field);
    /** The external electric field on the ML region (kJ/mol/nm/e). */
    OpenMM::Vec3 getExternalField() const { return externalField; }
    /** Whether the model reads the total charge and the spin multiplicity as inputs (a joint embedding). */
    bool usesChargeAndSpinInputs() const;
    /** Whether the total charge matters to the model: its predicted charges are constrained to it, or it reads it as an
     *  input. */
    bool usesTotalCharge() const;

    /**
     * A charge group: ML particles (indices within this force, as addParticle returns them) whose predicted charges
     * sum to `charge` (e), e.g. one molecule. Without charge groups all ML particles form one group with the total
     * charge. With them, every ML particle must be in exactly one group and the groups' charges must add up to
     * the total charge: charge cannot then move between groups (between the molecules of an ML region, which a
     * model trained on single molecules has never seen). Returns the group's index.
     */
    int addChargeGroup(const std::vector<int>& particles, double charge);
    /** The number of charge groups (0: one group of all ML particles). */
    int getNumChargeGroups() const { return static_cast<int>(chargeGroups.size()); }
    /** The particles (indices within this force) and charge (e) of charge group `index`. */
    void getChargeGroupParameters(int index, std::vector<int>& particles, double& charge) const;
    /** Change charge group `index` (its charge can then be updated with updateParametersInContext). */
    void setChargeGroupParameters(int index, const std::vector<int>& particles, double charge);

    /** Whether the ML region is evaluated with periodic boundary conditions (default false). */
    /** Periodic electrostatics methods (CutoffPeriodic, PME) make the force periodic regardless. */
    void setUsesPeriodicBoundaryConditions(bool periodic) { usePeriodic = periodic; }
    /** Whether the force is periodic: set so, or made so by a periodic electrostatics method. */
    bool usesPeriodicBoundaryConditions() const override {
        return usePeriodic || electrostaticsMethod == CutoffPeriodic || electrostaticsMethod == PME;
    }

    /** True if the model predicts charges. */
    bool hasChargeHead() const;
    /** True if the model declares the sum of its own Coulomb term it was trained with in periodic cells (MACELES: the les
     *  library's truncated reciprocal sum), which a periodic force evaluates while no electrostatics method is chosen
     *  (PME then gives the converged sum; docs/electrostatics.md). */
    bool hasTrainedPeriodicSum() const;
    /** True if the model's charges are latent: not constrained to a total charge (MACELES's), so that neither the total
     *  charge nor charge groups apply to them. */
    bool hasLatentCharges() const;
    /** True if the model is a PolarMACE: spin-resolved charges and dipoles, constrained to the total charge and spin
     *  multiplicity and updated by the field they create, with their Coulomb energy in the model's energy. Such a model
     *  runs on every platform (on OpenCL and CUDA its head on the host), alone or coupled to MM charges by
     *  coupleToNonbondedForce (NoCutoff or PME: the charges polarize the multipoles in every update step); getCharges and
     *  getDipoles give its multipoles (docs/polar.md). */
    bool hasPolarHead() const;
    /** True if the model's energy includes the Coulomb energy of its predicted charges between its own atoms
     *  (declared in its file; docs/electrostatics.md; a PolarMACE's multipoles always), which this force then evaluates. */
    bool includesCoulombTerm() const;
    /** The predicted charges (elementary charges) of the ML particles, in the order they were added,
     *  at the Context's current positions. Throws if the model has no charge head. */
    std::vector<double> getCharges(OpenMM::Context& context) const;
    /** A PolarMACE model's atomic dipoles (e nm, x y z: alpha plus beta) of the ML particles at the Context's current
     *  positions, in the order they were added. Throws if the model has no polar head or its multipoles stop at l = 0. */
    std::vector<OpenMM::Vec3> getDipoles(OpenMM::Context& context) const;

    /** Copy the total charge and the MM charges into a Context (particles, exceptions and methods cannot change). */
    void updateParametersInContext(OpenMM::Context& context);

    // ---- Electrostatics with predicted charges (needs a model with a charge head) ---------------

    enum ElectrostaticsMethod {
        NoElectrostatics = -1, ///< the default: no environment (a model with its own Coulomb term sums it without cutoff, or periodic as trained)
        NoCutoff = 0,          ///< direct Coulomb sums, no cutoff, not periodic
        CutoffNonPeriodic = 1, ///< OpenMM's reaction-field form within the cutoff
        CutoffPeriodic = 2,    ///< reaction field with periodic boundary conditions
        PME = 3                ///< particle-mesh Ewald (B-spline order 5), periodic
    };
    /** For a model whose energy includes its own Coulomb term (ENNModel::chargeCoulombIncluded), the method
     *  of that ML-ML sum: NoElectrostatics then means NoCutoff for a non-periodic force; a periodic force
     *  must choose PME or CutoffPeriodic, unless the model declares the periodic sum it was trained with
     *  (hasTrainedPeriodicSum: MACELES), which NoElectrostatics then gives (PME: the converged sum). */
    void setElectrostaticsMethod(ElectrostaticsMethod method) { electrostaticsMethod = method; }
    /** The electrostatics method of the predicted charges. */
    ElectrostaticsMethod getElectrostaticsMethod() const { return electrostaticsMethod; }
    /** Cutoff for reaction field and the PME real-space sum (nm). */
    void setCutoffDistance(double distance) { cutoffDistance = distance; }
    /** The cutoff (nm) for reaction field and the PME real-space sum. */
    double getCutoffDistance() const { return cutoffDistance; }
    /** The dielectric beyond the cutoff for reaction field (as NonbondedForce). */
    void setReactionFieldDielectric(double dielectric) { reactionFieldDielectric = dielectric; }
    /** The dielectric beyond the cutoff for reaction field. */
    double getReactionFieldDielectric() const { return reactionFieldDielectric; }
    /** Used, as in NonbondedForce, to choose alpha and the grid when setPMEParameters gave alpha = 0. */
    void setEwaldErrorTolerance(double tolerance) { ewaldErrorTolerance = tolerance; }
    /** The error tolerance that chooses PME's alpha and grid when they are not set. */
    double getEwaldErrorTolerance() const { return ewaldErrorTolerance; }
    /** alpha (1/nm) and grid dimensions; alpha = 0 means choose them from the error tolerance. */
    void setPMEParameters(double alpha, int nx, int ny, int nz);
    /** PME's alpha (1/nm) and grid dimensions; alpha = 0 means chosen from the error tolerance. */
    void getPMEParameters(double& alpha, int& nx, int& ny, int& nz) const;

    /** A fixed-charge (MM) particle that interacts with the ML atoms. */
    int addMMParticle(int particle, double charge);
    /** The number of fixed-charge (MM) particles. */
    int getNumMMParticles() const { return static_cast<int>(mmParticles.size()); }
    /** The System particle and charge (e) of MM particle `index`. */
    void getMMParticleParameters(int index, int& particle, double& charge) const;
    /** Change the System particle and charge (e) of MM particle `index` (then updateParametersInContext). */
    void setMMParticleParameters(int index, int particle, double charge);

    /** A pair (System particle indices, at least one in the ML region) whose Coulomb interaction is
     *  scaled by chargeScale (0: excluded; e.g. 0.8333 for AMBER 1-4 pairs), computed without cutoff. */
    int addElectrostaticException(int particle1, int particle2, double chargeScale);
    /** The number of electrostatic exceptions. */
    int getNumElectrostaticExceptions() const { return static_cast<int>(exceptions.size()); }
    /** The particles and Coulomb scale of exception `index`. */
    void getElectrostaticExceptionParameters(int index, int& particle1, int& particle2, double& chargeScale) const;

    /** Generalized Born with the ACE surface term over the ML and MM particles given by addGBParticle. */
    void setUseImplicitSolvent(bool use) { implicitSolvent = use; }
    /** Whether generalized Born implicit solvent is on. */
    bool getUseImplicitSolvent() const { return implicitSolvent; }
    /** The Born-radius model: the HCT pair integral, rescaled by tanh(alpha psi - beta psi^2 + gamma psi^3) (OBC1,
     *  OBC2, GBn, GBn2: Amber igb 2, 5, 7, 8), with the neck correction of GBn and GBn2, or unscaled (HCT, igb 1). */
    enum ImplicitSolventModel { OBC2 = 0, OBC1 = 1, HCT = 2, GBn = 3, GBn2 = 4 };
    /** Choose the Born-radius model. */
    void setImplicitSolventModel(ImplicitSolventModel model);
    /** The Born-radius model. */
    ImplicitSolventModel getImplicitSolventModel() const { return implicitSolventModel; }
    /** How the terms are written. GBSAOBCForce's form (OBC2 only; 1/(4 pi eps0) of CODATA 2018, and the HCT integral
     *  with the term for an atom buried inside a neighbour's scaled sphere), or that of the CustomGBForce models of
     *  openmm.app (implicit/NAME.xml, createSystem(implicitSolvent=...): 1/(4 pi eps0) = 138.935485, no buried-atom term). */
    enum GBFormulation { GBSAOBCForceFormulation = 0, AppCustomGBFormulation = 1 };
    /** Choose how the GB terms are written (see GBFormulation). */
    void setGBFormulation(GBFormulation formulation);
    /** How the GB terms are written. */
    GBFormulation getGBFormulation() const { return gbFormulation; }
    /** Debye screening parameter of dissolved salt (1/nm; 0, the default, means no salt), as openmm.app's implicitSolventKappa. */
    void setImplicitSolventKappa(double kappa);
    /** The Debye screening parameter (1/nm). */
    double getImplicitSolventKappa() const { return implicitSolventKappa; }
    /** A cutoff (nm) for the GB pairs, as GBSAOBCForce's and CustomGBForce's CutoffNonPeriodic/CutoffPeriodic: pairs
     *  farther apart add nothing to the Born radii or the energy, and each pair within it has its energy shifted by
     *  its value at the cutoff (q_i q_j S(f) (1/f - 1/cutoff), S(f) = -k (1/eps_in - exp(-kappa f)/eps_out)). 0, the
     *  default, means no cutoff. With a cutoff, GB pairs take the nearest periodic image exactly when the force uses
     *  periodic boundary conditions. */
    void setImplicitSolventCutoff(double distance);
    /** The GB cutoff (nm); 0 means none. */
    double getImplicitSolventCutoff() const { return implicitSolventCutoff; }
    /** Dielectrics, and the ACE surface-area energy (kJ/mol/nm^2; 0 turns the surface term off). */
    void setGBSAOBCParameters(double soluteDielectric, double solventDielectric, double surfaceAreaEnergy);
    /** The solute and solvent dielectrics and the ACE surface-area energy (kJ/mol/nm^2). */
    void getGBSAOBCParameters(double& soluteDielectric, double& solventDielectric, double& surfaceAreaEnergy) const;
    /** GB parameters of a System particle: radius (nm), scale factor, and charge (ignored for ML atoms). */
    int addGBParticle(int particle, double charge, double radius, double scaleFactor);
    /** The number of GB particles. */
    int getNumGBParticles() const { return static_cast<int>(gbParticles.size()); }
    /** The System particle, charge (e), radius (nm) and scale factor of GB particle `index`. */
    void getGBParticleParameters(int index, int& particle, double& charge, double& radius, double& scaleFactor) const;
    /** Change GB particle `index` (the charge can then be updated with updateParametersInContext). */
    void setGBParticleParameters(int index, int particle, double charge, double radius, double scaleFactor);
    /** GBn2's per-particle alpha, beta, gamma (other models use their own constants), and the particle's row and column
     *  in the neck tables (GBn, GBn2). Default: 0, 0, 0, and 0. */
    void setGBParticleBornParameters(int index, double alpha, double beta, double gamma, int neckIndex);
    /** GBn2's alpha, beta, gamma and the neck index of GB particle `index`. */
    void getGBParticleBornParameters(int index, double& alpha, double& beta, double& gamma, int& neckIndex) const;
    /** The neck tables of GBn and GBn2 (Mongan et al. 2007), size x size values each, for neck indices a (this
     *  particle) and b (its partner) at m0[a + size b], d0[a + size b] (as a Discrete2DFunction): the neck
     *  integral's height and the distance (nm) of its maximum. */
    void setGBNeckTables(int size, const std::vector<double>& m0, const std::vector<double>& d0);
    void getGBNeckTables(int& size, std::vector<double>& m0, std::vector<double>& d0) const;

    /**
     * Take over the ML atoms' electrostatics from a NonbondedForce of `system`: the ML charges there
     * become zero, every ML-ML pair becomes an exclusion (Coulomb and Lennard-Jones between ML atoms
     * are the model's), and ML-MM exceptions keep only their Lennard-Jones part. This force receives
     * the MM charges, every ML-MM exception (with its Coulomb scale), the method, the cutoff, the
     * reaction-field dielectric and the PME parameters. Add the ML particles first.
     *
     * Coupling adds only what the environment brings (docs/electrostatics.md): ML-MM terms, and for a
     * model whose energy includes its own Coulomb term, the periodic images or reaction field of its
     * ML-ML pairs. A molecule coupled to a NonbondedForce (NoCutoff) that holds no other charges keeps
     * exactly the energy it has alone.
     */
    void coupleToNonbondedForce(OpenMM::System& system, OpenMM::NonbondedForce& nonbonded);
    /**
     * Take over a GBSAOBCForce of `system`: copy its dielectrics, surface-area energy, per-particle
     * parameters and cutoff, then remove it from the System (which deletes it). This force then computes the whole
     * GB and ACE energy, with predicted charges for ML atoms and the GBSAOBCForce's charges for the rest.
     * CutoffPeriodic makes this force periodic; CutoffNonPeriodic is refused if it already is.
     */
    void coupleToGBSAOBCForce(OpenMM::System& system, OpenMM::GBSAOBCForce& gbsa);
    /**
     * Take over a CustomGBForce of `system` that is one of openmm.app's implicit-solvent models (HCT, OBC1, OBC2,
     * GBn, GBn2, as ForceField's implicit/NAME.xml files and createSystem(implicitSolvent=...) make them; any
     * nonbonded method; any salt concentration; with or without the ACE term): read its model, dielectrics, kappa,
     * cutoff, per-particle parameters and neck tables, then remove it from the System (CutoffPeriodic makes this
     * force periodic, as for a GBSAOBCForce). Any other CustomGBForce is refused with an
     * OpenMMException that says why.
     */
    void coupleToCustomGBForce(OpenMM::System& system, OpenMM::CustomGBForce& gb);

protected:
    OpenMM::ForceImpl* createImpl() const override;

private:
    ENNForce(const std::string& modelData, bool fromData);
    /** The GB cutoff of a coupled GB force: none, or `distance`, periodic or not (which must agree with this force). */
    void adoptGBCutoff(bool cutoff, bool periodic, double distance, const std::string& forceName);
    struct Particle {
        int particle, atomicNumber;
    };
    struct MMParticle {
        int particle;
        double charge;
    };
    struct Exception {
        int particle1, particle2;
        double chargeScale;
    };
    struct ChargeGroup {
        std::vector<int> particles;
        double charge;
    };
    std::vector<ChargeGroup> chargeGroups;
    struct GBParticle {
        int particle;
        double charge, radius, scaleFactor;
        double alpha = 0, beta = 0, gamma = 0;
        int neckIndex = 0;
    };
    void checkElement(int atomicNumber) const;
    ElectrostaticsMethod electrostaticsMethod = NoElectrostatics;
    double cutoffDistance = 1.0, reactionFieldDielectric = 78.3, ewaldErrorTolerance = 5e-4;
    double pmeAlpha = 0.0;
    int pmeGrid[3] = {0, 0, 0};
    std::vector<MMParticle> mmParticles;
    std::vector<Exception> exceptions;
    bool implicitSolvent = false;
    double soluteDielectric = 1.0, solventDielectric = 78.3, surfaceAreaEnergy = 2.25936;
    std::vector<GBParticle> gbParticles;
    ImplicitSolventModel implicitSolventModel = OBC2;
    GBFormulation gbFormulation = GBSAOBCForceFormulation;
    double implicitSolventKappa = 0.0, implicitSolventCutoff = 0.0;
    int neckTableSize = 0;
    std::vector<double> neckM0, neckD0;
    std::string modelData;
    std::shared_ptr<const ENNModel> model;
    std::vector<Particle> particles;
    double totalCharge = 0.0;
    int spinMultiplicity = 1;
    OpenMM::Vec3 externalField;
    bool usePeriodic = false;
};

} // namespace OpenMMENN

#endif
