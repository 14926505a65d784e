#ifndef OPENMM_REFERENCE_ENN_POLAR_HEAD_H_
#define OPENMM_REFERENCE_ENN_POLAR_HEAD_H_

// MACE's PolarMACE head on the Reference platform, in double precision: the spin-resolved multipoles from every
// layer's features, the Fukui constraints, the field-update steps, the local electron energy and the Coulomb energy of
// the multipoles, with open boundaries (graph-longrange's real-space sums) or in a periodic cell (its reciprocal
// sums). Each MACE block has its function here, named after it; the gradient comes from a tape (ReferenceENNTape.h).

#include "openmmenn/ENNModel.h"
#include "openmm/Vec3.h"
#include <map>
#include <memory>
#include <vector>

namespace OpenMMENN {

/** An environment's charges as the polar head sees them (model units): point charges become Gaussians of the
 *  multipoles' width that polarize the ML region in every update step (openmm-ml's PolarMACE embedding). */
struct PolarEnvironment {
    std::vector<OpenMM::Vec3> positions;
    std::vector<double> charges;
};

class ReferenceENNPolarHead {
public:
    explicit ReferenceENNPolarHead(std::shared_ptr<const ENNModel> model);

    /**
     * The head's energy (model units): the electron energy (where the model adds it) and the Coulomb energy of its
     * multipoles. The network's own energy (readouts, E0) is not included.
     * @param species        element index of each atom
     * @param positions      atom positions (model length unit)
     * @param box            the periodic cell's vectors (model length unit), or null: open boundaries
     * @param environment    the MM charges, or null
     * @param layerOutputs   each layer's output features, [atom][feature]
     * @param totalCharge    the total charge (e)
     * @param multiplicity   the spin multiplicity 2S + 1
     * @param layerGradients if not null, receives dE/d(layerOutputs[t]) for every layer
     * @param positionGradient if not null, receives the direct dE/dx of each atom (through the electrostatics)
     * @param environmentGradient if not null (with an environment), receives dE/dx of each MM charge
     * @param multipoles     if not null, receives each atom's multipoles (alpha + beta): charge, then any dipole (y, z, x)
     */
    double compute(const std::vector<int>& species, const std::vector<OpenMM::Vec3>& positions,
                   const std::vector<const std::vector<double>*>& layerOutputs, const OpenMM::Vec3* box,
                   const PolarEnvironment* environment, double totalCharge, int multiplicity,
                   std::vector<std::vector<double>>* layerGradients, std::vector<OpenMM::Vec3>* positionGradient,
                   std::vector<OpenMM::Vec3>* environmentGradient, std::vector<double>* multipoles) const;

private:
    std::shared_ptr<const ENNModel> model;
};

} // namespace OpenMMENN

#endif
