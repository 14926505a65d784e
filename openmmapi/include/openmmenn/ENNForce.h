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
 * per-atom charges (constrained to sum to the total charge) can be read with getCharges().
 *
 * The model file declares its energy: the network alone, or the network plus the (optionally
 * Gaussian-damped) Coulomb energy of its predicted charges between its own atoms, which this force then
 * evaluates itself, coupled or not. Electrostatics with predicted charges: ENNForce can compute every
 * electrostatic term that involves the ML atoms' predicted charges (ML-MM Coulomb with NoCutoff, reaction field or
 * PME; generalized Born OBC2 with the ACE surface term), with the chain-rule force
 * -sum_i phi_i dq_i/dx that makes the dynamics conserve energy. coupleToNonbondedForce() and
 * coupleToGBSAOBCForce() rewire a System so that MM-MM terms stay with OpenMM's own forces.
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
    int getNumParticles() const { return static_cast<int>(particles.size()); }
    void getParticleParameters(int index, int& particle, int& atomicNumber) const;
    void setParticleParameters(int index, int particle, int atomicNumber);

    /** Total charge of the ML region (elementary charges) that predicted charges sum to. */
    double getTotalCharge() const { return totalCharge; }
    void setTotalCharge(double charge) { totalCharge = charge; }

    /** Whether the ML region is evaluated with periodic boundary conditions (default false). */
    /** Periodic electrostatics methods (CutoffPeriodic, PME) make the force periodic regardless. */
    void setUsesPeriodicBoundaryConditions(bool periodic) { usePeriodic = periodic; }
    bool usesPeriodicBoundaryConditions() const override {
        return usePeriodic || electrostaticsMethod == CutoffPeriodic || electrostaticsMethod == PME;
    }

    /** True if the model predicts charges. */
    bool hasChargeHead() const;
    /** The predicted charges (elementary charges) of the ML particles, in the order they were added,
     *  at the Context's current positions. Throws if the model has no charge head. */
    std::vector<double> getCharges(OpenMM::Context& context) const;

    /** Copy the total charge and the MM charges into a Context (particles, exceptions and methods cannot change). */
    void updateParametersInContext(OpenMM::Context& context);

    // ---- Electrostatics with predicted charges (needs a model with a charge head) ---------------

    enum ElectrostaticsMethod {
        NoElectrostatics = -1, ///< the default: no environment (a model with its own Coulomb term sums it without cutoff)
        NoCutoff = 0,          ///< direct Coulomb sums, no cutoff, not periodic
        CutoffNonPeriodic = 1, ///< OpenMM's reaction-field form within the cutoff
        CutoffPeriodic = 2,    ///< reaction field with periodic boundary conditions
        PME = 3                ///< particle-mesh Ewald (B-spline order 5), periodic
    };
    /** For a model whose energy includes its own Coulomb term (ENNModel::chargeCoulombIncluded), the method
     *  of that ML-ML sum: NoElectrostatics then means NoCutoff for a non-periodic force; a periodic force
     *  must choose PME or CutoffPeriodic. */
    void setElectrostaticsMethod(ElectrostaticsMethod method) { electrostaticsMethod = method; }
    ElectrostaticsMethod getElectrostaticsMethod() const { return electrostaticsMethod; }
    /** Cutoff for reaction field and the PME real-space sum (nm). */
    void setCutoffDistance(double distance) { cutoffDistance = distance; }
    double getCutoffDistance() const { return cutoffDistance; }
    void setReactionFieldDielectric(double dielectric) { reactionFieldDielectric = dielectric; }
    double getReactionFieldDielectric() const { return reactionFieldDielectric; }
    /** Used, as in NonbondedForce, to choose alpha and the grid when setPMEParameters gave alpha = 0. */
    void setEwaldErrorTolerance(double tolerance) { ewaldErrorTolerance = tolerance; }
    double getEwaldErrorTolerance() const { return ewaldErrorTolerance; }
    /** alpha (1/nm) and grid dimensions; alpha = 0 means choose them from the error tolerance. */
    void setPMEParameters(double alpha, int nx, int ny, int nz);
    void getPMEParameters(double& alpha, int& nx, int& ny, int& nz) const;

    /** A fixed-charge (MM) particle that interacts with the ML atoms. */
    int addMMParticle(int particle, double charge);
    int getNumMMParticles() const { return static_cast<int>(mmParticles.size()); }
    void getMMParticleParameters(int index, int& particle, double& charge) const;
    void setMMParticleParameters(int index, int particle, double charge);

    /** A pair (System particle indices, at least one in the ML region) whose Coulomb interaction is
     *  scaled by chargeScale (0: excluded; e.g. 0.8333 for AMBER 1-4 pairs), computed without cutoff. */
    int addElectrostaticException(int particle1, int particle2, double chargeScale);
    int getNumElectrostaticExceptions() const { return static_cast<int>(exceptions.size()); }
    void getElectrostaticExceptionParameters(int index, int& particle1, int& particle2, double& chargeScale) const;

    /** Generalized Born (OBC2) with the ACE surface term over the ML and MM particles given by addGBParticle. */
    void setUseImplicitSolvent(bool use) { implicitSolvent = use; }
    bool getUseImplicitSolvent() const { return implicitSolvent; }
    void setGBSAOBCParameters(double soluteDielectric, double solventDielectric, double surfaceAreaEnergy);
    void getGBSAOBCParameters(double& soluteDielectric, double& solventDielectric, double& surfaceAreaEnergy) const;
    /** GB parameters of a System particle: radius (nm), scale factor, and charge (ignored for ML atoms). */
    int addGBParticle(int particle, double charge, double radius, double scaleFactor);
    int getNumGBParticles() const { return static_cast<int>(gbParticles.size()); }
    void getGBParticleParameters(int index, int& particle, double& charge, double& radius, double& scaleFactor) const;
    void setGBParticleParameters(int index, int particle, double charge, double radius, double scaleFactor);

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
     * Take over a GBSAOBCForce of `system`: copy its dielectrics, surface-area energy and per-particle
     * parameters, then remove it from the System (which deletes it). This force then computes the whole
     * GB and ACE energy, with predicted charges for ML atoms and the GBSAOBCForce's charges for the rest.
     */
    void coupleToGBSAOBCForce(OpenMM::System& system, OpenMM::GBSAOBCForce& gbsa);

protected:
    OpenMM::ForceImpl* createImpl() const override;

private:
    ENNForce(const std::string& modelData, bool fromData);
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
    struct GBParticle {
        int particle;
        double charge, radius, scaleFactor;
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
    std::string modelData;
    std::shared_ptr<const ENNModel> model;
    std::vector<Particle> particles;
    double totalCharge = 0.0;
    bool usePeriodic = false;
};

} // namespace OpenMMENN

#endif
