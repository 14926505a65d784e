#include "CpuENNNetwork.h"
#include "CpuENNParallel.h"
#include "ENNModelCache.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cstring>
#include <cmath>
#include <numeric>

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::vector;

namespace {

typedef CpuENNNetwork::Matrix Matrix;

const int MaxHarmonics = 64; // l_max <= 7
const int MaxComponents = 15; // 2 l + 1 of an irrep a linear reads (makeLinear refuses more)

// Float sums over channels are kept in Lanes partial sums, added in a fixed tree at the end: a fixed order (so
// results stay bitwise reproducible) that the compiler can vectorise, which one running sum is not.
const int Lanes = 16;

/** Lanes floats as one vector (GCC/Clang vector extension: the widest registers -march gives, or several). */
typedef float LaneVector __attribute__((vector_size(sizeof(float) * Lanes)));
inline LaneVector loadLanes(const float* p) {
    LaneVector v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void storeLanes(float* p, LaneVector v) { std::memcpy(p, &v, sizeof v); }

/** The lanes added pairwise, halving the width each step (a fixed tree), written out: as loops over the width, GCC
 *  keeps the partial sums in memory and stalls on each store. */
inline float sumLanes(const float partial[Lanes]) {
    static_assert(Lanes == 16, "the tree below adds 16 lanes");
    float half[8], quarter[4];
    for (int l = 0; l < 8; l++)
        half[l] = partial[l] + partial[l + 8];
    for (int l = 0; l < 4; l++)
        quarter[l] = half[l] + half[l + 4];
    return (quarter[0] + quarter[2]) + (quarter[1] + quarter[3]);
}

/** The same tree on a vector, in registers. */
inline float sumLanes(LaneVector v) {
    typedef float Half __attribute__((vector_size(sizeof(float) * Lanes / 2)));
    typedef float Quarter __attribute__((vector_size(sizeof(float) * Lanes / 4)));
    const Half half = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    const Quarter quarter = __builtin_shufflevector(half, half, 0, 1, 2, 3) + __builtin_shufflevector(half, half, 4, 5, 6, 7);
    return (quarter[0] + quarter[2]) + (quarter[1] + quarter[3]);
}

float dotProduct(const float* a, const float* b, int n) {
    float partial[Lanes] = {};
    int k = 0;
    for (; k + Lanes <= n; k += Lanes)
        for (int l = 0; l < Lanes; l++)
            partial[l] += a[k + l] * b[k + l];
    for (int l = 0; k < n; k++, l++)
        partial[l] += a[k] * b[k];
    return sumLanes(partial);
}

/** z += scale g, returning sum_u wx[u] g[u] (in Lanes partial sums). The arrays must not overlap. Called once per
 *  tensor-product entry and edge, on a few lane vectors: the sums stay in registers. */
inline float scaledAddAndDot(float* __restrict z, const float* __restrict g, const float* __restrict wx, float scale, int n) {
    LaneVector partial = {};
    int u = 0;
    for (; u + Lanes <= n; u += Lanes) {
        const LaneVector gu = loadLanes(g + u);
        storeLanes(z + u, loadLanes(z + u) + scale * gu);
        partial += loadLanes(wx + u) * gu;
    }
    if (u == n)
        return sumLanes(partial);
    float tail[Lanes];
    storeLanes(tail, partial);
    for (int l = 0; u < n; u++, l++) {
        z[u] += scale * g[u];
        tail[l] += wx[u] * g[u];
    }
    return sumLanes(tail);
}

/** The backward pass of one symmetric-contraction term of correlation 2 or 3 on one node: ga[f_k + c] += g[c] cf[c]
 *  times the other factors a[f_j + c], j != k. Features are equal (a repeated factor) or at least a channel count
 *  apart. With the outputs added as whole vectors, one output after the other, a repeated factor's terms are added in
 *  turn, as channel by channel; written as plain loops over channels GCC kept this scalar (the outputs may be one),
 *  and unrolled over lanes it stored lane by lane. Results depend on neither the thread count nor the vector width. */
template <int Correlation>
void contractionTermBackward(const float* __restrict an, const float* __restrict g, const float* __restrict cf, int f0, int f1, int f2,
                             int channels, float* __restrict ga) {
    int c = 0;
    for (; c + Lanes <= channels; c += Lanes) {
        const LaneVector x = loadLanes(g + c) * loadLanes(cf + c);
        const LaneVector a0 = loadLanes(an + f0 + c), a1 = loadLanes(an + f1 + c);
        if (Correlation == 2) {
            storeLanes(ga + f0 + c, loadLanes(ga + f0 + c) + x * a1);
            storeLanes(ga + f1 + c, loadLanes(ga + f1 + c) + x * a0);
        } else {
            const LaneVector a2 = loadLanes(an + f2 + c);
            storeLanes(ga + f0 + c, loadLanes(ga + f0 + c) + x * a1 * a2);
            storeLanes(ga + f1 + c, loadLanes(ga + f1 + c) + x * a0 * a2);
            storeLanes(ga + f2 + c, loadLanes(ga + f2 + c) + x * a0 * a1);
        }
    }
    for (; c < channels; c++) {
        const float x = g[c] * cf[c];
        const float a0 = an[f0 + c], a1 = an[f1 + c];
        if (Correlation == 2) {
            ga[f0 + c] += x * a1;
            ga[f1 + c] += x * a0;
        } else {
            const float a2 = an[f2 + c];
            ga[f0 + c] += x * a1 * a2;
            ga[f1 + c] += x * a0 * a2;
            ga[f2 + c] += x * a0 * a1;
        }
    }
}

/** Where an irreps entry (given by its offset in the [channel][m] layout) lives in an array stored
 *  with `storage` irreps in [m][channel] layout: its channel 0, component 0, and the step between m. */
void locate(const Irreps& storage, const Irreps::Entry& entry, int& offset, int& step) {
    for (const auto& e : storage.entries)
        if (entry.offset >= e.offset && entry.offset < e.offset + e.dim()) {
            const int first = (entry.offset - e.offset) / e.ir.dim();
            if (e.ir.dim() != entry.ir.dim() || first + entry.mul > e.mul)
                break;
            offset = e.offset + first;
            step = e.mul;
            return;
        }
    throw OpenMM::OpenMMException("ENNForce: irreps " + storage.str() + " do not have the layout of an entry " +
                                  std::to_string(entry.mul) + "x" + std::to_string(entry.ir.l) + " at offset " + std::to_string(entry.offset));
}

/** A linear reading an array stored with `inStorage` irreps and writing one stored with `outStorage`. */
CpuENNNetwork::Linear makeLinear(const LinearSpec& spec, int numElements, double scale, const Irreps& inStorage, const Irreps& outStorage) {
    CpuENNNetwork::Linear op;
    op.dimIn = spec.in.dim;
    op.dimOut = spec.out.dim;
    op.perElement = spec.perElement;
    if (inStorage.dim != spec.in.dim || outStorage.dim != spec.out.dim)
        throw OpenMM::OpenMMException("ENNForce: a linear's irreps " + spec.in.str() + " -> " + spec.out.str() + " do not match its inputs or outputs");
    for (const auto& p : spec.paths) {
        const auto &a = spec.in.entries[p.in], &b = spec.out.entries[p.out];
        if (a.ir.dim() > MaxComponents)
            throw OpenMM::OpenMMException("ENNForce: the CPU platform supports irreps up to l = 7; a linear has " + spec.in.str());
        CpuENNNetwork::Linear::Path path{0, 0, a.mul, b.mul, a.ir.dim(), 0, 0};
        locate(inStorage, a, path.inOffset, path.inStep);
        locate(outStorage, b, path.outOffset, path.outStep);
        op.paths.push_back(path);
    }
    const int sets = spec.perElement ? numElements : 1;
    op.weights.resize(sets);
    op.transposedWeights.resize(sets);
    for (int z = 0; z < sets; z++)
        for (const auto& p : spec.paths) {
            const int inMul = spec.in.entries[p.in].mul, outMul = spec.out.entries[p.out].mul;
            const double* w = spec.weights.data() + (spec.perElement ? z * spec.weightsPerElement : 0) + p.weightOffset;
            Matrix m(inMul, outMul);
            for (int u = 0; u < inMul; u++)
                for (int v = 0; v < outMul; v++)
                    m(u, v) = static_cast<float>(scale * p.weight * w[u * outMul + v]);
            op.transposedWeights[z].push_back(m.transpose());
            op.weights[z].push_back(std::move(m));
        }
    return op;
}

/** `second` after `first` as one linear (first's input, second's output; per element if either is): each path of
 *  first into a storage entry, times each path of second out of that entry. The products are summed in double. */
CpuENNNetwork::Linear composeLinears(const CpuENNNetwork::Linear& first, const CpuENNNetwork::Linear& second) {
    typedef CpuENNNetwork::Linear Linear;
    Linear op;
    op.dimIn = first.dimIn;
    op.dimOut = second.dimOut;
    op.perElement = first.perElement || second.perElement;
    const size_t sets = std::max(first.weights.size(), second.weights.size());
    op.weights.resize(sets);
    for (size_t z = 0; z < sets; z++) {
        const auto& w1 = first.weights[first.perElement ? z : 0];
        const auto& w2 = second.weights[second.perElement ? z : 0];
        std::vector<Linear::Path> paths;
        std::vector<Eigen::MatrixXd> products;
        for (size_t i = 0; i < first.paths.size(); i++)
            for (size_t k = 0; k < second.paths.size(); k++) {
                const Linear::Path &p1 = first.paths[i], &p2 = second.paths[k];
                if (p2.inOffset != p1.outOffset || p2.inStep != p1.outStep || p2.dim != p1.dim)
                    continue;
                const Eigen::MatrixXd product = w1[i].cast<double>() * w2[k].cast<double>();
                const Linear::Path path{p1.inOffset, p2.outOffset, p1.inMul, p2.outMul, p1.dim, p1.inStep, p2.outStep};
                auto same = std::find_if(paths.begin(), paths.end(), [&](const Linear::Path& q) {
                    return q.inOffset == path.inOffset && q.outOffset == path.outOffset && q.inStep == path.inStep && q.outStep == path.outStep;
                });
                if (same == paths.end()) {
                    paths.push_back(path);
                    products.push_back(product);
                } else
                    products[same - paths.begin()] += product;
            }
        if (z == 0)
            op.paths = paths;
        for (const Eigen::MatrixXd& product : products) {
            op.weights[z].push_back(product.cast<float>());
            op.transposedWeights.resize(sets);
            op.transposedWeights[z].push_back(op.weights[z].back().transpose());
        }
    }
    return op;
}

/** A readout of features stored with `inStorage` irreps; `scale` multiplies its output. */
CpuENNNetwork::Readout makeReadout(const ReadoutSpec& spec, double scale, const Irreps& inStorage) {
    CpuENNNetwork::Readout r;
    r.nonlinear = spec.nonlinear;
    r.activation = spec.activation;
    r.linear1 = makeLinear(spec.linear1, 1, spec.nonlinear ? 1.0 : scale, inStorage, spec.linear1.out);
    if (spec.nonlinear)
        r.linear2 = makeLinear(spec.linear2, 1, scale, spec.linear2.in, spec.linear2.out);
    return r;
}

inline float activation(const ActivationSpec& act, float x, float* derivative) {
    if (act.kind == ActivationSpec::SiLU) {
        const float s = 1.0f / (1.0f + std::exp(-x));
        if (derivative)
            *derivative = static_cast<float>(act.scale) * s * (1.0f + x * (1.0f - s));
        return static_cast<float>(act.scale) * x * s;
    }
    const float t = std::tanh(x);
    if (derivative)
        *derivative = static_cast<float>(act.scale) * (1.0f - t * t);
    return static_cast<float>(act.scale) * t;
}

/** Readout of rows [n0, n1) of h into out[0 .. n1-n0) (overwritten). */
void readoutForward(const CpuENNNetwork::Readout& r, const float* h, int n0, int n1, vector<float>& hidden, float* out,
                    const vector<int>& elementStart) {
    const int rows = n1 - n0;
    std::fill(out, out + rows, 0.0f);
    if (!r.nonlinear) {
        r.linear1.forward(h, out, n0, n1, elementStart);
        return;
    }
    const int dh = r.linear1.dimOut;
    std::fill(hidden.begin(), hidden.begin() + size_t(rows) * dh, 0.0f);
    r.linear1.forward(h, hidden.data(), n0, n1, elementStart);
    for (int i = 0; i < rows * dh; i++)
        hidden[i] = activation(r.activation, hidden[i], nullptr);
    r.linear2.forward(hidden.data(), out, n0, n1, elementStart);
}

/** gradH[rows] += grad[row] * d readout / dh. */
void readoutBackward(const CpuENNNetwork::Readout& r, const float* h, const float* grad, int n0, int n1, vector<float>& hidden,
                     vector<float>& gradHidden, float* gradH, const vector<int>& elementStart) {
    const int rows = n1 - n0;
    if (!r.nonlinear) {
        r.linear1.backward(grad, gradH, n0, n1, elementStart);
        return;
    }
    const int dh = r.linear1.dimOut;
    std::fill(hidden.begin(), hidden.begin() + size_t(rows) * dh, 0.0f);
    std::fill(gradHidden.begin(), gradHidden.begin() + size_t(rows) * dh, 0.0f);
    r.linear1.forward(h, hidden.data(), n0, n1, elementStart);
    r.linear2.backward(grad, gradHidden.data(), n0, n1, elementStart);
    for (int i = 0; i < rows * dh; i++) {
        float derivative;
        activation(r.activation, hidden[i], &derivative);
        gradHidden[i] *= derivative;
    }
    r.linear1.backward(gradHidden.data(), gradH, n0, n1, elementStart);
}


} // namespace

// ---- linears: one matrix product per path and component m, over a range of nodes ----------------

namespace {
const int ProductTile = 32; // output columns per register tile: 2 AVX-512 or 4 AVX2 vectors per row
const int MaxProductRows = CpuENNNetwork::MaxChunkSize * MaxComponents; // (node, m) rows of one product

/** y[r, v0 .. v0 + ProductTile) += x[r, :] W[:, v0 ..] for R rows (row r of x at x + xRow[r], of y at y + yRow[r]),
 *  W K x N row-major, in a register tile of R rows x ProductTile columns. With fewer than 4 rows, the k are split
 *  among 4 / R interleaved partial sums, added at the end, so that 8 independent vector sums keep the FMA units
 *  busy. The order of the sums is fixed by R. */
template <int R>
void rowsTimesTile(const float* x, const int* xRow, const float* W, int K, int N, int v0, float* y, const int* yRow) {
    const int S = 4 / R;
    float acc[S][R][ProductTile] = {};
    for (int r = 0; r < R; r++)
        for (int l = 0; l < ProductTile; l++)
            acc[0][r][l] = y[yRow[r] + v0 + l];
    int k = 0;
    for (; k + S <= K; k += S)
        for (int split = 0; split < S; split++) {
            const float* w = W + size_t(k + split) * N + v0;
            for (int r = 0; r < R; r++) {
                const float xr = x[xRow[r] + k + split];
                for (int l = 0; l < ProductTile; l++)
                    acc[split][r][l] += xr * w[l];
            }
        }
    for (; k < K; k++) {
        const float* w = W + size_t(k) * N + v0;
        for (int r = 0; r < R; r++) {
            const float xr = x[xRow[r] + k];
            for (int l = 0; l < ProductTile; l++)
                acc[0][r][l] += xr * w[l];
        }
    }
    for (int split = 1; split < S; split++)
        for (int r = 0; r < R; r++)
            for (int l = 0; l < ProductTile; l++)
                acc[0][r][l] += acc[split][r][l];
    for (int r = 0; r < R; r++)
        for (int l = 0; l < ProductTile; l++)
            y[yRow[r] + v0 + l] = acc[0][r][l];
}

/** y[r, :] += x[r, :] W for `rows` rows at the given offsets. Column tiles outermost: a tile's slice of W (K x 32
 *  floats, 12 KiB for K = 96) stays in L1 while every row passes through it, so W is read from L2 once per call
 *  rather than once per row (the linears of a small molecule were bound by that traffic). */
void rowsTimesMatrix(int rows, const float* x, const int* xRow, const float* W, int K, int N, float* y, const int* yRow) {
    int v0 = 0;
    for (; v0 + ProductTile <= N; v0 += ProductTile) {
        int r = 0;
        for (; r + 4 <= rows; r += 4)
            rowsTimesTile<4>(x, xRow + r, W, K, N, v0, y, yRow + r);
        switch (rows - r) {
        case 3: rowsTimesTile<3>(x, xRow + r, W, K, N, v0, y, yRow + r); break;
        case 2: rowsTimesTile<2>(x, xRow + r, W, K, N, v0, y, yRow + r); break;
        case 1: rowsTimesTile<1>(x, xRow + r, W, K, N, v0, y, yRow + r); break;
        }
    }
    for (int r = 0; r < rows && v0 < N; r++)
        for (int k = 0; k < K; k++) {
            const float xr = x[xRow[r] + k];
            for (int v = v0; v < N; v++)
                y[yRow[r] + v] += xr * W[size_t(k) * N + v];
        }
}

/** in (rows of K) times each path's K x N matrix of `weights`, added to out (rows of N), over nodes [n0, n1) (at most
 *  MaxChunkSize): the rows of one product are every (node, m) pair of the path. Forward: in is the input, weights
 *  the paths' matrices; backward: in is the output gradient, weights their transposes (the paths' sides swapped). */
void linearBlocks(const CpuENNNetwork::Linear& op, bool backward, const float* in, float* out, int n0, int n1, const vector<int>& elementStart) {
    const int dimIn = backward ? op.dimOut : op.dimIn, dimOut = backward ? op.dimIn : op.dimOut;
    int xRow[MaxProductRows], yRow[MaxProductRows];
    auto run = [&](int first, int last, const vector<Matrix>& weights) {
        for (size_t k = 0; k < op.paths.size() && last > first; k++) {
            const auto& p = op.paths[k];
            const int inOffset = backward ? p.outOffset : p.inOffset, outOffset = backward ? p.inOffset : p.outOffset;
            const int inStep = backward ? p.outStep : p.inStep, outStep = backward ? p.inStep : p.outStep;
            int rows = 0;
            for (int n = first - n0; n < last - n0; n++)
                for (int m = 0; m < p.dim; m++, rows++) {
                    xRow[rows] = n * dimIn + inOffset + m * inStep;
                    yRow[rows] = n * dimOut + outOffset + m * outStep;
                }
            const Matrix& w = weights[k];
            rowsTimesMatrix(rows, in, xRow, w.data(), static_cast<int>(w.rows()), static_cast<int>(w.cols()), out, yRow);
        }
    };
    const auto& weights = backward ? op.transposedWeights : op.weights;
    if (!op.perElement)
        run(n0, n1, weights[0]);
    else
        for (size_t z = 0; z < weights.size(); z++)
            run(std::max(n0, elementStart[z]), std::min(n1, elementStart[z + 1]), weights[z]);
}
} // namespace

void CpuENNNetwork::Linear::forward(const float* in, float* out, int n0, int n1, const vector<int>& elementStart) const {
    linearBlocks(*this, false, in, out, n0, n1, elementStart);
}

void CpuENNNetwork::Linear::backward(const float* gradOut, float* gradIn, int n0, int n1, const vector<int>& elementStart) const {
    linearBlocks(*this, true, gradOut, gradIn, n0, n1, elementStart);
}

// ---- radial tables -------------------------------------------------------------------------

void CpuENNNetwork::RadialTable::evaluate(float r, float* w, float* dwdr) const {
    const float x = r * inverseSpacing;
    const int i = std::min(static_cast<int>(x), intervals - 1);
    const float u = x - i, u2 = u * u, u3 = u2 * u;
    const float* p0 = data.data() + size_t(i) * 2 * numWeights;
    const float* p1 = p0 + 2 * numWeights;
    const float h00 = 2 * u3 - 3 * u2 + 1, h10 = u3 - 2 * u2 + u, h01 = -2 * u3 + 3 * u2, h11 = u3 - u2;
    for (int k = 0; k < numWeights; k++)
        w[k] = h00 * p0[k] + h10 * p0[numWeights + k] + h01 * p1[k] + h11 * p1[numWeights + k];
    if (dwdr) {
        const float d00 = (6 * u2 - 6 * u) * inverseSpacing, d10 = (3 * u2 - 4 * u + 1) * inverseSpacing;
        const float d11 = (3 * u2 - 2 * u) * inverseSpacing;
        for (int k = 0; k < numWeights; k++)
            dwdr[k] = d00 * (p0[k] - p1[k]) + d10 * p0[numWeights + k] + d11 * p1[numWeights + k];
    }
}

CpuENNNetwork::RadialTable CpuENNNetwork::floatTable(const ENNRadialTable& table) {
    RadialTable out;
    out.intervals = table.intervals;
    out.numWeights = table.numWeights;
    out.inverseSpacing = static_cast<float>(table.intervals / table.rMax);
    out.data.assign(table.data.begin(), table.data.end());
    return out;
}

// ---- construction ----------------------------------------------------------------------------

CpuENNNetwork::CpuENNNetwork(std::shared_ptr<const ENNModel> modelPtr, const vector<int>& species)
    : model(std::move(modelPtr)), weights(weightsOf(model)), chargeOffset(weights->chargeOffset),
      layers(weights->layers), chargeReadouts(weights->chargeReadouts),
      chargeReadoutLayers(weights->chargeReadoutLayers), harmonicsSteps(weights->harmonicsSteps) {
    const ENNModel& m = *model;
    const int nel = m.numElements();
    numNodes = static_cast<int>(species.size());
    nsh = (m.shLmax + 1) * (m.shLmax + 1);
    order.resize(numNodes);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return species[a] < species[b]; });
    elementStart.assign(nel + 1, 0);
    for (int n = 0; n < numNodes; n++) {
        nodeSpecies.push_back(species[order[n]]);
        elementStart[nodeSpecies[n] + 1]++;
        nodeConstant.push_back(m.e0[nodeSpecies[n]] + m.energyShift);
    }
    for (int z = 0; z < nel; z++)
        elementStart[z + 1] += elementStart[z];
    // Blocks of 16 nodes for the matrix products, but, when there are fewer than 256 nodes, at least 16 pieces of
    // per-edge work (so that a small molecule's edges are shared among threads) and at least 4 of per-node work (the
    // linears read each weight matrix once per piece, and for a small molecule that traffic dominated). Both depend
    // on the atoms only, never on the thread count, so results stay the same for any number of threads.
    edgeChunkSize = std::max(1, std::min(MaxChunkSize, numNodes / 16));
    nodeChunkSize = std::max(1, std::min(MaxChunkSize, (numNodes + 3) / 4));
    if (numNodes >= 16 * MaxChunkSize)
        nodeChunkSize = edgeChunkSize;
    const int T = static_cast<int>(layers.size());
    h.resize(T + 1);
    hUp.resize(T);
    A.resize(T);
    nodeDensity.resize(T);
    gateInput.resize(T);
    normalizedLinear.resize(T);
    // Each layer's table per pair of elements: the model's one, or (distance transform, edge embeddings) one per pair
    // present, either order for a transform, each order (sender, receiver) for embeddings.
    radialOfPair.assign(T, vector<const RadialTable*>(size_t(nel) * nel, nullptr));
    std::vector<bool> present(nel, false);
    for (int z : nodeSpecies)
        present[z] = true;
    for (int t = 0; t < T; t++)
        for (int a = 0; a < nel; a++)
            for (int b = 0; b < nel; b++) {
                if (!radialDependsOnElements(m)) {
                    radialOfPair[t][a * nel + b] = &layers[t].radial;
                } else if (present[a] && present[b] && (b >= a || m.layers[t].hasEdgeEmbeddings())) {
                    pairTables.push_back(std::make_unique<RadialTable>(floatTable(*radialTableOf(model, t, a, b))));
                    radialOfPair[t][a * nel + b] = pairTables.back().get();
                    if (!m.layers[t].hasEdgeEmbeddings())
                        radialOfPair[t][b * nel + a] = pairTables.back().get();
                }
            }
}

