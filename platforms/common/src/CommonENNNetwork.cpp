#include "CommonENNNetwork.h"
#include "CommonENNCells.h"
#include "CommonENNKernelSources.h"
#include "CommonENNPrecision.h"
#include "ENNRadialTable.h"
#include "ENNSanityBounds.h"
#include "ENNPeriodicGeometry.h"
#include "openmm/OpenMMException.h"
#include "openmm/common/ComputeVectorTypes.h"
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>

using namespace OpenMMENN;
using OpenMM::ComputeArray;
using OpenMM::ComputeKernel;
using OpenMM::Vec3;
using std::vector;

namespace {
const int ReduceSize = CommonENNKernelSources::ReduceSize;
const int InitialCapacity = 32;

/** The kernels index their arrays with int: a size they cannot reach is refused rather than wrapped around. */
void requireIntIndexable(long long size, int numNodes, const char* what) {
    if (size > std::numeric_limits<int>::max())
        throw OpenMM::OpenMMException("ENNForce: the ML region is too large for the GPU kernels (" + std::to_string(numNodes) + " ML particles; " +
                                      what + " would exceed 2^31 values)");
}

int activationKind(const ActivationSpec& a) {
    return a.kind == ActivationSpec::SiLU ? 0 : a.kind == ActivationSpec::Tanh ? 1 : 2;
}
} // namespace

