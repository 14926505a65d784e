#ifndef OPENMM_REFERENCE_ENN_LATENT_EWALD_H_
#define OPENMM_REFERENCE_ENN_LATENT_EWALD_H_

#include "ENNLatentEwald.h"
#include "openmm/Vec3.h"
#include <vector>

namespace OpenMMENN {

/** MACELES's truncated periodic sum of its latent charges (ENNLatentEwald.h), the oracle: a plain double loop over
 *  every k vector and atom, in the model's units. */
class ReferenceENNLatentEwald {
public:
    explicit ReferenceENNLatentEwald(const ENNModel& model) : model(model) {}
    /** The energy; adds dE/dq_i to phi and dE/dr_i to gradient (ML order, model units; box rows in model units). */
    double compute(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3 box[3], const std::vector<double>& q,
                   std::vector<double>& phi, std::vector<OpenMM::Vec3>& gradient) const;

private:
    const ENNModel& model;
};

} // namespace OpenMMENN

#endif