std::shared_ptr<const CpuENNNetwork::Weights> CpuENNNetwork::weightsOf(const std::shared_ptr<const ENNModel>& model) {
    return sharedPerModel<Weights>(model, [&] { return buildWeights(model); });
}

std::shared_ptr<const CpuENNNetwork::Weights> CpuENNNetwork::buildWeights(const std::shared_ptr<const ENNModel>& model) {
    const ENNModel& m = *model;
    if ((m.shLmax + 1) * (m.shLmax + 1) > MaxHarmonics)
        throw OpenMM::OpenMMException("ENNForce: the CPU platform supports spherical harmonics up to l = 7");
    const ENNModelTables tables(m);
    const int nel = m.numElements();
    auto weights = std::make_shared<Weights>();
    std::vector<float>& chargeOffset = weights->chargeOffset;
    std::vector<Layer>& layers = weights->layers;
    std::vector<HarmonicsStep>& harmonicsSteps = weights->harmonicsSteps;
    for (int l = 2; l <= m.shLmax; l++)
        harmonicsSteps.push_back({l, static_cast<float>(tables.harmonicsNormalization(l)), tables.sparseW3j(1, l - 1, l)});

    for (size_t t = 0; t < m.layers.size(); t++) {
        const LayerSpec& L = m.layers[t];
        Layer layer;
        static_cast<LayerSizes&>(layer) = LayerSizes::of(L);
        layer.residual = L.residual;
        // Storage irreps of each array: h[t] as the previous layer (or the embedding) wrote it, hUp
        // as linear_up writes it, the messages before and after `linear` as it reads and writes them.
        const Irreps& hIn = t == 0 ? m.embedding.out : m.layers[t - 1].productLinear.out;
        const Irreps &hOut = L.productLinear.out, &message = L.irrepsMessage();
        layer.linearUp = makeLinear(L.linearUp, nel, 1.0, hIn, L.linearUp.out);
        layer.linear = makeLinear(L.linear, nel, 1.0 / L.avgNumNeighbors, L.linear.in, L.linear.out);
        if (L.nonlinear) {
            const NonLinearBlockSpec& nl = L.nonlinearBlock;
            layer.nonlinear = true;
            layer.dGateIn = L.linear.out.dim;
            layer.linearResidual = makeLinear(nl.linearResidual, nel, 1.0, L.linearUp.out, L.linear.out);
            layer.linear2 = makeLinear(nl.linear2, nel, 1.0, nl.gate.out, message);
            // The gate in this layout: each gated entry's channel u, component m at offset + m step + u.
            layer.gate = nl.gate;
            int outOffset = nl.gate.scalarCount;
            for (const GateSpec::Gated& g : nl.gate.gated) {
                const Irrep ir{(g.dim - 1) / 2, 1};
                GateLayout::Entry entry{0, 1, 0, 0, 1, 0};
                locate(nl.gate.in, {g.mul, ir, g.start}, entry.inOffset, entry.inComponentStep);
                locate(nl.gate.out, {g.mul, ir, outOffset}, entry.outOffset, entry.outComponentStep);
                outOffset += g.mul * g.dim;
                layer.gateLayout.entries.push_back(entry);
            }
        }
        if (L.residual)
            layer.skip = makeLinear(L.skip, nel, 1.0, hIn, hOut);
        else // the skip acts on the messages after `linear`: both are linear, so one product does both
            layer.linear = composeLinears(layer.linear, makeLinear(L.skip, nel, 1.0, message, message));
        layer.productLinear = makeLinear(L.productLinear, nel, 1.0, L.productLinear.in, hOut);
        layer.readout = makeReadout(L.readout, m.energyScale, hOut);
        for (const auto& p : L.conv.paths) {
            const auto &a = L.conv.in1.entries[p.in1], &b = L.conv.in2.entries[p.in2], &c = L.conv.out.entries[p.out];
            TensorProductPath path{0, 0, a.mul, b.offset, 0, 0, p.weightOffset, {}};
            for (const auto& entry : tables.convW3j(static_cast<int>(t), a.ir.l, b.ir.l, c.ir.l)) {
                auto group = std::find_if(path.groups.begin(), path.groups.end(), [&](const auto& g) { return g.i == entry.i; });
                if (group == path.groups.end())
                    group = path.groups.insert(path.groups.end(), {entry.i, {}});
                group->entries.push_back({entry.j, entry.k, static_cast<float>(p.weight * entry.value)});
            }
            locate(L.linearUp.out, a, path.in1Offset, path.in1Step);
            locate(L.linear.in, c, path.outOffset, path.outStep);
            layer.tp.push_back(std::move(path));
        }
        if (!radialDependsOnElements(m)) // the model's one table for every pair (the network holds per-pair ones otherwise)
            layer.radial = floatTable(*radialTableOf(model, static_cast<int>(t), 0, 0));
        layer.densityNormalized = L.densityNormalized;
        layer.densityAlpha = static_cast<float>(L.density.alpha);
        layer.densityBeta = static_cast<float>(L.density.beta);
        layer.densityColumn = L.conv.numWeights;
        layer.radialOutputs = numRadialOutputs(L);
        // Symmetric contraction: feature f of A is (message entry, m); every entry has `channels` channels.
        vector<int> featureOffset;
        for (const auto& e : L.irrepsMessage().entries)
            for (int mm = 0; mm < e.ir.dim(); mm++)
                featureOffset.push_back(e.offset + mm * e.mul);
        const auto& contractions = tables.layerContractions(static_cast<int>(t));
        if (L.productLinear.in.entries.size() != contractions.size())
            throw OpenMM::OpenMMException("ENNForce: the product linear's input does not match the symmetric contractions");
        for (size_t k = 0; k < contractions.size(); k++) {
            if (L.productLinear.in.entries[k].mul != L.channels || L.productLinear.in.entries[k].ir != L.contractions[k].out)
                throw OpenMM::OpenMMException("ENNForce: the product linear's input does not match the symmetric contractions");
            const int productOffset = L.productLinear.in.entries[k].offset;
            for (const auto& ct : contractions[k]) {
                ContractionOrder co;
                co.correlation = ct.correlation;
                for (const auto& key : ct.terms) {
                    co.outIndex.push_back(productOffset + key[0] * L.channels);
                    std::array<int, 3> f{0, 0, 0};
                    for (int i = 0; i < ct.correlation; i++)
                        f[i] = featureOffset[key[i + 1]];
                    co.factor.push_back(f);
                }
                co.coefficients.assign(ct.coefficients.begin(), ct.coefficients.end());
                layer.contraction.push_back(std::move(co));
            }
        }
        layers.push_back(std::move(layer));
    }
    if (m.hasChargeHead) {
        for (const ENNModel::ChargeReadout& r : m.chargeReadouts) {
            weights->chargeReadouts.push_back(makeReadout(r.readout, 1.0, m.layers[r.layer].productLinear.out));
            weights->chargeReadoutLayers.push_back(r.layer);
        }
        for (double q : m.chargeElementOffsets)
            chargeOffset.push_back(static_cast<float>(q));
    }
    return weights;
}