CommonENNNetwork::CommonENNNetwork(OpenMM::ComputeContext& cc, std::shared_ptr<const ENNModel> modelPtr, const vector<int>& speciesOfNode,
                                   const vector<int>& mlOfAtomHost, bool periodic, const ENNChargeGroups& chargeGroups,
                                   const InitialNodeFeatures& initial, DeviceWork& deviceWork)
    : cc(cc), deviceWork(deviceWork), model(std::move(modelPtr)), numNodes(static_cast<int>(speciesOfNode.size())),
      numAtoms(static_cast<int>(mlOfAtomHost.size())), periodic(periodic) {
    particleOfNode.resize(numNodes);
    for (int atom = 0; atom < numAtoms; atom++)
        if (mlOfAtomHost[atom] >= 0)
            particleOfNode[mlOfAtomHost[atom]] = atom;
    for (numBuckets = 64; numBuckets < 2 * numNodes;)
        numBuckets *= 2;
    const ENNModel& m = *model;
    const ENNModelTables tables(*model);
    nsh = (m.shLmax + 1) * (m.shLmax + 1);
    const int nel = m.numElements();
    speciesHost = speciesOfNode;

    // ---- tables ----
    // In single and mixed precision the radial MLPs are read from tables accurate to float precision
    // (ENNRadialTable.h), as on the CPU platform; in double precision they are evaluated exactly.
    // A model with a distance transform has a table per element pair; only the pairs of the elements present are built.
    const bool useTables = !cc.getUseDoublePrecision();
    vector<double> radialTableValues;
    std::map<const ENNRadialTable*, int> tableStartOf; // each distinct table once in radialTable
    vector<std::shared_ptr<const ENNRadialTable>> heldTables; // (so that no table's address is reused meanwhile)
    vector<bool> present(nel, false);
    for (int z : speciesOfNode)
        present[z] = true;
    { // each element's initial features (with the joint embedding's at the current charge and multiplicity)
        embeddingStart = static_cast<int>(tableReals.size());
        embeddingDim = m.embedding.out.dim;
        for (const vector<double>& row : initial.features)
            tableReals.insert(tableReals.end(), row.begin(), row.end());
        maxFeatures = embeddingDim;
        constantEnergy = initialEnergy(initial);
    }
    for (size_t t = 0; t < m.layers.size(); t++) {
        const LayerSpec& L = m.layers[t];
        Layer layer;
        static_cast<LayerSizes&>(layer) = LayerSizes::of(L);
        layer.residual = L.residual;
        layer.numWeights = L.conv.numWeights;
        layer.radialOutputs = numRadialOutputs(L);
        layer.densityNormalized = L.densityNormalized;
        maxWeights = std::max(maxWeights, layer.radialOutputs);
        maxFeatures = std::max({maxFeatures, layer.dIn, layer.dUp, layer.dTp, layer.dMsg, layer.dProd, layer.dOut});
        layer.linearUp = addLinear(L.linearUp, 1.0, false);
        layer.linearUpT = addLinear(L.linearUp, 1.0, true);
        if (L.residual) {
            layer.linear = addLinear(L.linear, 1.0 / L.avgNumNeighbors, false);
            layer.linearT = addLinear(L.linear, 1.0 / L.avgNumNeighbors, true);
            layer.skip = addLinear(L.skip, 1.0, false);
            layer.skipT = addLinear(L.skip, 1.0, true);
        } else { // the skip acts on the messages after `linear`: both are linear, so one product does both
            layer.linear = addComposedLinear(L.linear, 1.0 / L.avgNumNeighbors, L.skip, false);
            layer.linearT = addComposedLinear(L.linear, 1.0 / L.avgNumNeighbors, L.skip, true);
        }
        layer.productLinear = addLinear(L.productLinear, 1.0, false);
        layer.productLinearT = addLinear(L.productLinear, 1.0, true);
        layer.readout = addReadout(L.readout, m.energyScale);

        // The radial networks for double precision (each matrix multiplied by its weight scale), and the parts of the
        // density normalisation and the non-linear block.
        layer.radialDescriptor = addRadialMLP(L.radial);
        if (L.densityNormalized) {
            layer.densityDescriptor = addRadialMLP(L.density.mlp);
            layer.densityAlphaIndex = static_cast<int>(tableReals.size());
            tableReals.insert(tableReals.end(), {L.density.alpha, L.density.beta});
        }
        if (L.hasEdgeEmbeddings()) { // per element: the sender's embeddings, then the receiver's
            const NonLinearBlockSpec& nl = L.nonlinearBlock;
            layer.edgeEmbeddingStart = static_cast<int>(tableReals.size());
            layer.edgeEmbeddingDim = nl.sourceEmbedding.out.dim;
            if (nl.targetEmbedding.out.dim != layer.edgeEmbeddingDim)
                throw OpenMM::OpenMMException("ENNForce: the GPU kernels need sender and receiver embeddings of one size");
            for (const LinearSpec* embedding : {&nl.sourceEmbedding, &nl.targetEmbedding})
                for (int z = 0; z < nel; z++) {
                    const vector<double> row = elementRow(*embedding, z);
                    tableReals.insert(tableReals.end(), row.begin(), row.end());
                }
        }
        if (L.nonlinear) {
            const NonLinearBlockSpec& nl = L.nonlinearBlock;
            layer.nonlinear = true;
            layer.dGateIn = nl.gate.in.dim;
            layer.dGateOut = nl.gate.out.dim;
            maxFeatures = std::max({maxFeatures, layer.dGateIn, layer.dGateOut});
            layer.linearResidual = addLinear(nl.linearResidual, 1.0, false);
            layer.upResidualT = addComposedLinear(L.linearUp, 1.0, nl.linearResidual, true);
            layer.linear2 = addLinear(nl.linear2, 1.0, false);
            layer.linear2T = addLinear(nl.linear2, 1.0, true);
            layer.gateStart = static_cast<int>(tableInts.size());
            const GateSpec& g = nl.gate;
            tableInts.insert(tableInts.end(), {g.scalarStart, g.scalarCount, g.gateStart, static_cast<int>(g.gated.size()),
                                               activationKind(g.scalarActivation), static_cast<int>(tableReals.size()),
                                               activationKind(g.gateActivation), static_cast<int>(tableReals.size()) + 1, g.in.dim, g.out.dim});
            tableReals.insert(tableReals.end(), {g.scalarActivation.scale, g.gateActivation.scale});
            for (const GateSpec::Gated& e : g.gated)
                tableInts.insert(tableInts.end(), {e.start, e.mul, e.dim, e.gateOffset});
        }
        if (useTables) {
            vector<int> pairEntries(size_t(3) * nel * nel, 0);
            for (int a = 0; a < nel; a++)
                for (int b = 0; b < nel; b++) {
                    if (!present[a] || !present[b])
                        continue; // no edge joins them
                    const std::shared_ptr<const ENNRadialTable> table = radialTableOf(model, static_cast<int>(t), a, b);
                    heldTables.push_back(table);
                    auto known = tableStartOf.find(table.get());
                    if (known == tableStartOf.end()) {
                        requireIntIndexable(static_cast<long long>(radialTableValues.size() + table->data.size()), numNodes, "their radial tables");
                        known = tableStartOf.emplace(table.get(), static_cast<int>(radialTableValues.size())).first;
                        radialTableValues.insert(radialTableValues.end(), table->data.begin(), table->data.end());
                    }
                    pairEntries[3 * (a * nel + b)] = known->second;
                    pairEntries[3 * (a * nel + b) + 1] = table->intervals;
                    pairEntries[3 * (a * nel + b) + 2] = static_cast<int>(tableReals.size());
                    tableReals.push_back(table->intervals / table->rMax);
                }
            layer.pairTableStart = static_cast<int>(tableInts.size());
            tableInts.insert(tableInts.end(), pairEntries.begin(), pairEntries.end());
        }

        // Tensor product terms: output (u, k) of path p gets weight p.weight * C[i,j,k] * w[weightOffset + u]
        // * hUp[a.offset + u*d1 + i] * Y[b.offset + j]. The transpose gathers per sender over the sender's own edges,
        // whose harmonics are (-1)^l those of the edges it sends (nodeConvolution): that sign is in its values.
        vector<int> rowsForward, fieldsForward, rowsBackward, fieldsBackward;
        vector<vector<double>> values(1), valuesBackward(1);
        for (const auto& p : L.conv.paths) {
            const auto &a = L.conv.in1.entries[p.in1], &b = L.conv.in2.entries[p.in2], &c = L.conv.out.entries[p.out];
            const auto& cg = tables.convW3j(static_cast<int>(t), a.ir.l, b.ir.l, c.ir.l);
            for (int u = 0; u < a.mul; u++)
                for (const auto& s : cg) {
                    const int o = c.offset + u * c.ir.dim() + s.k, x1 = a.offset + u * a.ir.dim() + s.i, y = b.offset + s.j;
                    const int weight = p.weightOffset + u;
                    rowsForward.push_back(o);
                    fieldsForward.insert(fieldsForward.end(), {x1, y, weight});
                    rowsBackward.push_back(x1);
                    fieldsBackward.insert(fieldsBackward.end(), {o, y, weight});
                    values[0].push_back(p.weight * s.value);
                    valuesBackward[0].push_back((b.ir.l % 2 == 0 ? 1 : -1) * p.weight * s.value);
                }
        }
        layer.convolution = addRows(layer.dTp, layer.dUp, 3, rowsForward, fieldsForward, values);
        layer.convolutionT = addRows(layer.dUp, layer.dTp, 3, rowsBackward, fieldsBackward, valuesBackward);

        // Symmetric contraction: (output offset, output stride per channel, correlation, three factors).
        const int C = L.channels;
        vector<int> featureOffset, featureStride;
        for (const auto& e : L.irrepsMessage().entries)
            for (int mm = 0; mm < e.ir.dim(); mm++) {
                featureOffset.push_back(e.offset + mm);
                featureStride.push_back(e.ir.dim());
            }
        layer.featureStart = static_cast<int>(tableInts.size());
        layer.numFeatures = static_cast<int>(featureOffset.size());
        for (size_t f = 0; f < featureOffset.size(); f++)
            tableInts.insert(tableInts.end(), {featureOffset[f], featureStride[f]});
        layer.contractionStart = static_cast<int>(tableInts.size());
        vector<const ContractionTerms*> orders;
        int outOffset = 0, numTerms = 0;
        for (size_t k = 0; k < L.contractions.size(); k++) {
            const int dM = L.contractions[k].out.dim();
            for (const auto& ct : tables.layerContractions(t)[k]) {
                orders.push_back(&ct);
                for (const auto& key : ct.terms) {
                    tableInts.insert(tableInts.end(), {outOffset + key[0], dM, ct.correlation});
                    for (int f = 0; f < 3; f++) {
                        const bool used = f < ct.correlation;
                        tableInts.push_back(used ? featureOffset[key[f + 1]] : 0);
                        tableInts.push_back(used ? featureStride[key[f + 1]] : 0);
                    }
                    numTerms++;
                }
            }
            outOffset += C * dM;
        }
        layer.numContractionTerms = numTerms;
        // The outputs as (offset, stride per channel), so that the forward kernel clears exactly its channel's entries.
        layer.outputStart = static_cast<int>(tableInts.size());
        layer.numOutputs = 0;
        for (size_t k = 0, offset = 0; k < L.contractions.size(); offset += size_t(C) * L.contractions[k].out.dim(), k++)
            for (int mm = 0; mm < L.contractions[k].out.dim(); mm++, layer.numOutputs++)
                tableInts.insert(tableInts.end(), {static_cast<int>(offset) + mm, L.contractions[k].out.dim()});
        layer.contractionValueStart = static_cast<int>(tableReals.size());
        for (int z = 0; z < nel; z++)
            for (const auto* ct : orders) {
                const size_t T = ct->terms.size();
                tableReals.insert(tableReals.end(), ct->coefficients.begin() + size_t(z) * T * C, ct->coefficients.begin() + size_t(z + 1) * T * C);
            }
        layers.push_back(layer);
    }
    for (const ENNModel::ChargeReadout& r : m.chargeReadouts) {
        chargeReadouts.push_back(addReadout(r.readout, 1.0));
        chargeReadoutLayers.push_back(r.layer);
    }
    // ZBL per element pair (a, b): its screening length, prefactor and cutoff (zblPair).
    pairRepulsionStart = static_cast<int>(tableReals.size());
    if (m.hasPairRepulsion)
        for (int a = 0; a < nel; a++)
            for (int b = 0; b < nel; b++) {
                const ZBLPair pair = zblPair(m, a, b);
                tableReals.insert(tableReals.end(), {pair.screening, pair.prefactor, pair.cutoff});
            }
    // The distance transform's covalent radii, per element.
    const int covalentRadiiStart = static_cast<int>(tableReals.size());
    tableReals.insert(tableReals.end(), m.distanceTransform.covalentRadii.begin(), m.distanceTransform.covalentRadii.end());
    buildPrograms();

    // ---- device arrays ----
    const int realSize = OpenMMENN::realSize(cc), mixedSize = OpenMMENN::mixedSize(cc), real4Size = 4 * realSize;
    ints.initialize<int>(cc, static_cast<int>(tableInts.size()), "ennTableInts");
    ints.upload(tableInts);
    reals.initialize(cc, static_cast<int>(tableReals.size()), realSize, "ennTableReals");
    reals.upload(tableReals, true);
    species.initialize<int>(cc, numNodes, "ennSpecies");
    species.upload(speciesOfNode);
    mlOfAtom.initialize<int>(cc, numAtoms, "ennMLOfAtom");
    mlOfAtom.upload(mlOfAtomHost);
    radialTable.initialize(cc, std::max<int>(1, radialTableValues.size()), realSize, "ennRadialTable");
    if (!radialTableValues.empty())
        radialTable.upload(radialTableValues, true);
    besselFrequencies.initialize(cc, static_cast<int>(m.besselFrequencies.size()), realSize, "ennBessel");
    besselFrequencies.upload(m.besselFrequencies, true);
    {
        vector<int> index;
        vector<double> value;
        for (int l = 2; l <= m.shLmax; l++)
            for (const auto& s : tables.sparseW3j(1, l - 1, l)) {
                index.insert(index.end(), {1 + s.i, (l - 1) * (l - 1) + s.j, l * l + s.k});
                value.push_back(tables.harmonicsNormalization(l) * s.value);
            }
        const int terms = static_cast<int>(value.size());
        harmonicsIndex.initialize<int>(cc, std::max(1, 3 * terms), "ennHarmonicsIndex");
        harmonicsValue.initialize(cc, std::max(1, terms), realSize, "ennHarmonicsValue");
        if (terms > 0) {
            harmonicsIndex.upload(index);
            harmonicsValue.upload(value, true);
        }
        std::map<std::string, std::string> defines;
        defines["NSH"] = cc.intToString(nsh);
        defines["NUM_SH_TERMS"] = cc.intToString(terms);
        defines["NUM_BESSEL"] = cc.intToString(static_cast<int>(m.besselFrequencies.size()));
        defines["ENVELOPE_P"] = cc.doubleToString(m.envelopeP);
        defines["R_MAX"] = cc.doubleToString(m.rMax);
        defines["BESSEL_PREFACTOR"] = cc.doubleToString(m.besselPrefactor);
        defines["MAX_WIDTH"] = cc.intToString(maxHidden);
        defines["REDUCE_SIZE"] = cc.intToString(ReduceSize);
        defines["NUM_BUCKETS"] = cc.intToString(numBuckets);
        defines["OP_WORDS"] = cc.intToString(OpWords);
        defines["WEIGHT_STRIDE"] = cc.intToString(maxWeights);
        defines["NUM_ELEMENTS"] = cc.intToString(nel);
        if (m.applyCutoff)
            defines["APPLY_CUTOFF"] = "1";
        if (m.harmonicsOfYZX)
            defines["HARMONICS_OF_YZX"] = "1";
        if (m.distanceTransform.kind == DistanceTransformSpec::Agnesi) {
            defines["AGNESI_TRANSFORM"] = "1";
            defines["AGNESI_A"] = cc.doubleToString(m.distanceTransform.a);
            defines["AGNESI_Q"] = cc.doubleToString(m.distanceTransform.q);
            defines["AGNESI_P"] = cc.doubleToString(m.distanceTransform.p);
            defines["COVALENT_RADII_START"] = cc.intToString(covalentRadiiStart);
        }
        if (m.distanceTransform.kind == DistanceTransformSpec::Soft) {
            defines["SOFT_TRANSFORM"] = "1";
            defines["SOFT_ALPHA"] = cc.doubleToString(m.distanceTransform.alpha);
            defines["COVALENT_RADII_START"] = cc.intToString(covalentRadiiStart);
        }
        if (m.hasPairRepulsion) {
            const PairRepulsionSpec& zbl = m.pairRepulsion;
            for (int k = 0; k < 4; k++) {
                defines["ZBL_C" + std::to_string(k)] = cc.doubleToString(zbl.c[k]);
                defines["ZBL_E" + std::to_string(k)] = cc.doubleToString(zbl.exponents[k]);
            }
            defines["ZBL_P"] = cc.doubleToString(zbl.envelopeP);
            // The envelope as a polynomial in u = 1 - r / rc, whose terms below u^3 vanish: near rc, where it is small,
            // this form keeps its relative precision in float (the powers of x cancel to 1e-6 of their size there).
            const int p = zbl.envelopeP;
            vector<double> inX(p + 3, 0.0), inU(p + 3, 0.0);
            inX[0] = 1.0;
            inX[p] = -(p + 1.0) * (p + 2.0) / 2;
            inX[p + 1] = p * (p + 2.0);
            inX[p + 2] = -p * (p + 1.0) / 2;
            for (int j = 0; j <= p + 2; j++) { // x^j = (1 - u)^j
                double binomial = 1.0;
                for (int k = 0; k <= j; k++) {
                    inU[k] += inX[j] * binomial * (k % 2 ? -1.0 : 1.0);
                    binomial = binomial * (j - k) / (k + 1);
                }
            }
            // f = u^3 sum_k c_k u^(k-3) and df/du = u^2 sum_k k c_k u^(k-3), k = 3..p+2, in Horner's form.
            std::string value = "0", derivative = "0";
            for (int k = p + 2; k >= 3; k--) {
                value = "(" + value + ")*(u)+" + cc.doubleToString(inU[k]);
                derivative = "(" + derivative + ")*(u)+" + cc.doubleToString(k * inU[k]);
            }
            defines["ZBL_ENVELOPE(u)"] = "((u)*(u)*(u)*(" + value + "))";
            defines["ZBL_ENVELOPE_DU(u)"] = "((u)*(u)*(" + derivative + "))";
        }
        const std::pair<const char*, Op> opNames[] = {
            {"OP_SPARSE_PRODUCT", OpSparseProduct}, {"OP_CONVOLUTION", OpConvolution}, {"OP_CONTRACTION", OpContraction},
            {"OP_CONTRACTION_BACKWARD", OpContractionBackward}, {"OP_CONVOLUTION_BACKWARD_EDGES", OpConvolutionBackwardEdges}, {"OP_RADIAL_TABLE", OpRadialTable}, {"OP_RADIAL_MLP", OpRadialMLP},
            {"OP_ACTIVATE", OpActivate}, {"OP_ACTIVATION_BACKWARD", OpActivationBackward}, {"OP_ZERO", OpZero}, {"OP_EMBED", OpEmbed},
            {"OP_ADD_ENERGY", OpAddEnergy}, {"OP_EDGE_GEOMETRY", OpEdgeGeometry}, {"OP_EDGE_GRADIENTS", OpEdgeGradients},
            {"OP_DENSITY_NORMALIZE", OpDensityNormalize}, {"OP_DENSITY_GRADIENT", OpDensityGradient}, {"OP_DENSITY_SCALE", OpDensityScale},
            {"OP_PAIR_REPULSION", OpPairRepulsion}, {"OP_GATE", OpGate}, {"OP_GATE_BACKWARD", OpGateBackward}, {"OP_ADD", OpAdd}};
        for (const auto& [name, kind] : opNames)
            defines[name] = cc.intToString(kind);
        program = cc.compileProgram(CommonENNKernelSources::ennReduce + CommonENNKernelSources::ennCells + CommonENNKernelSources::ennNetwork, defines);
    }
    vector<double> offsets(nel, 0.0);
    if (m.hasChargeHead)
        offsets = m.chargeElementOffsets;
    chargeOffsets.initialize(cc, nel, realSize, "ennChargeOffsets");
    chargeOffsets.upload(offsets, true);

    positions.initialize(cc, numNodes, real4Size, "ennPositions");
    count.initialize<int>(cc, numNodes, "ennNeighborCount");
    neededCount.initialize<int>(cc, numNodes, "ennNeededNeighborCount");
    cellOfNode.initialize(cc, numNodes, 4 * sizeof(int), "ennCellOfNode");
    // The neighbour search's cell list, in the model's length unit; each receiver sorts its own edges, so the buckets
    // need no sorting.
    cells.create(cc, program, positions, numNodes, numBuckets, periodic, model->rMax, cellOfNode, false);
    status.initialize<int>(cc, StatusSize, "ennStatus");
    data.initialize(cc, std::max(1, dataSize), realSize, "ennNodeData");
    {
        vector<double> initial(std::max(1, dataSize), 0.0);
        std::fill_n(initial.begin() + ones, numNodes, 1.0); // the energy readouts' output gradient
        data.upload(initial, true);
    }
    if (!headGradient.empty()) {
        layerFeatures.initialize(cc, std::max(1, layerOutputSize), realSize, "ennLayerFeatures");
        copyKernel = program->createKernel("copyReals");
        copyKernel->addArg(data);
        copyKernel->addArg(h[1]);
        copyKernel->addArg(layerOutputSize);
        copyKernel->addArg(layerFeatures);
    }
    charges.initialize(cc, std::max(1, numNodes), realSize, "ennCharges");
    ops.initialize<int>(cc, static_cast<int>(opTable.size()), "ennNodeOps");
    ops.upload(opTable);
    nodeEnergy.initialize(cc, numNodes, mixedSize, "ennNodeEnergy");
    work.initialize(cc, numNodes, mixedSize, "ennWork");
    numChargeGroups = chargeGroups.numGroups();
    const int numGroups = numChargeGroups;
    groupStart.initialize<int>(cc, numGroups + 1, "ennGroupStart");
    groupStart.upload(chargeGroups.start);
    groupMembers.initialize<int>(cc, std::max(1, numNodes), "ennGroupMembers");
    nodeGroup.initialize<int>(cc, std::max(1, numNodes), "ennNodeGroup");
    if (numNodes > 0) {
        vector<int> members = chargeGroups.members; // none for unconstrained charges
        members.resize(numNodes, 0);
        groupMembers.upload(members);
        nodeGroup.upload(chargeGroups.groupOf);
    }
    groupCharge.initialize(cc, std::max(1, numGroups), mixedSize, "ennGroupCharge");
    groupShift.initialize(cc, std::max(1, numGroups), mixedSize, "ennGroupShift");
    setChargeGroupCharges(chargeGroups);
    statusEvent = cc.createEvent();
    setEdgeCapacity(InitialCapacity);
}

