#ifndef OPENMM_ENN_MODEL_MATH_H_
#define OPENMM_ENN_MODEL_MATH_H_

// The math of an ENNModel that every platform builds its network from, in double precision: the linears' terms,
// the feature sizes of a layer, the activations, the radial basis and the exact radial MLP, and the tables derived
// from the model once (sparse Wigner 3j blocks, the harmonics' normalisation, the symmetric contractions with U and W
// merged per element). The Reference platform evaluates with these directly; the CPU and GPU platforms convert them
// to their own layouts and precisions.

#include "openmmenn/ENNModel.h"
#include "openmm/Vec3.h"
#include <array>
#include <map>
#include <vector>

namespace OpenMMENN {

/** visit(W, path weight, input offset, output offset, d, mul_in, mul_out) for each path of a linear: W its
 *  (mul_in x mul_out) weights, row u contiguous in the output channel. `element` picks a per-element weight set. */
template <class Visit>
void forEachLinearPath(const LinearSpec& lin, int element, Visit visit) {
    const double* w = lin.weights.data() + (lin.perElement ? element * lin.weightsPerElement : 0);
    for (const auto& p : lin.paths) {
        const auto& a = lin.in.entries[p.in];
        const auto& b = lin.out.entries[p.out];
        visit(w + p.weightOffset, p.weight, a.offset, b.offset, a.ir.dim(), a.mul, b.mul);
    }
}

/** Calls visit(inIndex, outIndex, coefficient) for each weight of a linear, once per component m:
 *  Linear(in)[outIndex] = sum of coefficient * in[inIndex]. `element` picks a per-element weight set.
 *  The order of the visits does not depend on `element`. */
template <class Visit>
void forEachLinearTerm(const LinearSpec& lin, int element, Visit visit) {
    forEachLinearPath(lin, element, [&](const double* W, double weight, int inOffset, int outOffset, int d, int nu, int nv) {
        for (int u = 0; u < nu; u++)
            for (int v = 0; v < nv; v++) {
                const double c = weight * W[u * nv + v];
                for (int m = 0; m < d; m++)
                    visit(inOffset + u * d + m, outOffset + v * d + m, c);
            }
    });
}

/** sum_i a[i] b[i] in four fixed partial sums (an order fixed by n alone, which the compiler may vectorize). */
inline double sumOfProducts(const double* a, const double* b, int n) {
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++)
            s[j] += a[i + j] * b[i + j];
    for (; i < n; i++)
        s[0] += a[i] * b[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/** out += Linear(in) without its bias (the terms of forEachLinearTerm), path by path: for each component m, the
 *  (mul_in x mul_out) weights times the input channels' m-th components, the inner loop over output channels, whose
 *  weights are contiguous. Double; the path weight is applied once per output, so round-off differs from summing
 *  forEachLinearTerm's terms by a few ulps. */
void linearApply(const LinearSpec& lin, int element, const double* in, double* out);
/** gIn += Linear^T(gOut) (linearApply's transpose: its backward pass), each input's dot product over the output
 *  channels by sumOfProducts. */
void linearApplyTranspose(const LinearSpec& lin, int element, const double* gOut, double* gIn);

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

/** The model's activation (normalised SiLU, tanh or sigmoid) at x; sets *derivative if not null. */
double activation(const ActivationSpec& act, double x, double* derivative);

/** Where a gate's gated entries (GateSpec::gated, in order) sit in the arrays a platform stores: entry k's channel u,
 *  component m is read at inOffset + u inChannelStep + m inComponentStep and written at outOffset + u outChannelStep +
 *  m outComponentStep. The scalars and the gates (dimension 1) sit where GateSpec says in any layout. */
struct GateLayout {
    struct Entry {
        int inOffset, inChannelStep, inComponentStep, outOffset, outChannelStep, outComponentStep;
    };
    std::vector<Entry> entries;
    /** e3nn's [channel][m] layout, the one GateSpec describes. */
    static GateLayout e3nn(const GateSpec& gate);
};

/** A gate (GateSpec) in a platform's layout: out = [scalar activations, gated entries times their gate activations]. */
template <class Real>
void gateForward(const GateSpec& g, const GateLayout& layout, const Real* in, Real* out) {
    for (int i = 0; i < g.scalarCount; i++)
        out[i] = static_cast<Real>(activation(g.scalarActivation, in[g.scalarStart + i], nullptr));
    for (size_t k = 0; k < g.gated.size(); k++) {
        const GateSpec::Gated& e = g.gated[k];
        const GateLayout::Entry& p = layout.entries[k];
        for (int u = 0; u < e.mul; u++) {
            const Real gate = static_cast<Real>(activation(g.gateActivation, in[g.gateStart + e.gateOffset + u], nullptr));
            for (int m = 0; m < e.dim; m++)
                out[p.outOffset + u * p.outChannelStep + m * p.outComponentStep] = in[p.inOffset + u * p.inChannelStep + m * p.inComponentStep] * gate;
        }
    }
}

/** gradIn += the gate's transpose Jacobian at `in` times gradOut (the layout as gateForward's). */
template <class Real>
void gateBackward(const GateSpec& g, const GateLayout& layout, const Real* in, const Real* gradOut, Real* gradIn) {
    double derivative;
    for (int i = 0; i < g.scalarCount; i++) {
        activation(g.scalarActivation, in[g.scalarStart + i], &derivative);
        gradIn[g.scalarStart + i] += static_cast<Real>(derivative) * gradOut[i];
    }
    for (size_t k = 0; k < g.gated.size(); k++) {
        const GateSpec::Gated& e = g.gated[k];
        const GateLayout::Entry& p = layout.entries[k];
        for (int u = 0; u < e.mul; u++) {
            const int gateIndex = g.gateStart + e.gateOffset + u;
            const Real gate = static_cast<Real>(activation(g.gateActivation, in[gateIndex], &derivative));
            Real dot = 0;
            for (int m = 0; m < e.dim; m++) {
                const int i = p.inOffset + u * p.inChannelStep + m * p.inComponentStep;
                const Real go = gradOut[p.outOffset + u * p.outChannelStep + m * p.outComponentStep];
                gradIn[i] += gate * go;
                dot += in[i] * go;
            }
            gradIn[gateIndex] += static_cast<Real>(derivative) * dot;
        }
    }
}

/** The row of a linear from the one-hot elements (n_elements x 0e) for one element: its output for that element. */
std::vector<double> elementRow(const LinearSpec& linear, int element);

/** The initial node features of each element (embedding of the one-hot element, plus the joint embedding of the
 *  total charge and spin multiplicity where the model has one) and the energy each such atom adds (MACE's
 *  embedding_readout, model units; zero without one). Throws OpenMMException if the model embeds the charge or
 *  multiplicity as a class and the value is not a whole number in its range. */
struct InitialNodeFeatures {
    std::vector<std::vector<double>> features; // [element][embedding.out.dim]
    std::vector<double> energy;                // [element]
};
InitialNodeFeatures initialNodeFeatures(const ENNModel& model, double totalCharge, int spinMultiplicity);

/** The polynomial envelope f_p(r / rc) (zero from rc on) and its r-derivative. */
double polynomialEnvelope(int p, double rc, double r, double& derivative);

/** The argument of the radial basis for an edge between elements a and b (indices into the model's elements) at
 *  distance r: r itself, or the model's distance transform of it (MACE's AgnesiTransform or SoftTransform); sets
 *  dy/dr. */
double transformedDistance(const ENNModel& model, int elementA, int elementB, double r, double& dydr);

/** The Bessel basis of the (transformed) distance, times the polynomial envelope of r (model units) if the model
 *  applies its cutoff there (ENNModel::applyCutoff), for an edge between elements a and b, and its r-derivative: b[n]
 *  and db[n] for each of the model's Bessel frequencies. */
void radialBasis(const ENNModel& model, int elementA, int elementB, double r, double* b, double* db);

/** The number of per-edge radial outputs of a layer: its tensor-product weights, then, for a density-normalised
 *  layer, its edge density tanh(s^2). */
int numRadialOutputs(const LayerSpec& layer);

/** A layer's per-edge radial outputs (numRadialOutputs) at distance r (model units) for an edge from an atom of
 *  element `sender` to one of element `receiver`, and their r-derivatives (forward mode through the MLPs). With
 *  apply_cutoff false, the outputs are multiplied by the envelope. */
void radialWeights(const ENNModel& model, int layer, int sender, int receiver, double r, std::vector<double>& w,
                   std::vector<double>& dwdr);

/** What the edge's elements fix in a layer's radial networks: their embeddings times the first weight matrices (the
 *  radial MLP's, then the density network's), so that radialWeights at many distances of one pair multiplies only the
 *  basis (the embeddings are most of a wide model's inputs). Empty for a layer without edge embeddings. */
struct RadialPairConstants {
    std::vector<double> radial, density;
};
RadialPairConstants radialPairConstants(const ENNModel& model, int layer, int sender, int receiver);
/** radialWeights with the pair's constants computed beforehand. */
void radialWeights(const ENNModel& model, int layer, int sender, int receiver, double r, const RadialPairConstants& pair,
                   std::vector<double>& w, std::vector<double>& dwdr);

/** Whether a model's radial functions depend on the elements of an edge (a distance transform, element embeddings in
 *  the radial networks), so that tables of them are needed per element pair (sender, receiver). */
bool radialDependsOnElements(const ENNModel& model);

/** The constants of MACE's ZBL pair repulsion (ZBLBasis) for an edge between elements a and b (model units): the
 *  screening length s, the prefactor 1/2 k Z_a Z_b times energy.scale of one directed edge (ScaleShiftMACE scales the
 *  repulsion with the network's energy), and the cutoff R_a + R_b. */
struct ZBLPair {
    double screening, prefactor, cutoff;
};
ZBLPair zblPair(const ENNModel& model, int elementA, int elementB);

/** The ZBL pair repulsion of one directed edge (half the pair's energy, times energy.scale) between elements a and b
 *  at distance r, in the model's units; sets its r-derivative. Zero from the cutoff on. */
double pairRepulsionEnergy(const ENNModel& model, int elementA, int elementB, double r, double& dEdr);

/** The non-zero entries of a Wigner 3j block. */
struct SparseW3jEntry {
    int i, j, k;
    double value;
};

/** One correlation order of a symmetric contraction, with U and W merged per element:
 *  B[c, M] += coefficients[element][term][c] * A[c, a1] * ... * A[c, a_nu] for each term (M, a1..a_nu). */
struct ContractionTerms {
    int correlation;
    std::vector<std::array<int, 4>> terms; // M, a1..a_nu (sorted; unused slots -1)
    std::vector<double> coefficients;      // [element][term][channel]
};

/** What is derived from a model's stored constants and weights once, whatever the particles are. Read-only once
 *  built, so any number of threads may share one; the model must outlive it. */
class ENNModelTables {
public:
    /** Throws OpenMMException if the model's Wigner 3j blocks do not generate spherical harmonics. */
    explicit ENNModelTables(const ENNModel& model);
    /** The non-zero entries of the model's Wigner 3j block (l1, l2, l3); throws OpenMMException if it has none. */
    const std::vector<SparseW3jEntry>& sparseW3j(int l1, int l2, int l3) const;
    /** The block a layer's tensor-product paths (l1, l2, l3) use: the layer's own (TensorProductSpec::w3j), or the
     *  model's. */
    const std::vector<SparseW3jEntry>& convW3j(int layer, int l1, int l2, int l3) const;
    /** [contraction][nu-1] of a layer. */
    const std::vector<std::vector<ContractionTerms>>& layerContractions(int layer) const { return contractionTerms[layer]; }
    /** Normalisation of the harmonics recursion Y_l = norm_l C(1, l-1, l) Y_1 Y_{l-1}. */
    double harmonicsNormalization(int l) const { return shNormalization[l]; }
    /** The real spherical harmonics Y_lm(v / |v|), l <= the model's l_max, by that recursion over the model's own
     *  Wigner 3j blocks (e3nn's basis and component normalisation: |Y_l|^2 = 2l + 1); with dy, their gradient
     *  with respect to v. */
    void sphericalHarmonics(const OpenMM::Vec3& v, double* y, double (*dy)[3]) const;

private:
    const ENNModel& model;
    std::map<std::array<int, 3>, std::vector<SparseW3jEntry>> sparse;
    std::vector<std::map<std::array<int, 3>, std::vector<SparseW3jEntry>>> layerSparse; // [layer]: its own blocks
    std::vector<double> shNormalization;                                      // per l
    std::vector<std::vector<std::vector<ContractionTerms>>> contractionTerms; // [layer][contraction][nu-1]
};

} // namespace OpenMMENN

#endif