// ---- spherical harmonics ---------------------------------------------------------------------

void CpuENNNetwork::harmonics(const float* vector, float* y, float (*dy)[3]) const {
    // The recursion of ENNModelTables::sphericalHarmonics in float; dY/du is carried along when asked for. A model
    // with harmonics of (y, z, x) (PolarMACE) takes them of the permuted vector, its gradient permuted back below.
    const float permuted[3] = {vector[1], vector[2], vector[0]};
    const float* v = model->harmonicsOfYZX ? permuted : vector;
    const float r = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    const float u[3] = {v[0] / r, v[1] / r, v[2] / r};
    float du[MaxHarmonics][3];
    const float sqrt3 = std::sqrt(3.0f);
    y[0] = 1.0f;
    if (dy)
        du[0][0] = du[0][1] = du[0][2] = 0.0f;
    if (model->shLmax >= 1)
        for (int a = 0; a < 3; a++) {
            y[1 + a] = sqrt3 * u[a];
            if (dy)
                for (int b = 0; b < 3; b++)
                    du[1 + a][b] = a == b ? sqrt3 : 0.0f;
        }
    for (const HarmonicsStep& step : harmonicsSteps) {
        const int l = step.l, o2 = (l - 1) * (l - 1), o3 = l * l;
        for (int k = 0; k < 2 * l + 1; k++) {
            y[o3 + k] = 0.0f;
            if (dy)
                du[o3 + k][0] = du[o3 + k][1] = du[o3 + k][2] = 0.0f;
        }
        for (const auto& s : step.cg) {
            const float c = step.norm * static_cast<float>(s.value);
            y[o3 + s.k] += c * y[1 + s.i] * y[o2 + s.j];
            if (dy)
                for (int a = 0; a < 3; a++)
                    du[o3 + s.k][a] += c * (du[1 + s.i][a] * y[o2 + s.j] + y[1 + s.i] * du[o2 + s.j][a]);
        }
    }
    if (dy)
        for (int k = 0; k < nsh; k++) {
            const float radial = du[k][0] * u[0] + du[k][1] * u[1] + du[k][2] * u[2];
            float g[3];
            for (int a = 0; a < 3; a++)
                g[a] = (du[k][a] - radial * u[a]) / r;
            for (int a = 0; a < 3; a++) // dY/dv_y = dY/du_0, dY/dv_z = dY/du_1, dY/dv_x = dY/du_2 when permuted
                dy[k][a] = model->harmonicsOfYZX ? g[(a + 2) % 3] : g[a];
        }
}