CommonENNNetwork::SparseRows CommonENNNetwork::addRows(int numRows, int numColumns, int width, const vector<int>& rows,
                                                       const vector<int>& fields, const vector<vector<double>>& values) {
    const size_t numTerms = rows.size();
    vector<size_t> order(numTerms);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rows[a] < rows[b]; });
    SparseRows r;
    r.dIn = numColumns;
    r.dOut = numRows;
    r.rowStart = static_cast<int>(tableInts.size());
    vector<int> start(numRows + 1, 0);
    for (int row : rows)
        start[row + 1]++;
    for (int i = 0; i < numRows; i++)
        start[i + 1] += start[i];
    tableInts.insert(tableInts.end(), start.begin(), start.end());
    r.fieldStart = static_cast<int>(tableInts.size());
    for (size_t t : order)
        for (int k = 0; k < width; k++)
            tableInts.push_back(fields[t * width + k]);
    r.valueStart = static_cast<int>(tableReals.size());
    r.termsPerSet = values.size() > 1 ? static_cast<int>(numTerms) : 0;
    for (const auto& set : values)
        for (size_t t : order)
            tableReals.push_back(set[t]);
    return r;
}

CommonENNNetwork::SparseRows CommonENNNetwork::addLinear(const LinearSpec& spec, double scale, bool transpose) {
    const int sets = spec.perElement ? model->numElements() : 1;
    vector<int> rows, columns;
    vector<vector<double>> values(sets);
    for (int z = 0; z < sets; z++)
        forEachLinearTerm(spec, z, [&](int i, int o, double c) {
            if (z == 0) {
                rows.push_back(transpose ? i : o);
                columns.push_back(transpose ? o : i);
            }
            values[z].push_back(scale * c);
        });
    if (transpose)
        return addRows(spec.in.dim, spec.out.dim, 1, rows, columns, values);
    return addRows(spec.out.dim, spec.in.dim, 1, rows, columns, values);
}

