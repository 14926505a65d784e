#ifndef OPENMM_COMMON_ENN_NETWORK_H_
#define OPENMM_COMMON_ENN_NETWORK_H_

// The network of an ENNForce on a GPU, through OpenMM's common compute framework (one source for
// CUDA and OpenCL; kernels in kernels/ennNetwork.cc, compiled at run time with the model's sizes as
// defines). Arithmetic in the context's `real` (float in single and mixed precision, double in
// double), energies summed in `mixed`.
//
// Layout: node features as [node][feature] in e3nn order (the Reference layout), so that simplified
// and unsimplified irreps of one array agree. Every e3nn linear, its transpose, the tensor product
// and its transposes are tables of sparse rows built once from the model; the symmetric contractions
// are term lists with per-element, per-channel coefficients (the Reference's merged U and W).
// Each output is written by one thread and edges are gathered per receiver (and per sender through
// the reverse edge). The only atomics are the integer counts of the neighbour search's cell list,
// whose edge lists are then sorted, so results are reproducible run to run.

#include "CommonENNDeviceWork.h"
#include "ReferenceENNNetwork.h"
#include "openmm/common/ComputeArray.h"
#include "openmm/common/ComputeContext.h"
#include "openmm/common/ComputeEvent.h"
#include "openmm/common/ComputeKernel.h"
#include <deque>
#include <memory>
#include <vector>

namespace OpenMMENN {

class CommonENNNetwork {
public:
    /** @param mlOfAtom     for every System particle, its index among the ML particles, or -1
     *  @param chargeGroups the constraint on the predicted charges
     *  @param deviceWork   where what each step queues is counted */
    CommonENNNetwork(OpenMM::ComputeContext& cc, std::shared_ptr<const ENNModel> model, const std::vector<int>& species,
                     const std::vector<int>& mlOfAtom, bool periodic, const ENNChargeGroups& chargeGroups, DeviceWork& deviceWork);

    /** Queues the neighbour list, edge geometry and the forward pass at the context's current positions. */
    void forward(bool wantCharges);
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
     * Backward pass: adds -dE/dx (plus, with a potential, the chain-rule term -sum_i phi_i dq_i/dx) to
     * the context's force buffer, together with `extraForces` if given. Both are device arrays:
     * @param potential   phi_i = dE_other/dq_i (mixed, per ML particle, kJ/mol/e), or null
     * @param extraForces forces (real4, per System particle, kJ/mol/nm), or null
     */
    void backward(OpenMM::ComputeArray* potential, OpenMM::ComputeArray* extraForces);
    /** The predicted charges of the last forward pass with wantCharges (real, in ML order, e). */
    OpenMM::ComputeArray& getCharges() { return charges; }

    const ENNModel& getModel() const { return *model; }
    /** Sets the charges of the charge groups (the same groups as at construction). */
    void setChargeGroupCharges(const ENNChargeGroups& chargeGroups) { groupCharge.upload(chargeGroups.charge, true); }

private:
    /** Rows of a sparse operator in the shared tables. */
    struct SparseRows {
        int rowStart = 0, fieldStart = 0, valueStart = 0, termsPerSet = 0, dIn = 0, dOut = 0;
    };
    struct Readout {
        bool nonlinear = false;
        int activation = 0, hidden = 0;
        double activationScale = 1;
        SparseRows linear1, linear1T, linear2, linear2T;
    };
    struct Layer : LayerSizes {
        bool residual;
        int numWeights, numMlpLayers, activation;
        double activationScale;
        int mlpStart, mlpSizeStart;
        int tableStart = -1, tableIntervals = 0; // the radial MLP's table in radialTable (single and mixed precision), or -1
        double tableInverseSpacing = 0;
        SparseRows linearUp, linearUpT, linear, linearT, skip, skipT, productLinear, productLinearT;
        SparseRows convolution, convolutionT; // fields: (hUp column, harmonic, weight) / (output, harmonic, weight)
        int contractionStart, contractionValueStart, numContractionTerms, featureStart, numFeatures, outputStart, numOutputs;
        Readout readout;
    };
    /** Adds a sparse operator whose terms are (row, fields...) with one value per set and term. */
    SparseRows addRows(int numRows, int numColumns, int width, const std::vector<int>& rows, const std::vector<int>& fields,
                       const std::vector<std::vector<double>>& values);
    SparseRows addLinear(const LinearSpec& spec, double scale, bool transpose);
    /** `second` after `first` (scaled by firstScale) as one operator (per element if either is), or its transpose. */
    SparseRows addComposedLinear(const LinearSpec& first, double firstScale, const LinearSpec& second, bool transpose);
    Readout addReadout(const ReadoutSpec& spec, double scale);
    OpenMM::ComputeKernel sparseProduct(const SparseRows& rows, OpenMM::ComputeArray& in, OpenMM::ComputeArray& out, bool accumulate);
    OpenMM::ComputeKernel fill(OpenMM::ComputeArray& array, double value);
    void setEdgeCapacity(int capacity);
    void findNeighbors();
    /** Kernels of a readout: forward writes nodeOut; backward adds d(readout)/dh times gradOut to gradIn. */
    void readoutForward(const Readout& r, OpenMM::ComputeArray& h, std::vector<std::pair<OpenMM::ComputeKernel, int>>& launches);
    void readoutBackward(const Readout& r, OpenMM::ComputeArray& gradOut, OpenMM::ComputeArray& gradIn,
                         std::vector<std::pair<OpenMM::ComputeKernel, int>>& launches);
    /** An elementwise activation kernel of a readout ("activate" or "activationBackward") reading hiddenPre. */
    OpenMM::ComputeKernel activationKernel(const char* name, const Readout& r, OpenMM::ComputeArray& out);
    void run(std::vector<std::pair<OpenMM::ComputeKernel, int>>& launches);

