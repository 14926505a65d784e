#ifndef OPENMM_REFERENCE_ENN_NETWORK_H_
#define OPENMM_REFERENCE_ENN_NETWORK_H_

// The MACE-family network of an ENNModel in double precision, with plain loops: the oracle the
// other platforms are tested against. Forces come from a hand-written reverse pass.

#include "openmmenn/ENNModel.h"
#include "ENNChargeGroups.h"
#include "ReferenceENNNeighbors.h"
#include "openmm/Vec3.h"
#include <functional>
#include <memory>
#include <vector>

namespace OpenMMENN {

/** Given the predicted charges, fills potential[i] = dE_other/dq_i of an energy term that depends on them. */
typedef std::function<void(const std::vector<double>& charges, std::vector<double>& potential)> ChargeCoupling;

/** Calls visit(inIndex, outIndex, coefficient) for each weight of a linear, once per component m:
 *  Linear(in)[outIndex] = sum of coefficient * in[inIndex]. `element` picks a per-element weight set.
 *  The order of the visits does not depend on `element`. */
template <class Visit>
void forEachLinearTerm(const LinearSpec& lin, int element, Visit visit) {
    const double* w = lin.weights.data() + (lin.perElement ? element * lin.weightsPerElement : 0);
    for (const auto& p : lin.paths) {
        const auto& a = lin.in.entries[p.in];
        const auto& b = lin.out.entries[p.out];
        const int d = a.ir.dim();
        for (int u = 0; u < a.mul; u++)
            for (int v = 0; v < b.mul; v++) {
                const double c = p.weight * w[p.weightOffset + u * b.mul + v];
                for (int m = 0; m < d; m++)
                    visit(a.offset + u * d + m, b.offset + v * d + m, c);
            }
    }
}

/** Feature sizes of one interaction layer (optimized platforms keep them per layer). */
struct LayerSizes {
    int dIn = 0, dUp = 0, dTp = 0, dMsg = 0, dProd = 0, dOut = 0, channels = 0;
    static LayerSizes of(const LayerSpec& L) {
        LayerSizes s;
        s.dIn = L.irrepsIn().dim;
        s.dUp = L.linearUp.out.dim;
        s.dTp = L.conv.out.dim;
        s.dMsg = L.irrepsMessage().dim;
        s.dProd = L.productLinear.in.dim;
        s.dOut = L.irrepsOut().dim;
        s.channels = L.channels;
        return s;
    }
};

class ReferenceENNNetwork {
public:
    explicit ReferenceENNNetwork(std::shared_ptr<const ENNModel> model);

    /**
     * Evaluate the network, in the model's units.
     * @param species         element index (into model.elements) of each atom
     * @param edges           directed edges, vector = x[receiver] - image of x[sender]
     * @param chargeGroups    the constraint on the predicted charges (the charge of each group)
     * @param coupling        if set, called with the predicted charges to get phi_i = dE_other/dq_i; the
     *                        chain-rule term sum_i phi_i dq_i/dx is then added to the gradient
     * @param charges         if not null, receives the predicted charges (requires a charge head)
     * @param gradient        if not null, receives dE/dx for each atom
     * @return the network energy, including E0, scale and shift
     */
    double compute(const std::vector<int>& species, const std::vector<ENNEdge>& edges, const ENNChargeGroups& chargeGroups,
                   const ChargeCoupling& coupling, std::vector<double>* charges,
                   std::vector<OpenMM::Vec3>* gradient);

    const ENNModel& getModel() const { return *model; }

    // ---- model-derived tables, shared with the optimized platforms (which build theirs from these) ----
    struct SparseEntry {
        int i, j, k;
        double value;
    };
    /** The non-zero entries of a Wigner 3j block. */
    const std::vector<SparseEntry>& sparseW3j(int l1, int l2, int l3);
    /** One correlation order of a symmetric contraction, with U and W merged per element:
     *  B[c, M] += coefficients[element][term][c] * A[c, a1] * ... * A[c, a_nu] for each term (M, a1..a_nu). */
    struct ContractionTerms {
        int correlation;
        std::vector<std::array<int, 4>> terms; // M, a1..a_nu (sorted; unused slots -1)
        std::vector<double> coefficients;      // [element][term][channel]
    };
    /** [contraction][nu-1] of a layer. */
    const std::vector<std::vector<ContractionTerms>>& layerContractions(int layer) const { return contractionTerms[layer]; }
    /** Normalisation of the harmonics recursion Y_l = norm_l C(1, l-1, l) Y_1 Y_{l-1}. */
    double harmonicsNormalization(int l) const { return shNormalization[l]; }
    /** The tensor-product weights of a layer's radial MLP at distance r (model units) and their r-derivative. */
    void radialWeights(int layer, double r, std::vector<double>& w, std::vector<double>& dwdr) const;

private:
    void sphericalHarmonics(const OpenMM::Vec3& v, double* y, double (*dy)[3]) const;
    /** Calls visit(outIndex, coefficient, positions, nu) for each monomial of a layer's symmetric
     *  contraction: B[outIndex] += coefficient * A[positions[0]] * ... * A[positions[nu-1]]. */
    template <class Visit>
    void forEachMonomial(int layer, int element, Visit visit) const;

    std::shared_ptr<const ENNModel> model;
    std::map<std::array<int, 3>, std::vector<SparseEntry>> sparse;
    std::vector<double> shNormalization;                       // per l, for the recursion
    std::vector<std::vector<std::vector<ContractionTerms>>> contractionTerms; // [layer][contraction][nu-1]
    std::vector<std::vector<int>> featurePositions;            // [layer][f]: entry offset; with featureDims gives A[c,f]
    std::vector<std::vector<int>> featureDims;
};

} // namespace OpenMMENN

#endif