CommonENNNetwork::SparseRows CommonENNNetwork::addComposedLinear(const LinearSpec& first, double firstScale, const LinearSpec& second,
                                                                 bool transpose) {
    const bool perElement = first.perElement || second.perElement;
    const int sets = perElement ? model->numElements() : 1;
    // Per set, the terms (output o of second, input i of first) of the product, summed in double.
    vector<std::map<std::pair<int, int>, double>> terms(sets);
    for (int z = 0; z < sets; z++) {
        vector<vector<std::pair<int, double>>> into(first.out.dim); // first's terms by output: (input, value)
        forEachLinearTerm(first, first.perElement ? z : 0, [&](int i, int o, double c) { into[o].push_back({i, firstScale * c}); });
        forEachLinearTerm(second, second.perElement ? z : 0, [&](int m, int o, double c) {
            for (const auto& [i, c1] : into[m])
                terms[z][{o, i}] += c * c1;
        });
    }
    std::set<std::pair<int, int>> pattern; // the same rows and columns for every set
    for (const auto& set : terms)
        for (const auto& term : set)
            pattern.insert(term.first);
    vector<int> rows, columns;
    vector<vector<double>> values(sets);
    for (const auto& [o, i] : pattern) {
        rows.push_back(transpose ? i : o);
        columns.push_back(transpose ? o : i);
        for (int z = 0; z < sets; z++) {
            auto found = terms[z].find({o, i});
            values[z].push_back(found == terms[z].end() ? 0.0 : found->second);
        }
    }
    if (transpose)
        return addRows(first.in.dim, second.out.dim, 1, rows, columns, values);
    return addRows(second.out.dim, first.in.dim, 1, rows, columns, values);
}

CommonENNNetwork::Readout CommonENNNetwork::addReadout(const ReadoutSpec& spec, double scale) {
    Readout r;
    r.nonlinear = spec.nonlinear;
    if (spec.linear1.out.dim != (spec.nonlinear ? spec.linear2.in.dim : 1))
        throw OpenMM::OpenMMException("ENNForce: a readout's irreps do not end in one scalar");
    r.linear1 = addLinear(spec.linear1, spec.nonlinear ? 1.0 : scale, false);
    r.linear1T = addLinear(spec.linear1, spec.nonlinear ? 1.0 : scale, true);
    if (spec.nonlinear) {
        r.hidden = spec.linear1.out.dim;
        r.activation = activationKind(spec.activation);
        r.activationScaleIndex = static_cast<int>(tableReals.size());
        tableReals.push_back(spec.activation.scale);
        r.linear2 = addLinear(spec.linear2, scale, false);
        r.linear2T = addLinear(spec.linear2, scale, true);
    }
    return r;
}