// ---- forward -----------------------------------------------------------------------------------

void CpuENNNetwork::forwardLayer(int t, OpenMM::ThreadPool& pool, bool wantCharges) {
    const Layer& L = layers[t];
    const int N = numNodes;
    hUp[t].assign(size_t(N) * L.dUp, 0.0f);
    A[t].resize(size_t(N) * L.dMsg);
    h[t + 1].resize(size_t(N) * L.dOut);
    parallelFor(pool, numChunks(N, nodeChunkSize), [&](int chunk, int) {
        int n0, n1;
        chunkRange(chunk, nodeChunkSize, N, n0, n1);
        L.linearUp.forward(&h[t][size_t(n0) * L.dIn], &hUp[t][size_t(n0) * L.dUp], n0, n1, elementStart);
    });
    // Messages of receivers [n0, n1) into conv (its row 0 is node n0): the sum over each receiver's edges of the
    // channel-wise tensor product.
    if (L.densityNormalized)
        nodeDensity[t].resize(N);
    if (L.nonlinear) {
        gateInput[t].resize(size_t(N) * L.dGateIn);
        normalizedLinear[t].resize(size_t(N) * L.dGateIn);
    }
    auto convolve = [&](int n0, int n1, float* conv, Scratch& s) {
        std::fill(conv, conv + size_t(n1 - n0) * L.dTp, 0.0f);
        for (int n = n0; n < n1; n++) {
            float* out = conv + size_t(n - n0) * L.dTp;
            float density = 0.0f; // the sum of the edges' densities (density-normalised layers)
            for (int e = neighbors.receiverStart[n]; e < neighbors.receiverStart[n + 1]; e++) {
                radialOfPair[t][edgePair[e]]->evaluate(edgeLength[e], s.w.data(), nullptr);
                if (L.densityNormalized)
                    density += s.w[L.densityColumn];
                const float* x = &hUp[t][size_t(neighbors.sender[e]) * L.dUp];
                const float* y = &edgeHarmonics[size_t(e) * nsh];
                for (const TensorProductPath& p : L.tp) {
                    const float* w = &s.w[p.weightOffset];
                    float* wx = s.wx.data();
                    for (const auto& group : p.groups) {
                        const float* xi = x + p.in1Offset + group.i * p.in1Step;
                        for (int u = 0; u < p.mul; u++)
                            wx[u] = w[u] * xi[u];
                        for (const auto& c : group.entries) {
                            const float scale = c.value * y[p.shOffset + c.j];
                            float* ok = out + p.outOffset + c.k * p.outStep;
                            for (int u = 0; u < p.mul; u++)
                                ok[u] += scale * wx[u];
                        }
                    }
                }
            }
            if (L.densityNormalized)
                nodeDensity[t][n] = L.densityAlpha + L.densityBeta * density;
        }
    };
    // The rest of the layer, node by node, for nodes [n0, n1) (conv: their messages).
    auto update = [&](int n0, int n1, const float* conv, Scratch& s) {
        const int rows = n1 - n0;
        float* a = &A[t][size_t(n0) * L.dMsg];
        std::fill(a, a + size_t(rows) * L.dMsg, 0.0f);
        // linear's output: the message, or (non-linear block) the normalised part of the gate's input.
        float* linearOut = L.nonlinear ? &gateInput[t][size_t(n0) * L.dGateIn] : a;
        const int dLinear = L.nonlinear ? L.dGateIn : L.dMsg;
        std::fill(linearOut, linearOut + size_t(rows) * dLinear, 0.0f);
        L.linear.forward(conv, linearOut, n0, n1, elementStart); // (with the skip of a non-residual layer folded in)
        if (L.densityNormalized) // MACE's density blocks: over alpha + beta d_n (a scalar: the folded skip commutes)
            for (int n = n0; n < n1; n++) {
                const float inverse = 1.0f / nodeDensity[t][n];
                for (float* x = linearOut + size_t(n - n0) * dLinear; x < linearOut + size_t(n - n0 + 1) * dLinear; x++)
                    *x *= inverse;
            }
        if (L.nonlinear) { // message = linear_2(gate(normalised + linear_residual(hUp)))
            std::copy(linearOut, linearOut + size_t(rows) * dLinear, &normalizedLinear[t][size_t(n0) * dLinear]);
            L.linearResidual.forward(&hUp[t][size_t(n0) * L.dUp], linearOut, n0, n1, elementStart);
            float* gated = s.gateOutput.data();
            for (int n = n0; n < n1; n++)
                gateForward(L.gate, L.gateLayout, linearOut + size_t(n - n0) * dLinear, gated + size_t(n - n0) * L.gate.out.dim);
            L.linear2.forward(gated, a, n0, n1, elementStart);
        }
        // Symmetric contraction, node by node, vectorised over channels.
        std::fill(s.product.begin(), s.product.begin() + size_t(rows) * L.dProd, 0.0f);
        for (int n = n0; n < n1; n++) {
            const float* an = a + size_t(n - n0) * L.dMsg;
            float* b = &s.product[size_t(n - n0) * L.dProd];
            for (const ContractionOrder& co : L.contraction) {
                const size_t terms = co.outIndex.size();
                const float* coefficients = &co.coefficients[size_t(nodeSpecies[n]) * terms * L.channels];
                for (size_t term = 0; term < terms; term++) {
                    const float* cf = coefficients + term * L.channels;
                    float* out = b + co.outIndex[term];
                    const float* a0 = an + co.factor[term][0];
                    if (co.correlation == 1) {
                        for (int c = 0; c < L.channels; c++)
                            out[c] += cf[c] * a0[c];
                    } else if (co.correlation == 2) {
                        const float* a1 = an + co.factor[term][1];
                        for (int c = 0; c < L.channels; c++)
                            out[c] += cf[c] * a0[c] * a1[c];
                    } else {
                        const float* a1 = an + co.factor[term][1];
                        const float* a2 = an + co.factor[term][2];
                        for (int c = 0; c < L.channels; c++)
                            out[c] += cf[c] * a0[c] * a1[c] * a2[c];
                    }
                }
            }
        }
        float* hOut = &h[t + 1][size_t(n0) * L.dOut];
        std::fill(hOut, hOut + size_t(rows) * L.dOut, 0.0f);
        L.productLinear.forward(s.product.data(), hOut, n0, n1, elementStart);
        if (L.residual)
            L.skip.forward(&h[t][size_t(n0) * L.dIn], hOut, n0, n1, elementStart);
        readoutForward(L.readout, hOut, n0, n1, s.hidden, s.scalar.data(), elementStart);
        for (int n = n0; n < n1; n++)
            nodeEnergy[n] += s.scalar[n - n0];
        for (size_t k = 0; k < chargeReadouts.size() && wantCharges; k++)
            if (chargeReadoutLayers[k] == t) {
                readoutForward(chargeReadouts[k], hOut, n0, n1, s.hidden, s.scalar.data(), elementStart);
                for (int n = n0; n < n1; n++)
                    rawCharge[n] += s.scalar[n - n0];
            }
    };
    if (nodeChunkSize == edgeChunkSize)
        parallelFor(pool, numChunks(N, edgeChunkSize), [&](int chunk, int thread) {
            int n0, n1;
            chunkRange(chunk, edgeChunkSize, N, n0, n1);
            convolve(n0, n1, scratch[thread].conv.data(), scratch[thread]);
            update(n0, n1, scratch[thread].conv.data(), scratch[thread]);
        });
    else {
        // A small system: edges in small pieces (so that every thread has some), nodes in larger ones (so that a
        // linear's weights are read once for several nodes); the messages of all nodes are kept in between.
        messages.resize(size_t(N) * L.dTp);
        parallelFor(pool, numChunks(N, edgeChunkSize), [&](int chunk, int thread) {
            int n0, n1;
            chunkRange(chunk, edgeChunkSize, N, n0, n1);
            convolve(n0, n1, &messages[size_t(n0) * L.dTp], scratch[thread]);
        });
        parallelFor(pool, numChunks(N, nodeChunkSize), [&](int chunk, int thread) {
            int n0, n1;
            chunkRange(chunk, nodeChunkSize, N, n0, n1);
            update(n0, n1, &messages[size_t(n0) * L.dTp], scratch[thread]);
        });
    }
}

