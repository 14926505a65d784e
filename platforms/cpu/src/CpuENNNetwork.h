#ifndef OPENMM_CPU_ENN_NETWORK_H_
#define OPENMM_CPU_ENN_NETWORK_H_

// The network of an ENNModel on the CPU platform: float arithmetic (energies and forces summed in
// double), threads from the platform's pool, a cell list, and radial MLPs replaced by cubic Hermite
// tables of their outputs that are checked against the exact MLP to float precision when built (one per element
// pair present for a model with a distance transform). MACE's materials blocks: a density-normalised layer's edge
// density is one more column of its table; the ZBL pair repulsion is evaluated per edge in double.
//
// Layout: node features are [node][irreps entry][m][channel], channel fastest, so that e3nn linears
// are matrix products over channels and tensor products and contractions vectorise over channels.
// Each array has one storage irreps (a model may describe the same array as "4x1o+4x1o" on one
// side and "8x1o" on the other: one layout in [channel][m] order, two in [m][channel] order), and
// every operation addresses its entries through it.
// Nodes are kept sorted by element, so that per-element weights are matrix products over node ranges.
// Every parallel phase writes only what its own nodes or edges own, in a fixed order, so results
// are identical from run to run and for any thread count.

#include "ENNChargeGroups.h"
#include "ENNModelMath.h"
#include "ENNPolarHead.h"
#include "ENNRadialTable.h"
#include "CpuENNNeighbors.h"
#include "openmm/internal/ThreadPool.h"
#include <Eigen/Core>
#include <memory>
#include <vector>

namespace OpenMMENN {

class CpuENNNetwork {
public:
    /** @param species element index of each atom (the caller's order, kept for inputs and outputs) */
    CpuENNNetwork(std::shared_ptr<const ENNModel> model, const std::vector<int>& species);

    /** Same contract as ReferenceENNNetwork::compute, with positions (model units) instead of edges. A layer-feature
     *  head (PolarMACE's) reads the layers' outputs in double and e3nn's layout, its gradient coming back in float. */
    double compute(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box, const ENNChargeGroups& chargeGroups,
                   const InitialNodeFeatures& initial, const ChargeCoupling& coupling, std::vector<double>* charges, std::vector<OpenMM::Vec3>* gradient,
                   OpenMM::ThreadPool& pool, const LayerFeatureHead& head = {});

    const ENNModel& getModel() const { return *model; }

    typedef Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> Matrix;
    /** Nodes in one piece of work at most (the linears take at most this many nodes at a time). */
    static constexpr int MaxChunkSize = 16;

    /** An e3nn linear in this layout: out[n, entry b, m, :] += in[n, entry a, m, :] * W_path (W_path inMul x outMul). */
    struct Linear {
        struct Path {
            int inOffset, outOffset, inMul, outMul, dim;
            int inStep, outStep; // distance between components m of a channel (the storage entry's multiplicity)
        };
        std::vector<Path> paths;
        int dimIn = 0, dimOut = 0;
        bool perElement = false;
        std::vector<std::vector<Matrix>> weights, transposedWeights; // [element or 0][path]
        void forward(const float* in, float* out, int n0, int n1, const std::vector<int>& elementStart) const;
        void backward(const float* gradOut, float* gradIn, int n0, int n1, const std::vector<int>& elementStart) const;
    };
    struct Readout {
        bool nonlinear = false;
        Linear linear1, linear2;
        ActivationSpec activation;
    };

private:
    /** One channel-wise tensor-product path, its CG entries grouped by input component i: each group's
     *  entries share x_i and w x_i, which are then read once per edge instead of once per entry. */
    struct TensorProductPath {
        int in1Offset, in1Step, mul, shOffset, outOffset, outStep, weightOffset;
        struct Entry {
            int j, k;
            float value; // CG value times the path weight
        };
        struct Group {
            int i;
            std::vector<Entry> entries;
        };
        std::vector<Group> groups;
    };
    /** A layer's radial-MLP table (ENNRadialTable) in float. */
    struct RadialTable {
        int intervals = 0, numWeights = 0;
        float inverseSpacing = 0;
        std::vector<float> data; // [node][value | spacing * derivative][weight]
        void evaluate(float r, float* w, float* dwdr) const;
    };
    struct ContractionOrder {
        int correlation;
        std::vector<int> outIndex;              // per term: offset in the product input of (contraction, M)
        std::vector<std::array<int, 3>> factor; // per term: offsets of A's features (first `correlation` used)
        std::vector<float> coefficients;        // [element][term][channel]
    };
    struct Layer : LayerSizes {
        bool residual;
        bool densityNormalized; // the message divided by alpha + beta d (d from column densityColumn of the table)
        float densityAlpha = 1, densityBeta = 1;
        int densityColumn, radialOutputs;
        // MACE's non-linear block: linear's output (dimension dGateIn), normalised, plus linearResidual(hUp), through
        // the gate and linear2 to the message.
        bool nonlinear = false;
        int dGateIn = 0;
        Linear linearResidual, linear2;
        GateSpec gate;
        GateLayout gateLayout; // (this layout's: [entry][m][channel])
        // linear: the messages' linear (in a non-residual layer, composed with the skip that follows it); skip: a
        // residual layer's self-connection from its input features
        Linear linearUp, linear, skip, productLinear;
        Readout readout;
        std::vector<TensorProductPath> tp;
        RadialTable radial; // empty for a model whose radial tables are per element pair (the network holds those)
        std::vector<ContractionOrder> contraction;
    };
    struct Scratch { // per thread, sized for one chunk of nodes
        std::vector<float> conv, message, product, hidden, gradHidden, scalar, w, dw, gw, wx, z, gateOutput, gateInputGradient;
    };