int CommonENNNetwork::addRadialMLP(const RadialMLPSpec& mlp) {
    const int numLayers = static_cast<int>(mlp.weights.size());
    const int descriptor = static_cast<int>(tableInts.size());
    tableInts.insert(tableInts.end(), {numLayers, activationKind(mlp.activation), static_cast<int>(tableReals.size()), 0, -1, -1});
    tableReals.push_back(mlp.activation.scale);
    tableInts[descriptor + 3] = static_cast<int>(tableReals.size());
    for (int k = 0; k < numLayers; k++)
        for (double x : mlp.weights[k])
            tableReals.push_back(x * mlp.weightScales[k]);
    if (!mlp.biases.empty()) {
        tableInts[descriptor + 4] = static_cast<int>(tableReals.size());
        for (const vector<double>& bias : mlp.biases)
            tableReals.insert(tableReals.end(), bias.begin(), bias.end());
    }
    if (!mlp.layerNorms.empty()) {
        tableInts[descriptor + 5] = static_cast<int>(tableReals.size());
        for (const RadialMLPSpec::LayerNorm& norm : mlp.layerNorms) {
            tableReals.insert(tableReals.end(), norm.weight.begin(), norm.weight.end());
            tableReals.insert(tableReals.end(), norm.bias.begin(), norm.bias.end());
            tableReals.push_back(norm.eps);
        }
    }
    tableInts.insert(tableInts.end(), mlp.sizes.begin(), mlp.sizes.end());
    for (int size : mlp.sizes)
        maxHidden = std::max(maxHidden, size);
    return descriptor;
}

double CommonENNNetwork::initialEnergy(const InitialNodeFeatures& initial) const {
    double energy = 0.0;
    for (int z : speciesHost)
        energy += model->e0[z] + model->energyShift + initial.energy[z];
    return energy;
}

void CommonENNNetwork::setInitialFeatures(const InitialNodeFeatures& initial) {
    if (!model->hasJointEmbedding)
        return; // (nothing depends on the charge and multiplicity)
    vector<double> rows;
    for (const vector<double>& row : initial.features)
        rows.insert(rows.end(), row.begin(), row.end());
    if (cc.getUseDoublePrecision())
        reals.uploadSubArray(rows.data(), embeddingStart, static_cast<int>(rows.size()));
    else {
        const vector<float> values(rows.begin(), rows.end());
        reals.uploadSubArray(values.data(), embeddingStart, static_cast<int>(values.size()));
    }
    constantEnergy = initialEnergy(initial);
    setMixedArg(cc, energyKernel, 2, constantEnergy);
}

int CommonENNNetwork::addNodeArray(int perNode) {
    const long long size = dataSize + static_cast<long long>(numNodes) * std::max(1, perNode);
    requireIntIndexable(size, numNodes, "their node features");
    const int offset = dataSize;
    dataSize = static_cast<int>(size);
    return offset;
}

void CommonENNNetwork::addOp(Op kind, std::initializer_list<int> parameters) {
    if (parameters.size() >= OpWords)
        throw OpenMM::OpenMMException("CommonENNNetwork: an operation with too many parameters");
    opTable.push_back(kind);
    opTable.insert(opTable.end(), parameters.begin(), parameters.end());
    opTable.resize(opTable.size() + OpWords - 1 - parameters.size(), 0);
}

void CommonENNNetwork::addSparseProduct(const SparseRows& r, int in, int out, bool accumulate) {
    addOp(OpSparseProduct, {in, out, r.rowStart, r.fieldStart, r.valueStart, r.termsPerSet, r.dIn, r.dOut, accumulate ? 1 : 0});
}

void CommonENNNetwork::addReadoutForward(const Readout& r, int in, int out, bool accumulate) {
    if (!r.nonlinear) {
        addSparseProduct(r.linear1, in, out, accumulate);
        return;
    }
    addSparseProduct(r.linear1, in, hiddenPre, false);
    addOp(OpActivate, {hiddenPre, hidden, r.hidden, r.activation, r.activationScaleIndex});
    addSparseProduct(r.linear2, hidden, out, accumulate);
}

void CommonENNNetwork::addReadoutBackward(const Readout& r, int in, int gradOut, int gradIn) {
    // gradIn += readout'(h)^T gradOut; a nonlinear readout first recomputes its pre-activations from its input.
    if (!r.nonlinear) {
        addSparseProduct(r.linear1T, gradOut, gradIn, true);
        return;
    }
    addSparseProduct(r.linear1, in, hiddenPre, false);
    addSparseProduct(r.linear2T, gradOut, gradHidden, false);
    addOp(OpActivationBackward, {hiddenPre, gradHidden, r.hidden, r.activation, r.activationScaleIndex});
    addSparseProduct(r.linear1T, gradHidden, gradIn, true);
}

void CommonENNNetwork::addRadialWeights(const Layer& L, bool reversed) {
    if (L.pairTableStart >= 0)
        addOp(OpRadialTable, {L.pairTableStart, L.radialOutputs, reversed ? 1 : 0});
    else
        addOp(OpRadialMLP, {L.radialDescriptor, L.densityDescriptor, L.numWeights, L.edgeEmbeddingStart, L.edgeEmbeddingDim, reversed ? 1 : 0});
}

CommonENNNetwork::NodeProgram CommonENNNetwork::beginProgram() const {
    NodeProgram p;
    p.first = static_cast<int>(opTable.size()) / OpWords;
    return p;
}

void CommonENNNetwork::endProgram(NodeProgram& p) const {
    p.count = static_cast<int>(opTable.size()) / OpWords - p.first;
}

