#ifndef OPENMM_ENN_PARTICLES_H_
#define OPENMM_ENN_PARTICLES_H_

// The ML particles of an ENNForce as every platform's kernel reads them, and the checks on what goes in and comes
// out of an evaluation (positions, predicted charges, energy, forces) against ENNSanityBounds.

#include "openmmenn/ENNForce.h"
#include "openmmenn/ENNModel.h"
#include "ENNChargeGroups.h"
#include "ENNModelMath.h"
#include "openmm/Vec3.h"
#include <vector>

namespace OpenMMENN {

/** What every platform's kernel keeps of an ENNForce's ML particles. */
struct ENNParticles {
    std::vector<int> particles, species; // System index and element index of each ML particle
    ENNChargeGroups chargeGroups; // the constraint on the predicted charges; their total is chargeGroups.total()
    int spinMultiplicity = 1;
    /** Each element's initial features and energy at the force's total charge and spin multiplicity (these enter a
     *  model with a joint embedding); computed, and checked against the model's classes, by read and update. */
    InitialNodeFeatures initialFeatures;
    bool periodic = false;
    void read(const ENNForce& force);
    /** updateParametersInContext: takes the new total and group charges and spin multiplicity; throws if the
     *  particles or groups changed. */
    void update(const ENNForce& force);
    /** The ML particles' positions times `scale`; throws OpenMMException naming the particle on a
     *  non-finite position or one beyond ENNSanityBounds::MaxCoordinate. */
    void gather(const std::vector<OpenMM::Vec3>& positions, double scale, std::vector<OpenMM::Vec3>& out) const;
    /** Throws OpenMMException naming the particle if a predicted charge (e) is not finite or beyond MaxCharge. */
    void checkCharges(const std::vector<double>& charges) const;
    /** Throws OpenMMException if the energy (kJ/mol) of `model` is not finite or absurd (ENNSanityBounds). */
    void checkEnergy(double energy, const ENNModel& model) const;
    /** Adds -gradient[i] * scale to the force on ML particle i and extra[j] (one per System particle, or empty)
     *  to particle j's. Throws OpenMMException naming the particle, before adding anything, if one is not finite
     *  (weights that overflow in the backward pass can give NaN forces with a finite energy). */
    void addForces(const std::vector<OpenMM::Vec3>& gradient, double scale, const std::vector<OpenMM::Vec3>& extra,
                   std::vector<OpenMM::Vec3>& forces) const;
};

} // namespace OpenMMENN

#endif
