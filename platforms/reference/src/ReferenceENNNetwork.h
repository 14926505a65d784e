#ifndef OPENMM_REFERENCE_ENN_NETWORK_H_
#define OPENMM_REFERENCE_ENN_NETWORK_H_

// The MACE-family network of an ENNModel in double precision, with plain loops: the oracle the
// other platforms are tested against. Forces come from a hand-written reverse pass.

#include "openmmenn/ENNModel.h"
#include "ENNChargeGroups.h"
#include "ENNModelMath.h"
#include "ENNPolarHead.h"
#include "ReferenceENNNeighbors.h"
#include "openmm/Vec3.h"
#include <functional>
#include <memory>
#include <vector>

namespace OpenMMENN {

class ReferenceENNNetwork {
public:
    explicit ReferenceENNNetwork(std::shared_ptr<const ENNModel> model);

    /**
     * Evaluate the network, in the model's units.
     * @param species         element index (into model.elements) of each atom
     * @param edges           directed edges, vector = x[receiver] - image of x[sender]
     * @param chargeGroups    the constraint on the predicted charges (the charge of each group)
     * @param initial         each element's initial features and energy (initialNodeFeatures: at the total charge
     *                        and spin multiplicity, for a model with a joint embedding)
     * @param coupling        if set, called with the predicted charges to get phi_i = dE_other/dq_i; the
     *                        chain-rule term sum_i phi_i dq_i/dx is then added to the gradient
     * @param charges         if not null, receives the predicted charges (requires a charge head)
     * @param gradient        if not null, receives dE/dx for each atom
     * @param head            if set, its energy is added and its gradient carried into the layers' backward passes
     * @return the network energy, including E0, scale and shift
     */
    double compute(const std::vector<int>& species, const std::vector<ENNEdge>& edges, const ENNChargeGroups& chargeGroups,
                   const InitialNodeFeatures& initial, const ChargeCoupling& coupling, std::vector<double>* charges,
                   std::vector<OpenMM::Vec3>* gradient, const LayerFeatureHead& head = {});

    const ENNModel& getModel() const { return *model; }

private:
    /** Calls visit(outIndex, coefficient, positions, nu) for each monomial of a layer's symmetric
     *  contraction: B[outIndex] += coefficient * A[positions[0]] * ... * A[positions[nu-1]]. */
    template <class Visit>
    void forEachMonomial(int layer, int element, Visit visit) const;

    std::shared_ptr<const ENNModel> model;
    ENNModelTables tables;
    std::vector<std::vector<int>> featurePositions; // [layer][f]: entry offset; with featureDims gives A[c,f]
    std::vector<std::vector<int>> featureDims;
    std::vector<GateLayout> gateLayouts; // [layer]: e3nn's (the non-linear block's gate)
};

} // namespace OpenMMENN

#endif