void CommonENNNetwork::buildPrograms() {
    const int numLayers = static_cast<int>(layers.size());
    int hiddenSize = 1;
    for (const Layer& layer : layers)
        hiddenSize = std::max(hiddenSize, layer.readout.hidden);
    for (const Readout& r : chargeReadouts)
        hiddenSize = std::max(hiddenSize, r.hidden);
    for (int t = 0; t <= numLayers; t++) // (one after the other: a layer-feature head downloads h[1..L] at once)
        h.push_back(addNodeArray(t == 0 ? embeddingDim : layers[t - 1].dOut));
    for (int t = 0; t < numLayers; t++) {
        hUp.push_back(addNodeArray(layers[t].dUp));
        A.push_back(addNodeArray(layers[t].dMsg));
    }
    if (model->hasPolarHead) // dE/dh of each layer's output from the head, uploaded each step (one block, in layer order)
        for (int t = 0; t < numLayers; t++) {
            headGradient.push_back(addNodeArray(layers[t].dOut));
            layerOutputSize += numNodes * layers[t].dOut;
        }
    for (int* slice : {&M, &B, &gradH, &gradIn, &gradM[0], &gradM[1], &gradUp, &gradB, &gradA})
        *slice = addNodeArray(maxFeatures);
    for (int* slice : {&hidden, &hiddenPre, &gradHidden})
        *slice = addNodeArray(hiddenSize);
    for (int* slice : {&nodeOut, &gradScalar, &ones, &densityGradient, &rawCharge})
        *slice = addNodeArray(1);
    for (const Layer& layer : layers) { // D_n of a density-normalised layer; a non-linear layer's gate input S + R
        density.push_back(layer.densityNormalized ? addNodeArray(1) : -1);
        gateNormalized.push_back(layer.nonlinear ? addNodeArray(layer.dGateIn) : -1);
        gateResidual.push_back(layer.nonlinear ? addNodeArray(layer.dGateIn) : -1);
    }
    for (int* slice : {&gated, &gradGated, &gradGate})
        *slice = addNodeArray(maxFeatures);

    // Forward: the edges, the embedding and the first layer's up-projection; then each layer from its convolution
    // (which reads its senders' hUp) to the next layer's hUp.
    initialProgram = beginProgram();
    addOp(OpEdgeGeometry, {});
    addOp(OpEmbed, {h[0], embeddingStart, embeddingDim});
    if (model->hasPairRepulsion)
        addOp(OpPairRepulsion, {pairRepulsionStart});
    if (numLayers > 0)
        addSparseProduct(layers[0].linearUp, h[0], hUp[0], false);
    endProgram(initialProgram);
    forwardPrograms.assign(numLayers, NodeProgram());
    for (int t = 0; t < numLayers; t++) {
        const Layer& L = layers[t];
        forwardPrograms[t] = beginProgram();
        addRadialWeights(L);
        addOp(OpConvolution, {hUp[t], M, L.convolution.rowStart, L.convolution.fieldStart, L.convolution.valueStart, L.dUp, L.dTp, 0});
        if (L.nonlinear) { // A = linear_2(gate(S + R)), S = linear(M) / D, R = linear_residual(hUp)
            addSparseProduct(L.linear, M, gateNormalized[t], false);
            addOp(OpDensityNormalize, {gateNormalized[t], L.dGateIn, L.numWeights, density[t], L.densityAlphaIndex, L.densityAlphaIndex + 1});
            addSparseProduct(L.linearResidual, hUp[t], gateResidual[t], false);
            addOp(OpGate, {gateNormalized[t], gateResidual[t], gated, gated, L.gateStart}); // (no gradOut forward)
            addSparseProduct(L.linear2, gated, A[t], false);
        } else {
            addSparseProduct(L.linear, M, A[t], false); // (with a non-residual layer's skip)
            if (L.densityNormalized) // A over D_n (a scalar, so after the folded skip as before it)
                addOp(OpDensityNormalize, {A[t], L.dMsg, L.numWeights, density[t], L.densityAlphaIndex, L.densityAlphaIndex + 1});
        }
        addOp(OpContraction, {A[t], B, L.contractionStart, L.contractionValueStart, L.numContractionTerms, L.outputStart, L.numOutputs,
                              L.channels, L.dMsg, L.dProd});
        addSparseProduct(L.productLinear, B, h[t + 1], false);
        if (L.residual)
            addSparseProduct(L.skip, h[t], h[t + 1], true);
        addReadoutForward(L.readout, h[t + 1], nodeOut, false);
        addOp(OpAddEnergy, {nodeOut});
        if (t + 1 < numLayers)
            addSparseProduct(layers[t + 1].linearUp, h[t + 1], hUp[t + 1], false);
        for (size_t k = 0; k < chargeReadouts.size(); k++) // the raw charges, summed over the layers with a charge readout
            if (chargeReadoutLayers[k] == t)
                addReadoutForward(chargeReadouts[k], h[t + 1], rawCharge, k > 0);
        endProgram(forwardPrograms[t]);
    }

    // Backward. The gradient of layer t's output (gOut) becomes that of its input (gIn), and the two slices swap from
    // layer to layer. Part one of layer t runs from its readout to its convolution's edge terms, all within the node;
    // part two, from the convolution's gradient with respect to the senders' features (which reads the receivers'
    // gradM) to the layer's input. After the forward pass the radial weights in w are the last layer's.
    const int gOutOf[2] = {gradH, gradIn};
    auto partOne = [&](int t, bool recomputeRadial, bool withCharges) {
        const Layer& L = layers[t];
        const int gOut = gOutOf[(numLayers - 1 - t) % 2], gIn = gOutOf[(numLayers - t) % 2], gM = gradM[t % 2];
        addReadoutBackward(L.readout, h[t + 1], ones, gOut);
        for (size_t k = 0; k < chargeReadouts.size() && withCharges; k++) // dE/d(raw charge) from chargeGradient
            if (chargeReadoutLayers[k] == t)
                addReadoutBackward(chargeReadouts[k], h[t + 1], gradScalar, gOut);
        if (!headGradient.empty()) // the layer-feature head's
            addOp(OpAdd, {headGradient[t], gOut, L.dOut});
        if (t > 0) { // the first layer's input is the embedding, which needs no gradient
            if (L.residual)
                addSparseProduct(L.skipT, gOut, gIn, false);
            else
                addOp(OpZero, {gIn, L.dIn});
        }
        addSparseProduct(L.productLinearT, gOut, gradB, false);
        addOp(OpContractionBackward, {A[t], gradB, gradA, L.contractionStart, L.contractionValueStart, L.numContractionTerms, L.featureStart,
                                      L.numFeatures, L.channels, L.dMsg, L.dProd});
        // The gradient of linear's normalised output: of A, or (non-linear block) of the gate's input.
        int gradLinear = gradA, normalized = A[t], dLinear = L.dMsg;
        if (L.nonlinear) {
            addSparseProduct(L.linear2T, gradA, gradGated, false);
            addOp(OpGateBackward, {gateNormalized[t], gateResidual[t], gradGated, gradGate, L.gateStart});
            if (t > 0) // through linear_residual and linear_up to the layer's input
                addSparseProduct(L.upResidualT, gradGate, gIn, true);
            gradLinear = gradGate;
            normalized = gateNormalized[t];
            dLinear = L.dGateIn;
        }
        if (L.densityNormalized) { // F(M) / D: dE/dd = -beta (grad . F/D) / D, then grad / D
            addOp(OpDensityGradient, {normalized, gradLinear, dLinear, density[t], densityGradient, L.densityAlphaIndex + 1});
            addOp(OpDensityScale, {gradLinear, dLinear, density[t]});
        }
        addSparseProduct(L.linearT, gradLinear, gM, false);
        if (recomputeRadial)
            addRadialWeights(L);
        addOp(OpConvolutionBackwardEdges, {gM, hUp[t], L.convolution.rowStart, L.convolution.fieldStart, L.convolution.valueStart, L.dUp, L.dTp,
                                           L.densityNormalized ? densityGradient : -1, L.numWeights});
        if (t == 0)
            addOp(OpEdgeGradients, {});
    };
    auto partTwo = [&](int t) {
        const Layer& L = layers[t];
        // The transpose gathers over the node's received edges for the edges it sent; where the radial weights depend on
        // the direction (edge embeddings), those of the sent edges first, into wReverse.
        const bool directed = model->layers[t].hasEdgeEmbeddings();
        if (directed)
            addRadialWeights(L, true);
        addOp(OpConvolution, {gradM[t % 2], gradUp, L.convolutionT.rowStart, L.convolutionT.fieldStart, L.convolutionT.valueStart, L.dTp, L.dUp,
                              directed ? 1 : 0});
        addSparseProduct(L.linearUpT, gradUp, gOutOf[(numLayers - t) % 2], true);
    };
    for (bool withCharges : {false, true}) {
        if (withCharges && !model->hasChargeHead)
            continue;
        NodeProgram& p = withCharges ? lastBackwardWithChargesProgram : lastBackwardProgram;
        p = beginProgram();
        if (numLayers > 0) {
            addOp(OpZero, {gradH, layers.back().dOut});
            partOne(numLayers - 1, false, withCharges);
        }
        else
            addOp(OpEdgeGradients, {});
        endProgram(p);
    }
    bool earlierChargeReadouts = false; // on a layer before the last: its backward program differs with charges
    for (int layer : chargeReadoutLayers)
        earlierChargeReadouts = earlierChargeReadouts || layer < numLayers - 1;
    for (bool withCharges : {false, true}) {
        if (withCharges && !earlierChargeReadouts)
            continue;
        std::vector<NodeProgram>& programs = backwardPrograms[withCharges ? 1 : 0];
        programs.assign(std::max(0, numLayers - 1), NodeProgram());
        for (int t = numLayers - 2; t >= 0; t--) {
            programs[t] = beginProgram();
            partTwo(t + 1);
            partOne(t, true, withCharges);
            endProgram(programs[t]);
        }
    }
}