// ---- backward ----------------------------------------------------------------------------------

void CpuENNNetwork::backwardLayer(int t, OpenMM::ThreadPool& pool) {
    const Layer& L = layers[t];
    const int N = numNodes;
    gradIn.assign(size_t(N) * L.dIn, 0.0f);
    gradM.assign(size_t(N) * L.dTp, 0.0f);
    if (L.densityNormalized)
        densityGradient.resize(N);
    if (L.nonlinear && t > 0)
        gradUpResidual.resize(size_t(N) * L.dUp);
    parallelFor(pool, numChunks(N, nodeChunkSize), [&](int chunk, int thread) {
        int n0, n1;
        chunkRange(chunk, nodeChunkSize, N, n0, n1);
        const int rows = n1 - n0;
        Scratch& s = scratch[thread];
        float* gOut = &gradH[size_t(n0) * L.dOut];
        if (!headGradient.empty()) // dE/d(this layer's output) through the layer-feature head
            for (size_t k = 0; k < size_t(rows) * L.dOut; k++)
                gOut[k] += headGradient[t][size_t(n0) * L.dOut + k];
        std::fill(s.scalar.begin(), s.scalar.begin() + rows, 1.0f); // dE/d(readout), energy scale folded in
        readoutBackward(L.readout, &h[t + 1][size_t(n0) * L.dOut], s.scalar.data(), n0, n1, s.hidden, s.gradHidden, gOut, elementStart);
        for (size_t k = 0; k < chargeReadouts.size() && !rawChargeGradient.empty(); k++)
            if (chargeReadoutLayers[k] == t) { // dE/d(raw charge) through this layer's charge readout
                std::copy(&rawChargeGradient[n0], &rawChargeGradient[n1], s.scalar.begin());
                readoutBackward(chargeReadouts[k], &h[t + 1][size_t(n0) * L.dOut], s.scalar.data(), n0, n1, s.hidden, s.gradHidden, gOut,
                                elementStart);
            }
        if (L.residual && t > 0) // (the first layer's input is the embedding, which has no gradient)
            L.skip.backward(gOut, &gradIn[size_t(n0) * L.dIn], n0, n1, elementStart);
        float* gradB = s.product.data();
        std::fill(gradB, gradB + size_t(rows) * L.dProd, 0.0f);
        L.productLinear.backward(gOut, gradB, n0, n1, elementStart);
        float* gradA = s.message.data();
        std::fill(gradA, gradA + size_t(rows) * L.dMsg, 0.0f);
        for (int n = n0; n < n1; n++) {
            const float* an = &A[t][size_t(n) * L.dMsg];
            float* ga = gradA + size_t(n - n0) * L.dMsg;
            const float* gb = gradB + size_t(n - n0) * L.dProd;
            for (const ContractionOrder& co : L.contraction) {
                const size_t terms = co.outIndex.size();
                const float* coefficients = &co.coefficients[size_t(nodeSpecies[n]) * terms * L.channels];
                for (size_t term = 0; term < terms; term++) {
                    const float* cf = coefficients + term * L.channels;
                    const float* g = gb + co.outIndex[term];
                    const int f0 = co.factor[term][0], f1 = co.factor[term][1], f2 = co.factor[term][2];
                    if (co.correlation == 1) {
                        for (int c = 0; c < L.channels; c++)
                            ga[f0 + c] += g[c] * cf[c];
                    } else if (co.correlation == 2)
                        contractionTermBackward<2>(an, g, cf, f0, f1, f2, L.channels, ga);
                    else
                        contractionTermBackward<3>(an, g, cf, f0, f1, f2, L.channels, ga);
                }
            }
        }
        // The gradient of linear's (normalised) output: of the message, or (non-linear block) of the gate's input.
        float* gradLinear = gradA;
        const float* normalized = &A[t][size_t(n0) * L.dMsg];
        const int dLinear = L.nonlinear ? L.dGateIn : L.dMsg;
        if (L.nonlinear) {
            float* gradGated = s.gateOutput.data(); // (of the gate's output)
            std::fill(gradGated, gradGated + size_t(rows) * L.gate.out.dim, 0.0f);
            L.linear2.backward(gradA, gradGated, n0, n1, elementStart);
            gradLinear = s.gateInputGradient.data();
            std::fill(gradLinear, gradLinear + size_t(rows) * dLinear, 0.0f);
            for (int n = n0; n < n1; n++)
                gateBackward(L.gate, L.gateLayout, &gateInput[t][size_t(n) * dLinear], gradGated + size_t(n - n0) * L.gate.out.dim,
                             gradLinear + size_t(n - n0) * dLinear);
            if (t > 0) { // (the first layer's input is the embedding, which has no gradient)
                std::fill(&gradUpResidual[size_t(n0) * L.dUp], &gradUpResidual[size_t(n1) * L.dUp], 0.0f);
                L.linearResidual.backward(gradLinear, &gradUpResidual[size_t(n0) * L.dUp], n0, n1, elementStart);
            }
            normalized = &normalizedLinear[t][size_t(n0) * dLinear];
        }
        if (L.densityNormalized) // F(M) / D, D = alpha + beta d: dE/dD = -(grad . F/D) / D, dE/dF = grad / D
            for (int n = n0; n < n1; n++) {
                const float inverse = 1.0f / nodeDensity[t][n];
                float* g = gradLinear + size_t(n - n0) * dLinear;
                densityGradient[n] = -dotProduct(g, normalized + size_t(n - n0) * dLinear, dLinear) * inverse;
                for (int k = 0; k < dLinear; k++)
                    g[k] *= inverse;
            }
        L.linear.backward(gradLinear, &gradM[size_t(n0) * L.dTp], n0, n1, elementStart);
    });
    // One edge's radial and harmonic gradients (and, given gx, its sender's feature gradient), from the gradient g of
    // its receiver's messages.
    auto edgeBackward = [&](int e, const float* g, float* gx, Scratch& s) {
        const float* x = &hUp[t][size_t(neighbors.sender[e]) * L.dUp];
        radialOfPair[t][edgePair[e]]->evaluate(edgeLength[e], s.w.data(), s.dw.data());
        std::fill(s.gw.begin(), s.gw.begin() + L.radialOutputs, 0.0f);
        if (L.densityNormalized) // D = alpha + beta (sum of the edges' densities)
            s.gw[L.densityColumn] = L.densityBeta * densityGradient[neighbors.receiver[e]];
        const float* y = &edgeHarmonics[size_t(e) * nsh];
        float* gy = &edgeGradHarmonics[size_t(e) * nsh];
        for (const TensorProductPath& p : L.tp) {
            const float* w = &s.w[p.weightOffset];
            float* gw = &s.gw[p.weightOffset];
            float *wx = s.wx.data(), *z = s.z.data();
            for (const auto& group : p.groups) {
                // With z = sum over the group's entries of value y_j g_k: dE/dw += z x_i, dE/dx_i += z w,
                // and dE/dy_j += value sum_u (w x_i) g_k (in Lanes partial sums: a fixed order that vectorises).
                const float* xi = x + p.in1Offset + group.i * p.in1Step;
                for (int u = 0; u < p.mul; u++) {
                    wx[u] = w[u] * xi[u];
                    z[u] = 0.0f;
                }
                for (const auto& c : group.entries)
                    gy[p.shOffset + c.j] += c.value * scaledAddAndDot(z, g + p.outOffset + c.k * p.outStep, wx, c.value * y[p.shOffset + c.j], p.mul);
                for (int u = 0; u < p.mul; u++)
                    gw[u] += z[u] * xi[u];
                if (gx != nullptr) {
                    float* gxi = gx + p.in1Offset + group.i * p.in1Step;
                    for (int u = 0; u < p.mul; u++)
                        gxi[u] += z[u] * w[u];
                }
            }
        }
        edgeGradLength[e] += dotProduct(s.gw.data(), s.dw.data(), L.radialOutputs);
    };
    if (t == 0) {
        // The first layer's sender features are the embedding, which needs no gradient: edges by receiver, so that
        // each receiver's message gradient stays in cache over its edges.
        parallelFor(pool, numChunks(N, edgeChunkSize), [&](int chunk, int thread) {
            int n0, n1;
            chunkRange(chunk, edgeChunkSize, N, n0, n1);
            for (int n = n0; n < n1; n++)
                for (int e = neighbors.receiverStart[n]; e < neighbors.receiverStart[n + 1]; e++)
                    edgeBackward(e, &gradM[size_t(n) * L.dTp], nullptr, scratch[thread]);
        });
        gradH.swap(gradIn);
        return;
    }
    // Edges grouped by sender: each edge's radial and harmonic gradients are written by the thread
    // owning its sender, which also owns the sender's feature gradient.
    parallelFor(pool, numChunks(N, edgeChunkSize), [&](int chunk, int thread) {
        int n0, n1;
        chunkRange(chunk, edgeChunkSize, N, n0, n1);
        Scratch& s = scratch[thread];
        float* gradUp = s.conv.data();
        if (L.nonlinear) // (its gradient through linear_residual)
            std::copy(&gradUpResidual[size_t(n0) * L.dUp], &gradUpResidual[size_t(n1) * L.dUp], gradUp);
        else
            std::fill(gradUp, gradUp + size_t(n1 - n0) * L.dUp, 0.0f);
        for (int n = n0; n < n1; n++)
            for (int k = neighbors.senderStart[n]; k < neighbors.senderStart[n + 1]; k++) {
                const int e = neighbors.bySender[k];
                edgeBackward(e, &gradM[size_t(neighbors.receiver[e]) * L.dTp], gradUp + size_t(n - n0) * L.dUp, s);
            }
        L.linearUp.backward(gradUp, &gradIn[size_t(n0) * L.dIn], n0, n1, elementStart);
    });
    gradH.swap(gradIn);
}

