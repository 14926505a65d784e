#ifndef OPENMM_COMMON_ENN_NETWORK_H_
#define OPENMM_COMMON_ENN_NETWORK_H_

// The network of an ENNForce on a GPU, through OpenMM's common compute framework (one source for
// CUDA and OpenCL; kernels in kernels/ennNetwork.cc, compiled at run time with the model's sizes as
// defines). Arithmetic in the context's `real` (float in single and mixed precision, double in
// double), energies summed in `mixed`.
//
// Layout: node features as [node][feature] in e3nn order (the Reference platform's layout), so that simplified
// and unsimplified irreps of one array agree. Every e3nn linear, its transpose, the tensor product
// and its transposes are tables of sparse rows built once from the model; the symmetric contractions
// are term lists with per-element, per-channel coefficients (ENNModelTables' merged U and W).
// Each output is written by one thread and edges are gathered per receiver (and per sender over its own
// edges, the reverses of those it sends). The only atomics are the integer counts of the neighbour
// search's cell list, whose edge lists are then sorted, so results are reproducible run to run.
// Launches: everything between two global synchronisations is one node program (a work group per node
// running a list of operations), so a step of an L-layer network is the neighbour search, 2L + 1 node
// programs, the energy sum, the charge normalisation and gradient, and the forces (docs/gpu.md).

#include "CommonENNCells.h"
#include "CommonENNDeviceWork.h"
#include "ENNChargeGroups.h"
#include "ENNModelMath.h"
#include "openmm/common/ComputeArray.h"
#include "openmm/common/ComputeContext.h"
#include "openmm/common/ComputeEvent.h"
#include "openmm/common/ComputeKernel.h"
#include <initializer_list>
#include <memory>
#include <vector>

namespace OpenMMENN {

class CommonENNNetwork {
public:
    /** @param mlOfAtom     for every System particle, its index among the ML particles, or -1
     *  @param chargeGroups the constraint on the predicted charges
     *  @param deviceWork   where what each step queues is counted */
    CommonENNNetwork(OpenMM::ComputeContext& cc, std::shared_ptr<const ENNModel> model, const std::vector<int>& species,
                     const std::vector<int>& mlOfAtom, bool periodic, const ENNChargeGroups& chargeGroups,
                     const InitialNodeFeatures& initial, DeviceWork& deviceWork);

    /** Queues the neighbour list, edge geometry and the forward pass at the context's current positions. */
    void forward(bool wantCharges);
    /** forward(), then waits for the status (finishStep): again, with a larger list, where it overflowed. */
    void forwardWithFittingList(bool wantCharges);
    /** Throws OpenMMException (checkPeriodicBox) if the model is periodic and the context's box is unusable. */
    void checkBox() const;
    /** Queues the download of the status, after everything of the step that sets it (forward, energy, backward). */
    void queueStatus();
    /**
     * Waits for the status queued by queueStatus() (read asynchronously, like OpenMM's own neighbour
     * list). Throws OpenMMException for non-finite, blown-up or coincident positions, absurd charges, and
     * a non-finite or absurd energy or force. Returns false if the list overflowed: it has been enlarged,
     * and everything computed from it must be redone.
     */
    bool finishStep();
    /** Flags set on the device (StatusSize ints), for other kernels of the step to report into. */
    OpenMM::ComputeArray& getStatus() { return status; }
    /** Predicted charges at the current positions (e, in ML order), downloaded. */
    std::vector<double> predictCharges();
    /** Adds the network energy (kJ/mol) to the context's energy buffer. */
    void addEnergy();
    /**
     * Backward pass, right after forward() (it starts from the last layer's radial weights still on the
     * device): adds -dE/dx (plus, with a potential, the chain-rule term -sum_i phi_i dq_i/dx) to
     * the context's force buffer, together with `extraForces` if given. Both are device arrays:
     * @param potential   phi_i = dE_other/dq_i (mixed, per ML particle, kJ/mol/e, once times potentialScale), or null
     * @param extraForces forces (real4, per System particle, kJ/mol/nm), or null
     */
    void backward(OpenMM::ComputeArray* potential, OpenMM::ComputeArray* extraForces, double potentialScale = 1.0);
    /** A model with a layer-feature head (PolarMACE's), after forward() and a finished status: every layer's output
     *  features, [layer][node * dim + feature] in e3nn's layout, ML order (as LayerFeatureHead takes them). Waits. */
    std::vector<std::vector<double>> downloadLayerOutputs();
    /** The head's dE/d(each layer's output), as downloadLayerOutputs gives the features, for the next backward(). */
    void uploadLayerGradients(const std::vector<std::vector<double>>& gradients);
    /** The predicted charges of the last forward pass with wantCharges (real, in ML order, e). */
    OpenMM::ComputeArray& getCharges() { return charges; }
    /** The ML positions (real4, model units) the last forward pass gathered. */
    OpenMM::ComputeArray& getPositions() { return positions; }