void CommonENNNetwork::setEdgeCapacity(int newCapacity) {
    requireIntIndexable(static_cast<long long>(numNodes) * newCapacity * std::max(maxWeights, nsh), numNodes, "the radial weights of their edges");
    capacity = newCapacity;
    const int slots = numNodes * capacity;
    const int realSize = OpenMMENN::realSize(cc);
    auto allocate = [&](ComputeArray& a, int size, int elementSize, const char* name) {
        if (a.isInitialized())
            a.resize(size);
        else
            a.initialize(cc, size, elementSize, name);
    };
    allocate(sender, slots, sizeof(int), "ennSender");
    allocate(edgeKey, slots, sizeof(int), "ennEdgeKey");
    allocate(reverse, slots, sizeof(int), "ennReverse");
    allocate(edgeVec, slots, 4 * realSize, "ennEdgeVec");
    allocate(gradVec, slots, 4 * realSize, "ennGradVec");
    allocate(sh, slots * nsh, realSize, "ennHarmonics");
    allocate(gradSh, slots * nsh, realSize, "ennGradHarmonics");
    allocate(gradR, slots, realSize, "ennGradR");
    allocate(w, slots * maxWeights, realSize, "ennRadialWeights");
    allocate(dwdr, slots * maxWeights, realSize, "ennRadialDerivatives");
    bool directed = false; // radial outputs that depend on the edge's direction (edge embeddings): wReverse is read
    for (const LayerSpec& layer : model->layers)
        directed = directed || layer.hasEdgeEmbeddings();
    const int reverseSlots = directed ? slots * maxWeights : 1;
    allocate(wReverse, reverseSlots, realSize, "ennReverseRadialWeights");
    allocate(dwdrReverse, reverseSlots, realSize, "ennReverseRadialDerivatives");

    // ---- kernels, with every argument that does not change from step to step ----
    gatherKernel = program->createKernel("gatherPositions");
    gatherKernel->addArg(cc.getPosq());
    gatherKernel->addArg(cc.getAtomIndexArray());
    gatherKernel->addArg(mlOfAtom);
    gatherKernel->addArg(numAtoms);
    addRealArg(cc, gatherKernel, 1.0 / model->lengthToNm);
    gatherKernel->addArg(positions);
    addRealArg(cc, gatherKernel, ENNSanityBounds::MaxCoordinate);
    gatherKernel->addArg(status);

    neighborKernel = program->createKernel("findNeighbors");
    neighborKernel->addArg(positions);
    neighborKernel->addArg(numNodes);
    neighborKernel->addArg(capacity);
    addRealArg(cc, neighborKernel, model->rMax * model->rMax);
    neighborKernel->addArg(periodic ? 1 : 0);
    for (int i = 0; i < 7; i++)
        neighborKernel->addArg(); // box vectors, image counts and cell counts, set every step
    for (ComputeArray* a : {&cellOfNode, &cells.bucketStart, &cells.bucketCount, &cells.bucketNodes, &count, &neededCount, &sender, &edgeVec, &edgeKey})
        neighborKernel->addArg(*a);
    neighborKernel->addArg(status);


    vector<NodeProgram*> nodePrograms = {&initialProgram, &lastBackwardProgram, &lastBackwardWithChargesProgram};
    for (NodeProgram& p : forwardPrograms)
        nodePrograms.push_back(&p);
    for (std::vector<NodeProgram>& programs : backwardPrograms)
        for (NodeProgram& p : programs)
            nodePrograms.push_back(&p);
    for (NodeProgram* p : nodePrograms) {
        p->kernel = program->createKernel("nodeProgram");
        p->kernel->addArg(ops);
        p->kernel->addArg(p->first);
        p->kernel->addArg(p->count);
        p->kernel->addArg(numNodes);
        p->kernel->addArg(data);
        p->kernel->addArg(nodeEnergy);
        p->kernel->addArg(species);
        p->kernel->addArg(ints);
        p->kernel->addArg(reals);
        for (ComputeArray* a : {&count, &sender, &edgeVec})
            p->kernel->addArg(*a);
        p->kernel->addArg(capacity);
        for (ComputeArray* a : {&reverse, &harmonicsIndex, &harmonicsValue, &sh, &w, &dwdr, &gradSh, &gradR, &gradVec, &radialTable, &besselFrequencies,
                                &wReverse, &dwdrReverse})
            p->kernel->addArg(*a);
    }

    energyKernel = program->createKernel("sumEnergy");
    energyKernel->addArg(nodeEnergy);
    energyKernel->addArg(numNodes);
    addMixedArg(cc, energyKernel, constantEnergy);
    addMixedArg(cc, energyKernel, model->energyToKJPerMol);
    energyKernel->addArg(cc.getEnergyBuffer());
    addMixedArg(cc, energyKernel, ENNSanityBounds::MaxEnergyPerAtom * numNodes);
    energyKernel->addArg(status);

    if (model->hasChargeHead) {
        chargeKernel = program->createKernel("normalizeCharges");
        chargeKernel->addArg(data);
        chargeKernel->addArg(rawCharge);
        chargeKernel->addArg(species);
        chargeKernel->addArg(chargeOffsets);
        chargeKernel->addArg(numNodes);
        chargeKernel->addArg(numChargeGroups);
        for (ComputeArray* a : {&groupStart, &groupMembers, &nodeGroup, &groupCharge, &groupShift})
            chargeKernel->addArg(*a);
        chargeKernel->addArg(work);
        chargeKernel->addArg(charges);
        addRealArg(cc, chargeKernel, ENNSanityBounds::MaxCharge);
        chargeKernel->addArg(status);
        chargeGradientKernel = program->createKernel("chargeGradient");
        chargeGradientKernel->addArg(work); // the potential, set when run
        chargeGradientKernel->addArg(numNodes);
        chargeGradientKernel->addArg(numChargeGroups);
        for (ComputeArray* a : {&groupStart, &groupMembers, &nodeGroup, &groupShift})
            chargeGradientKernel->addArg(*a);
        addMixedArg(cc, chargeGradientKernel, 1.0 / model->energyToKJPerMol);
        chargeGradientKernel->addArg(data);
        chargeGradientKernel->addArg(gradScalar);
    }

    applyForcesKernel = program->createKernel("applyForces");
    for (ComputeArray* a : {&gradVec, &count, &reverse})
        applyForcesKernel->addArg(*a);
    applyForcesKernel->addArg(capacity);
    applyForcesKernel->addArg(cc.getAtomIndexArray());
    applyForcesKernel->addArg(mlOfAtom);
    applyForcesKernel->addArg(numAtoms);
    applyForcesKernel->addArg(cc.getPaddedNumAtoms());
    addRealArg(cc, applyForcesKernel, model->energyToKJPerMol / model->lengthToNm);
    applyForcesKernel->addArg(positions); // extra forces, set when run
    applyForcesKernel->addArg(0);
    applyForcesKernel->addArg(cc.getLongForceBuffer());
    applyForcesKernel->addArg(status);
}