// ---- the whole evaluation ----------------------------------------------------------------------

double CpuENNNetwork::compute(const vector<Vec3>& positions, const Vec3* box, const ENNChargeGroups& chargeGroups, const InitialNodeFeatures& initial,
                              const ChargeCoupling& coupling,
                              vector<double>* charges, vector<Vec3>* gradient, OpenMM::ThreadPool& pool, const LayerFeatureHead& head) {
    const ENNModel& m = *model;
    const int N = numNodes, T = static_cast<int>(layers.size());
    const bool wantGradient = gradient != nullptr;
    const bool wantCharges = charges != nullptr || bool(coupling);
    if (wantCharges && !m.hasChargeHead)
        throw OpenMM::OpenMMException("ENNForce: the model has no charge head");
    if (static_cast<int>(scratch.size()) < pool.getNumThreads()) {
        int widest = m.layers.empty() ? 1 : 0, weights = 1, hidden = 1;
        for (const Layer& L : layers) {
            widest = std::max({widest, L.dIn, L.dUp, L.dTp, L.dMsg, L.dProd, L.dOut, L.dGateIn, L.gate.out.dim});
            weights = std::max(weights, L.radialOutputs);
            hidden = std::max(hidden, L.readout.linear1.dimOut);
        }
        for (const Readout& r : chargeReadouts)
            hidden = std::max(hidden, r.linear1.dimOut);
        scratch.resize(pool.getNumThreads());
        for (Scratch& s : scratch) {
            for (vector<float>* v : {&s.conv, &s.message, &s.product, &s.gateOutput, &s.gateInputGradient})
                v->resize(size_t(nodeChunkSize) * widest);
            s.hidden.resize(size_t(nodeChunkSize) * hidden);
            s.gradHidden.resize(size_t(nodeChunkSize) * hidden);
            s.scalar.resize(nodeChunkSize);
            for (vector<float>* v : {&s.w, &s.dw, &s.gw})
                v->resize(weights);
            for (vector<float>* v : {&s.wx, &s.z})
                v->resize(widest);
        }
    }

    // Neighbours and edge geometry, in node order.
    nodePositions.resize(N);
    for (int n = 0; n < N; n++)
        nodePositions[n] = positions[order[n]];
    neighbors.build(nodePositions, m.rMax, box, pool);
    const int E = neighbors.numEdges();
    const int nel = m.numElements();
    edgeLength.resize(E);
    edgeHarmonics.resize(size_t(E) * nsh);
    edgePair.resize(E);
    edgeRepulsion.resize(m.hasPairRepulsion ? E : 0);
    edgeRepulsionDerivative.resize(m.hasPairRepulsion ? E : 0);
    const int edgeChunk = 256;
    parallelFor(pool, numChunks(E, edgeChunk), [&](int chunk, int) {
        int e0, e1;
        chunkRange(chunk, edgeChunk, E, e0, e1);
        for (int e = e0; e < e1; e++) {
            const float* v = &neighbors.vec[size_t(e) * 3];
            edgeLength[e] = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
            harmonics(v, &edgeHarmonics[size_t(e) * nsh], nullptr);
            const int a = nodeSpecies[neighbors.sender[e]], b = nodeSpecies[neighbors.receiver[e]];
            edgePair[e] = a * nel + b;
            if (m.hasPairRepulsion) { // MACE's ZBLBasis, in double from the float edge vector
                const double r = std::sqrt(double(v[0]) * v[0] + double(v[1]) * v[1] + double(v[2]) * v[2]);
                double derivative;
                edgeRepulsion[e] = pairRepulsionEnergy(m, a, b, r, derivative);
                edgeRepulsionDerivative[e] = static_cast<float>(derivative);
            }
        }
    });

    // Forward.
    const size_t dEmbedding = m.embedding.out.dim;
    h[0].resize(size_t(N) * dEmbedding);
    nodeEnergy.assign(N, 0.0);
    for (int n = 0; n < N; n++) { // (a single entry of scalars: the same in this layout)
        std::copy(initial.features[nodeSpecies[n]].begin(), initial.features[nodeSpecies[n]].end(), &h[0][n * dEmbedding]);
        nodeEnergy[n] = initial.energy[nodeSpecies[n]];
    }
    rawCharge.assign(wantCharges ? N : 0, 0.0);
    for (int n = 0; n < N && wantCharges; n++)
        rawCharge[n] = chargeOffset[nodeSpecies[n]];
    for (int t = 0; t < T; t++)
        forwardLayer(t, pool, wantCharges);
    double energy = 0.0;
    for (int n = 0; n < N; n++)
        energy += nodeEnergy[n] + nodeConstant[n];
    for (double e : edgeRepulsion) // in edge order, whatever the threads
        energy += e;
    headGradient.clear();
    if (head) { // the layers' outputs in double, e3nn's [channel][m] layout, the caller's atom order, and back
        vector<vector<double>> outputs(T), gradients;
        vector<const vector<double>*> pointers;
        auto e3nnIndex = [](const Irreps& irreps, auto visit) { // (e3nn offset, this layout's offset) of every entry
            for (const auto& e : irreps.entries)
                for (int u = 0; u < e.mul; u++)
                    for (int c = 0; c < e.ir.dim(); c++)
                        visit(e.offset + u * e.ir.dim() + c, e.offset + c * e.mul + u);
        };
        for (int t = 0; t < T; t++) {
            const int d = layers[t].dOut;
            outputs[t].resize(size_t(N) * d);
            for (int n = 0; n < N; n++)
                e3nnIndex(m.layers[t].productLinear.out, [&](int a, int b) { outputs[t][size_t(order[n]) * d + a] = h[t + 1][size_t(n) * d + b]; });
            pointers.push_back(&outputs[t]);
        }
        energy += head(pointers, wantGradient ? &gradients : nullptr);
        if (wantGradient) {
            headGradient.resize(T);
            for (int t = 0; t < T; t++) {
                const int d = layers[t].dOut;
                headGradient[t].resize(size_t(N) * d);
                for (int n = 0; n < N; n++)
                    e3nnIndex(m.layers[t].productLinear.out,
                              [&](int a, int b) { headGradient[t][size_t(n) * d + b] = static_cast<float>(gradients[t][size_t(order[n]) * d + a]); });
            }
        }
    }

    // Charges, in the caller's order.
    vector<double>& q = charge;
    if (wantCharges) {
        q.resize(N);
        for (int n = 0; n < N; n++)
            q[order[n]] = rawCharge[n];
        chargeGroups.apply(q);
        if (charges)
            *charges = q;
    }
    if (coupling)
        coupling(q, phi);
    if (!wantGradient)
        return energy;

    // Backward.
    const int dTop = T > 0 ? layers.back().dOut : 0;
    gradH.assign(size_t(N) * dTop, 0.0f);
    if (m.hasPairRepulsion)
        edgeGradLength.assign(edgeRepulsionDerivative.begin(), edgeRepulsionDerivative.end());
    else
        edgeGradLength.assign(E, 0.0f);
    edgeGradHarmonics.assign(size_t(E) * nsh, 0.0f);
    // q_i = raw_i + (Q_g - sum_g raw)/N_g, so dE/draw_j = phi_j - mean of phi over j's group (phi_j if unconstrained);
    // each layer with a charge readout takes it from here (node order).
    rawChargeGradient.clear();
    if (coupling) {
        const vector<double> projected = chargeGroups.project(phi);
        rawChargeGradient.resize(N);
        for (int n = 0; n < N; n++)
            rawChargeGradient[n] = static_cast<float>(projected[order[n]]);
    }
    for (int t = T - 1; t >= 0; t--)
        backwardLayer(t, pool);

    // dE/dvec for each edge, then each atom sums the edges it receives minus those it sends.
    edgeGradVec.resize(size_t(E) * 3);
    parallelFor(pool, numChunks(E, edgeChunk), [&](int chunk, int) {
        int e0, e1;
        chunkRange(chunk, edgeChunk, E, e0, e1);
        float y[MaxHarmonics], dy[MaxHarmonics][3];
        for (int e = e0; e < e1; e++) {
            const float* v = &neighbors.vec[size_t(e) * 3];
            harmonics(v, y, dy);
            const float radial = edgeGradLength[e] / edgeLength[e];
            const float* gy = &edgeGradHarmonics[size_t(e) * nsh];
            for (int a = 0; a < 3; a++) {
                float g = radial * v[a];
                for (int k = 0; k < nsh; k++)
                    g += gy[k] * dy[k][a];
                edgeGradVec[size_t(e) * 3 + a] = g;
            }
        }
    });
    gradient->resize(N);
    parallelFor(pool, numChunks(N, 64), [&](int chunk, int) {
        int n0, n1;
        chunkRange(chunk, 64, N, n0, n1);
        for (int n = n0; n < n1; n++) {
            double g[3] = {0, 0, 0};
            for (int e = neighbors.receiverStart[n]; e < neighbors.receiverStart[n + 1]; e++)
                for (int a = 0; a < 3; a++)
                    g[a] += edgeGradVec[size_t(e) * 3 + a];
            for (int k = neighbors.senderStart[n]; k < neighbors.senderStart[n + 1]; k++)
                for (int a = 0; a < 3; a++)
                    g[a] -= edgeGradVec[size_t(neighbors.bySender[k]) * 3 + a];
            (*gradient)[order[n]] = Vec3(g[0], g[1], g[2]);
        }
    });
    return energy;
}