    struct HarmonicsStep {
        int l;
        float norm;
        std::vector<SparseW3jEntry> cg; // C(1, l-1, l)
    };
    /** What this platform derives from a model whatever the particles are: the weights in this layout and
     *  the radial tables (for the medium-size benchmark model about 10 MiB, and most of a Context's setup
     *  time; docs/reliability.md). Built once per model and shared read-only by every network of that model in the process. */
    struct Weights {
        std::vector<float> chargeOffset;           // per element
        std::vector<Layer> layers;
        std::vector<Readout> chargeReadouts; // summed (MACELES: one per layer)
        std::vector<int> chargeReadoutLayers; // the layer each reads
        std::vector<HarmonicsStep> harmonicsSteps;
    };
    /** The one Weights of `model` while any network holds it (built on first use; thread-safe). */
    static std::shared_ptr<const Weights> weightsOf(const std::shared_ptr<const ENNModel>& model);
    static std::shared_ptr<const Weights> buildWeights(const std::shared_ptr<const ENNModel>& model);
    /** The shared table (ENNRadialTable.h) in float, as this platform reads it. */
    static RadialTable floatTable(const ENNRadialTable& table);
    void harmonics(const float* v, float* y, float (*dy)[3]) const;
    void forwardLayer(int t, OpenMM::ThreadPool& pool, bool wantCharges);
    void backwardLayer(int t, OpenMM::ThreadPool& pool);

    std::shared_ptr<const ENNModel> model;
    std::shared_ptr<const Weights> weights;
    // The parts of `weights`, by name:
    const std::vector<float>& chargeOffset;
    const std::vector<Layer>& layers;
    const std::vector<Readout>& chargeReadouts;
    const std::vector<int>& chargeReadoutLayers;
    const std::vector<HarmonicsStep>& harmonicsSteps;
    int numNodes, nsh;
    /** The table of layer t for an edge between elements a and b: radialOfPair[t][a * n_elements + b]. */
    std::vector<std::vector<const RadialTable*>> radialOfPair;
    std::vector<std::unique_ptr<RadialTable>> pairTables; // this network's per-pair tables (distance transform)
    std::vector<int> order;          // node -> caller's atom
    std::vector<int> nodeSpecies;    // element of each node (sorted)
    std::vector<int> elementStart;   // nodes of element z: [elementStart[z], elementStart[z+1])
    std::vector<double> nodeConstant;          // E0 + shift of each node (the initial features' energy is added per step)

    int edgeChunkSize = MaxChunkSize; // nodes per piece of per-edge work (their edges, received or sent)
    int nodeChunkSize = MaxChunkSize; // nodes per piece of per-node work (linears, contractions, readouts); >= edgeChunkSize

    // Storage reused from step to step.
    CpuENNNeighborList neighbors;
    std::vector<OpenMM::Vec3> nodePositions;
    std::vector<float> edgeLength, edgeHarmonics, edgeGradLength, edgeGradHarmonics, edgeGradVec;
    std::vector<int> edgePair;                   // a * n_elements + b of each edge's sender and receiver elements
    std::vector<double> edgeRepulsion;           // each edge's ZBL energy (scaled), summed in edge order
    std::vector<float> edgeRepulsionDerivative;  // and its r-derivative
    std::vector<std::vector<float>> nodeDensity; // per density-normalised layer: alpha + beta d_n of each node
    std::vector<float> densityGradient;          // dE/d(alpha + beta d_n) of the layer being differentiated
    // Per non-linear layer: the gate's input, and linear's normalised output within it (for the density gradient).
    std::vector<std::vector<float>> gateInput, normalizedLinear;
    std::vector<float> gradUpResidual;           // dE/dhUp through linearResidual, of the layer being differentiated
    std::vector<std::vector<float>> h, hUp, A; // per layer
    std::vector<float> gradH, gradIn, gradM;
    std::vector<float> messages; // a small system's messages between its per-edge and per-node passes
    std::vector<double> nodeEnergy, rawCharge, charge, phi;
    std::vector<float> rawChargeGradient; // dE/d(raw charge) per node during the backward pass (empty: no charges)
    std::vector<std::vector<float>> headGradient; // dE/d(layer t's output) from a layer-feature head, this layout (empty: none)
    std::vector<Scratch> scratch;
};

} // namespace OpenMMENN

#endif