void CommonENNNetwork::launch(NodeProgram& p) {
    // A work group per node (nodeProgram): 128 threads take the node's outputs, at most the device's largest group.
    const int groupSize = std::min(128, cc.getMaxThreadBlockSize());
    deviceWork.launch(p.kernel, std::max(1, numNodes) * groupSize, groupSize);
}

void CommonENNNetwork::findNeighbors() {
    // Box vectors in model units and how many images of each the cutoff can reach (non-zero only in a box narrower
    // than twice the cutoff); the cell list gives the cells along each lattice direction.
    Vec3 box[3];
    int images[3] = {0, 0, 0};
    if (periodic) {
        cc.getPeriodicBoxVectors(box[0], box[1], box[2]);
        for (Vec3& v : box)
            v *= 1.0 / model->lengthToNm;
        double spacing[3];
        latticePlaneSpacings(box, spacing);
        for (int k = 0; k < 3; k++)
            images[k] = static_cast<int>(std::floor(model->rMax / spacing[k] + 0.5));
    }
    const OpenMM::mm_int4 numCells = cells.build(cc, deviceWork, box);
    for (int k = 0; k < 3; k++) {
        setReal4Arg(cc, neighborKernel, 5 + k, box[k]);
        neighborKernel->setArg(8 + k, images[k]);
    }
    neighborKernel->setArg(11, numCells);
    deviceWork.launch(neighborKernel, numNodes);
}

bool CommonENNNetwork::finishStep() {
    statusEvent->wait();
    int flags[StatusSize];
    std::copy_n(static_cast<const int*>(cc.getPinnedBuffer()), StatusSize, flags);
    const std::string particle = std::to_string(particleOfNode[std::min(std::max(flags[5], 0), numNodes - 1)]);
    if (flags[1])
        throw OpenMM::OpenMMException("ENNForce: a position of an ML particle is not a finite number");
    if (flags[3])
        throw OpenMM::OpenMMException("ENNForce: particle " + particle + " is more than 1e4 nm from the origin: the simulation has blown up");
    if (flags[4])
        throw OpenMM::OpenMMException("ENNForce: the predicted charge of particle " + particle + " is not finite or beyond " +
                                      std::to_string(ENNSanityBounds::MaxCharge) + " e; the model is far outside its training data there");
    if (flags[2])
        throw OpenMM::OpenMMException("ENNForce: two ML particles (or a particle and its periodic image) are at the same position");
    if (flags[0]) {
        vector<int> counts;
        neededCount.download(counts);
        deviceWork.transfer();
        const int largest = *std::max_element(counts.begin(), counts.end());
        setEdgeCapacity(largest + largest / 4 + 8);
        return false;
    }
    if (flags[6])
        throw OpenMM::OpenMMException("ENNForce: the energy is not finite or more than " + std::to_string(ENNSanityBounds::MaxEnergyPerAtom) +
                                      " kJ/mol per ML atom from the reference energies: far outside anything the model can describe " +
                                      "(weights that overflow, or a collapsed or exploded structure?)");
    if (flags[7])
        throw OpenMM::OpenMMException("ENNForce: the force on particle " + std::to_string(flags[8]) + " is not finite (NaN or infinity): " +
                                      "the model's weights or the structure are far outside anything it can describe");
    return true;
}

void CommonENNNetwork::forward(bool wantCharges) {
    if (wantCharges && !model->hasChargeHead)
        throw OpenMM::OpenMMException("ENNForce: the model has no charge head");
    deviceWork.clear(cc, status);
    deviceWork.launch(gatherKernel, numAtoms);
    findNeighbors();
    launch(initialProgram);
    for (NodeProgram& p : forwardPrograms)
        launch(p);
    if (wantCharges)
        deviceWork.launch(chargeKernel, ReduceSize, ReduceSize);
}

void CommonENNNetwork::checkBox() const {
    if (!periodic)
        return;
    Vec3 box[3];
    cc.getPeriodicBoxVectors(box[0], box[1], box[2]);
    checkPeriodicBox(box, model->rMax * model->lengthToNm);
}

void CommonENNNetwork::queueStatus() {
    // Read without stalling the queue: into pinned memory, waited for in finishStep().
    status.download(cc.getPinnedBuffer(), false);
    deviceWork.transfer();
    statusEvent->enqueue();
}

void CommonENNNetwork::forwardWithFittingList(bool wantCharges) {
    do {
        forward(wantCharges);
        queueStatus();
    } while (!finishStep());
}

vector<double> CommonENNNetwork::predictCharges() {
    forwardWithFittingList(true);
    return downloadReals(cc, charges);
}

vector<vector<double>> CommonENNNetwork::downloadLayerOutputs() {
    deviceWork.launch(copyKernel, layerOutputSize);
    const vector<double> all = downloadReals(cc, layerFeatures);
    deviceWork.transfer();
    vector<vector<double>> outputs;
    for (size_t t = 0, offset = 0; t < layers.size(); offset += size_t(numNodes) * layers[t].dOut, t++)
        outputs.emplace_back(all.begin() + offset, all.begin() + offset + size_t(numNodes) * layers[t].dOut);
    return outputs;
}

void CommonENNNetwork::uploadLayerGradients(const vector<vector<double>>& gradients) {
    vector<double> all;
    for (const vector<double>& g : gradients)
        all.insert(all.end(), g.begin(), g.end());
    if (all.size() != size_t(layerOutputSize))
        throw OpenMM::OpenMMException("ENNForce: the head's feature gradients have the wrong size");
    uploadRealsAt(cc, data, headGradient[0], all);
    deviceWork.transfer();
}

void CommonENNNetwork::addEnergy() {
    deviceWork.launch(energyKernel, ReduceSize, ReduceSize);
}

void CommonENNNetwork::backward(ComputeArray* potential, ComputeArray* extraForces, double potentialScale) {
    // Right after forward(): the radial weights on the device are still the last layer's.
    if (potential) {
        chargeGradientKernel->setArg(0, *potential);
        setMixedArg(cc, chargeGradientKernel, 7, potentialScale / model->energyToKJPerMol);
        deviceWork.launch(chargeGradientKernel, ReduceSize, ReduceSize);
    }
    launch(potential ? lastBackwardWithChargesProgram : lastBackwardProgram);
    std::vector<NodeProgram>& programs = backwardPrograms[potential && !backwardPrograms[1].empty() ? 1 : 0];
    for (int t = static_cast<int>(programs.size()) - 1; t >= 0; t--)
        launch(programs[t]);
    applyForcesKernel->setArg(9, extraForces ? *extraForces : positions);
    applyForcesKernel->setArg(10, extraForces ? 1 : 0);
    deviceWork.launch(applyForcesKernel, numAtoms);
}