    OpenMM::ComputeContext& cc;
    DeviceWork& deviceWork;
    std::shared_ptr<const ENNModel> model;
    /** status: [0] edge capacity exceeded, [1] a non-finite position, [2] coincident atoms, [3] a position
     *  beyond ENNSanityBounds::MaxCoordinate, [4] a charge beyond MaxCharge, [5] the node of [3] or [4],
     *  [6] an energy not finite or beyond MaxEnergyPerAtom per ML atom, [7] a non-finite force, [8] its particle. */
    static const int StatusSize = 9;
    std::vector<int> particleOfNode; // System particle of each ML node, for messages
    int numNodes, numAtoms, nsh, capacity = 0, maxFeatures = 0, maxHidden = 1;
    bool periodic;
    double constantEnergy = 0;
    int numChargeGroups = 1;
    std::vector<int> tableInts;
    std::vector<double> tableReals;
    std::vector<Layer> layers;
    Readout chargeReadout;
    int embeddingStart = 0, embeddingDim = 0;

    OpenMM::ComputeProgram program;
    OpenMM::ComputeEvent statusEvent;
    int numBuckets; // of the neighbour search's cell hash table: a power of two, at least twice the nodes
    OpenMM::ComputeArray cellOfNode, bucketCount, bucketStart, bucketCursor, bucketNodes;
    OpenMM::ComputeKernel cellKernel, bucketOffsetKernel, fillBucketKernel;
    OpenMM::ComputeArray ints, reals, species, mlOfAtom, besselFrequencies, harmonicsIndex, harmonicsValue, chargeOffsets, radialTable;
    OpenMM::ComputeArray positions, count, neededCount, sender, edgeKey, edgeVec, reverse, status, sh, w, dwdr, gradSh, gradR, gradVec;
    std::deque<OpenMM::ComputeArray> h, hUp, A; // deque: ComputeArray must never be copied or moved
    OpenMM::ComputeArray M, B, hidden, hiddenPre, nodeOut, nodeEnergy, work, charges;
    OpenMM::ComputeArray groupStart, groupMembers, nodeGroup, groupCharge, groupShift; // the charge groups (ENNChargeGroups)
    OpenMM::ComputeArray gradH, gradIn, gradM, gradUp, gradB, gradA, gradHidden, gradScalar, ones;
    OpenMM::ComputeKernel gatherKernel, neighborKernel, geometryKernel, edgeGradientKernel, applyForcesKernel;
    OpenMM::ComputeKernel energyKernel, chargeKernel, chargeGradientKernel;
    std::vector<std::pair<OpenMM::ComputeKernel, int>> forwardLaunches, chargeLaunches, backwardLaunches, chargeBackwardLaunches;
};

} // namespace OpenMMENN

#endif