    const ENNModel& getModel() const { return *model; }
    /** Sets the charges of the charge groups (the same groups as at construction). */
    void setChargeGroupCharges(const ENNChargeGroups& chargeGroups) {
        if (chargeGroups.numGroups() > 0) // (unconstrained charges have none)
            groupCharge.upload(chargeGroups.charge, true);
    }
    /** Sets each element's initial features and energy (a model with a joint embedding: at a new total charge or
     *  multiplicity). */
    void setInitialFeatures(const InitialNodeFeatures& initial);

private:
    /** Rows of a sparse operator in the shared tables. */
    struct SparseRows {
        int rowStart = 0, fieldStart = 0, valueStart = 0, termsPerSet = 0, dIn = 0, dOut = 0;
    };
    struct Readout {
        bool nonlinear = false;
        int activation = 0, hidden = 0;
        int activationScaleIndex = 0; // of the activation's scale in the reals table
        SparseRows linear1, linear1T, linear2, linear2T;
    };
    struct Layer : LayerSizes {
        bool residual;
        int numWeights;
        int radialDescriptor = -1; // the radial MLP (addRadialMLP), for double precision
        int radialOutputs;         // the tensor-product weights, then (density-normalised) the edge density
        bool densityNormalized;    // the message over D = alpha + beta (the node's summed edge densities)
        int densityDescriptor = -1, densityAlphaIndex = -1; // the density network (addRadialMLP); alpha, beta in the reals
        int edgeEmbeddingStart = -1, edgeEmbeddingDim = 0; // per element, the sender's then the receiver's embeddings
        // MACE's non-linear block: A = linear2(gate(S + R)), S = linear(M) / D, R = linearResidual(hUp)
        bool nonlinear = false;
        int dGateIn = 0, dGateOut = 0, gateStart = -1; // gateStart: the gate's table in the ints (nodeGate)
        SparseRows linearResidual, upResidualT, linear2, linear2T; // upResidualT: (linearResidual after linearUp)^T
        int pairTableStart = -1;   // in single and mixed precision: per element pair (a, b), the (start in radialTable,
                                   // intervals, index of the inverse spacing in the reals table) of its table; else -1
        SparseRows linearUp, linearUpT, linear, linearT, skip, skipT, productLinear, productLinearT;
        SparseRows convolution, convolutionT; // fields: (hUp column, harmonic, weight) / (output, harmonic, weight)
        int contractionStart, contractionValueStart, numContractionTerms, featureStart, numFeatures, outputStart, numOutputs;
        Readout readout;
    };
    /** Operations of a node program (kernels/ennNetwork.cc, nodeProgram; passed to it as the OP_* defines). */
    enum Op {
        OpSparseProduct, OpConvolution, OpContraction, OpContractionBackward, OpConvolutionBackwardEdges,
        OpRadialTable, OpRadialMLP, OpActivate, OpActivationBackward, OpZero, OpEmbed, OpAddEnergy, OpEdgeGeometry, OpEdgeGradients,
        OpDensityNormalize, OpDensityGradient, OpDensityScale, OpPairRepulsion, OpGate, OpGateBackward, OpAdd
    };
    static const int OpWords = 12; // the kind and up to 11 parameters
    /** One launch of nodeProgram: ops [first, first + count) of the op table, on every node. */
    struct NodeProgram {
        int first = 0, count = 0;
        OpenMM::ComputeKernel kernel;
    };
    /** Adds a sparse operator whose terms are (row, fields...) with one value per set and term. */
    SparseRows addRows(int numRows, int numColumns, int width, const std::vector<int>& rows, const std::vector<int>& fields,
                       const std::vector<std::vector<double>>& values);
    SparseRows addLinear(const LinearSpec& spec, double scale, bool transpose);
    /** `second` after `first` (scaled by firstScale) as one operator (per element if either is), or its transpose. */
    SparseRows addComposedLinear(const LinearSpec& first, double firstScale, const LinearSpec& second, bool transpose);
    Readout addReadout(const ReadoutSpec& spec, double scale);
    /** A slice of `data` for perNode reals per node; returns its offset. */
    int addNodeArray(int perNode);
    /** Appends an operation to the op table. */
    void addOp(Op kind, std::initializer_list<int> parameters);
    void addSparseProduct(const SparseRows& rows, int in, int out, bool accumulate);
    /** A readout: forward writes (or adds to) out; backward adds d(readout)/dh times gradOut to gradIn. */
    void addReadoutForward(const Readout& r, int in, int out, bool accumulate);
    void addReadoutBackward(const Readout& r, int in, int gradOut, int gradIn);
    /** The layer's radial outputs on each node's edges (into w, dwdr), or, reversed, those of the edges it sends, at
     *  the slots of their reverses (into wReverse, dwdrReverse). */
    void addRadialWeights(const Layer& layer, bool reversed = false);
    /** A radial MLP's descriptor in the ints and its numbers in the reals (kernels/ennNetwork.cc, radialMLPForward). */
    int addRadialMLP(const RadialMLPSpec& mlp);
    /** E0, shift and the initial features' energy of every node. */
    double initialEnergy(const InitialNodeFeatures& initial) const;
    /** Builds the op table: every node program of a step. */
    void buildPrograms();
    NodeProgram beginProgram() const;
    void endProgram(NodeProgram& program) const;
    void setEdgeCapacity(int capacity);
    void findNeighbors();
    void launch(NodeProgram& program);

