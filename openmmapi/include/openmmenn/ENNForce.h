#ifndef OPENMM_ENN_FORCE_H_
#define OPENMM_ENN_FORCE_H_

#include "openmm/Context.h"
#include "openmm/Force.h"
#include <memory>
#include <string>
#include <vector>

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
    void setUsesPeriodicBoundaryConditions(bool periodic) { usePeriodic = periodic; }
    bool usesPeriodicBoundaryConditions() const override { return usePeriodic; }

    /** True if the model predicts charges. */
    bool hasChargeHead() const;
    /** The predicted charges (elementary charges) of the ML particles, in the order they were added,
     *  at the Context's current positions. Throws if the model has no charge head. */
    std::vector<double> getCharges(OpenMM::Context& context) const;

    /** Copy the total charge into a Context (the particles and the model cannot change). */
    void updateParametersInContext(OpenMM::Context& context);

protected:
    OpenMM::ForceImpl* createImpl() const override;

private:
    ENNForce(const std::string& modelData, bool fromData);
    struct Particle {
        int particle, atomicNumber;
    };
    void checkElement(int atomicNumber) const;
    std::string modelData;
    std::shared_ptr<const ENNModel> model;
    std::vector<Particle> particles;
    double totalCharge = 0.0;
    bool usePeriodic = false;
};

} // namespace OpenMMENN

#endif