    OpenMM::ComputeContext& cc;
    DeviceWork& deviceWork;
    std::shared_ptr<const ENNModel> model;
    /** status: [0] edge capacity exceeded, [1] a non-finite position, [2] coincident atoms, [3] a position
     *  beyond ENNSanityBounds::MaxCoordinate, [4] a charge beyond MaxCharge, [5] the node of [3] or [4],
     *  [6] an energy not finite or beyond MaxEnergyPerAtom per ML atom, [7] a non-finite force, [8] its particle. */
    static const int StatusSize = 9;
    std::vector<int> particleOfNode; // System particle of each ML node, for messages
    int numNodes, numAtoms, nsh, capacity = 0, maxFeatures = 0, maxHidden = 1;
    int pairRepulsionStart = 0; // per element pair (a, b): ZBL's screening length, prefactor and cutoff in the reals table
    int densityGradient = 0;    // node slice: dE/dd_n of the layer being differentiated
    std::vector<int> density;   // per layer: the node slice of D_n = alpha + beta d_n, or -1
    std::vector<int> gateNormalized, gateResidual; // per non-linear layer: the node slices of S and R (else -1)
    std::vector<int> speciesHost;
    int maxWeights = 1; // radial weights per edge slot in w and dwdr (the most of any layer: every layer's slots at the same place)
    bool periodic;
    double constantEnergy = 0;
    int numChargeGroups = 1;
    std::vector<int> tableInts;
    std::vector<double> tableReals;
    std::vector<Layer> layers;
    std::vector<Readout> chargeReadouts;  // summed into rawCharge (MACELES: one per layer)
    std::vector<int> chargeReadoutLayers; // the layer each reads
    int embeddingStart = 0, embeddingDim = 0;

    OpenMM::ComputeProgram program;
    OpenMM::ComputeEvent statusEvent;
    int numBuckets; // of the neighbour search's cell hash table: a power of two, at least twice the nodes
    OpenMM::ComputeArray cellOfNode;
    DeviceCellList cells; // of the nodes, for the neighbour search
    OpenMM::ComputeArray ints, reals, species, mlOfAtom, besselFrequencies, harmonicsIndex, harmonicsValue, chargeOffsets, radialTable;
    OpenMM::ComputeArray positions, count, neededCount, sender, edgeKey, edgeVec, reverse, status, sh, w, dwdr, gradSh, gradR, gradVec;
    OpenMM::ComputeArray wReverse, dwdrReverse; // radial outputs of the edges each node sends (directed weights)
    OpenMM::ComputeArray nodeEnergy, work, charges;
    OpenMM::ComputeArray groupStart, groupMembers, nodeGroup, groupCharge, groupShift; // the charge groups (ENNChargeGroups)
    // Node arrays: slices of `data` ([node][feature], real), by offset. h, hUp, A per layer (h one more); the gradient
    // of the convolution's output, gradM, alternates between two slices from layer to layer, because a backward
    // program reads the receivers' gradM of one layer while it writes the next one's.
    OpenMM::ComputeArray data;
    int dataSize = 0;
    std::vector<int> h, hUp, A;
    std::vector<int> headGradient; // per layer, with a layer-feature head (PolarMACE's): dE/dh[t + 1] from the host
    int layerOutputSize = 0;       // of h[1..L] (and of headGradient), reals
    int M = 0, B = 0, hidden = 0, hiddenPre = 0, gradHidden = 0, nodeOut = 0, gradScalar = 0, ones = 0, rawCharge = 0;
    int gradH = 0, gradIn = 0, gradM[2] = {0, 0}, gradUp = 0, gradB = 0, gradA = 0, gated = 0, gradGated = 0, gradGate = 0;
    // The op table and the node programs of a step: the edge geometry, embedding and first linear; each layer's forward
    // pass (the last one also the charge head's readout); the backward pass from the last layer's readouts (with and
    // without the charge head's gradient) to its convolution's edge terms; for each further layer, from the
    // convolution's sender gradient of the one above to its own edge terms, the first layer's ending with the edge
    // gradients.
    std::vector<int> opTable;
    OpenMM::ComputeArray ops;
    NodeProgram initialProgram, lastBackwardProgram, lastBackwardWithChargesProgram;
    std::vector<NodeProgram> forwardPrograms;
    // backwardPrograms[withCharges][t]: from layer t + 1 to layer t (with charges: through its charge readout too, where
    // layer t has one; the same programs where none has)
    std::vector<NodeProgram> backwardPrograms[2];
    OpenMM::ComputeKernel gatherKernel, neighborKernel, applyForcesKernel;
    OpenMM::ComputeKernel energyKernel, chargeKernel, chargeGradientKernel;
    OpenMM::ComputeKernel copyKernel;   // h[1..L] into layerFeatures, for a layer-feature head
    OpenMM::ComputeArray layerFeatures;
};

} // namespace OpenMMENN

#endif
