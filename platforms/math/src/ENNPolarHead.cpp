#include "ENNPolarHead.h"
#include "ENNTape.h"
#include "ENNModelMath.h"
#include "ENNSanityBounds.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <array>
#include <cmath>
#include <memory>

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::vector;

namespace {

using V = TapeValue;
using Vec = vector<V>;

ENNTape& tape() {
    return *ENNTape::active();
}

V activate(const ActivationSpec& act, const V& x) {
    double derivative;
    const double value = activation(act, x.value, &derivative);
    return apply(x, value, derivative);
}

/** The tape nodes of n values (-1: a constant), and whether any is not constant. */
vector<int> nodesOf(const V* x, int n, bool& any) {
    vector<int> nodes(n);
    any = false;
    for (int i = 0; i < n; i++) {
        nodes[i] = x[i].node;
        any = any || nodes[i] >= 0;
    }
    return nodes;
}

/** Values as tape nodes first, first + 1, ... (or constants if first < 0). */
Vec asNodes(const vector<double>& values, int first) {
    Vec out(values.size());
    for (size_t i = 0; i < values.size(); i++)
        out[i] = first < 0 ? V(values[i]) : V(values[i], first + static_cast<int>(i));
    return out;
}

/** e3nn's Linear (with any bias) of one atom's features, one tape block: its transpose is its backward pass. */
Vec linear(const LinearSpec& lin, const V* in, int element = 0) {
    vector<double> out(lin.out.dim, 0.0);
    if (!lin.bias.empty())
        out = lin.bias;
    vector<double> values(lin.in.dim);
    for (int i = 0; i < lin.in.dim; i++)
        values[i] = in[i].value;
    linearApply(lin, element, values.data(), out.data());
    bool variable;
    const vector<int> inputs = nodesOf(in, lin.in.dim, variable);
    if (!variable)
        return asNodes(out, -1);
    const int first = tape().block(lin.out.dim, [&lin, element, inputs](vector<double>& adjoint, int first) {
        vector<double> g(inputs.size(), 0.0); // (gathered here, then added to the inputs' adjoints once each)
        const double* gOut = &adjoint[first];
        linearApplyTranspose(lin, element, gOut, g.data());
        for (size_t i = 0; i < inputs.size(); i++)
            if (inputs[i] >= 0)
                adjoint[inputs[i]] += g[i];
    });
    return asNodes(out, first);
}

/** sum_i c_i x_i, one node. */
V weightedSum(const V* x, const double* c, int n) {
    double value = 0.0;
    tape().begin();
    for (int i = 0; i < n; i++) {
        value += c[i] * x[i].value;
        tape().parent(x[i], c[i]);
    }
    return tape().end(value);
}

V sum(const Vec& x) {
    vector<double> ones(x.size(), 1.0);
    return weightedSum(x.data(), ones.data(), static_cast<int>(x.size()));
}

/** y_j = bias_j + scale sum_i W[i nOut + j] t_i (a torch Linear as RadialMLPSpec stores it), one tape block: its
 *  transpose is its backward pass. */
Vec dense(const vector<double>& weights, double scale, const vector<double>* bias, const Vec& t, int nOut) {
    const int nIn = static_cast<int>(t.size());
    vector<double> y(nOut, 0.0);
    for (int i = 0; i < nIn; i++) {
        const double ti = t[i].value * scale;
        const double* row = &weights[size_t(i) * nOut];
        for (int j = 0; j < nOut; j++)
            y[j] += row[j] * ti;
    }
    if (bias)
        for (int j = 0; j < nOut; j++)
            y[j] += (*bias)[j];
    bool variable;
    const vector<int> inputs = nodesOf(t.data(), nIn, variable);
    if (!variable)
        return asNodes(y, -1);
    const int first = tape().block(nOut, [&weights, scale, inputs, nOut](vector<double>& adjoint, int first) {
        for (size_t i = 0; i < inputs.size(); i++) {
            if (inputs[i] < 0)
                continue;
            const double* row = &weights[i * nOut];
            double g = 0.0;
            for (int j = 0; j < nOut; j++)
                g += row[j] * adjoint[first + j];
            adjoint[inputs[i]] += scale * g;
        }
    });
    return asNodes(y, first);
}

/** MACE's RadialMLP used on node features: Linear (bias), LayerNorm and activation per hidden layer, Linear last. */
Vec mlp(const RadialMLPSpec& m, Vec t) {
    const size_t layers = m.sizes.size() - 1;
    for (size_t k = 0; k < layers; k++) {
        const int nOut = m.sizes[k + 1];
        Vec y = dense(m.weights[k], m.weightScales[k], m.biases.empty() ? nullptr : &m.biases[k], t, nOut);
        if (k + 1 < layers) {
            if (!m.layerNorms.empty()) { // torch's LayerNorm: biased variance
                const auto& norm = m.layerNorms[k];
                const V mean = sum(y) / double(nOut);
                Vec centred(nOut), squares(nOut);
                for (int j = 0; j < nOut; j++) {
                    centred[j] = y[j] - mean;
                    squares[j] = centred[j] * centred[j];
                }
                const V inverse = V(1.0) / sqrt(sum(squares) / double(nOut) + norm.eps);
                for (int j = 0; j < nOut; j++)
                    y[j] = centred[j] * inverse * norm.weight[j] + norm.bias[j];
            }
            for (V& x : y)
                x = activate(m.activation, x);
        }
        t.swap(y);
    }
    return t;
}

/** e3nn's Gate in its own layout (GateSpec). */
Vec gate(const GateSpec& g, const Vec& in) {
    Vec out;
    for (int i = 0; i < g.scalarCount; i++)
        out.push_back(activate(g.scalarActivation, in[g.scalarStart + i]));
    for (const GateSpec::Gated& e : g.gated)
        for (int u = 0; u < e.mul; u++) {
            const V factor = activate(g.gateActivation, in[g.gateStart + e.gateOffset + u]);
            for (int m = 0; m < e.dim; m++)
                out.push_back(in[e.start + u * e.dim + m] * factor);
        }
    return out;
}

/** MACE's NonLinearBiasReadoutBlock / GeneralNonLinearBiasReadoutBlock. */
Vec biasedReadout(const BiasedReadoutSpec& r, const V* in) {
    auto nonlinearity = [&](Vec x) {
        if (r.gated)
            return gate(r.gate, x);
        for (V& v : x)
            v = activate(r.activation, v);
        return x;
    };
    Vec x = nonlinearity(linear(r.linear1, in));
    x = nonlinearity(linear(r.linearMid, x.data()));
    return linear(r.linear2, x.data());
}

/** MACE's SparseUvuTensorProduct (ChannelProductSpec): "dot" paths out[u] += w_path sum_v W[u,v] x1[u] . x2[v] / sqrt(d),
 *  "scale" paths out[u, m] += w_path x1[u, m] sum_v W[u,v] x2[v] / sqrt(d). Per path, the weights act on x2 first
 *  (t[u, m] = sum_v W[u,v] x2[v, m], or s[u] = sum_v W[u,v] x2[v]), so that a scale path costs mul^2 + mul d, not
 *  mul^2 d. With gOut (the output's gradient), adds the products' gradients to g1 and g2 instead of the output to out. */
void channelProductPaths(const ChannelProductSpec& tp, const double* x1, const double* x2, double* out, const double* gOut, double* g1, double* g2) {
    for (const auto& p : tp.paths) {
        const auto &a = tp.in1.entries[p.in1], &b = tp.in2.entries[p.in2], &c = tp.out.entries[p.out];
        const int d = a.ir.dim(), nu = a.mul, nv = b.mul;
        const double norm = p.weight / std::sqrt(double(d));
        const double* W = &tp.weights[p.weightOffset];
        for (int u = 0; u < nu; u++) {
            const double* w = W + size_t(u) * nv;
            const double* xu = x1 + a.offset + u * d;
            if (p.dot) {
                const double gu = gOut ? norm * gOut[c.offset + u] : 0.0;
                if (gOut && gu == 0.0)
                    continue;
                for (int m = 0; m < d; m++) {
                    double t = 0.0;
                    for (int v = 0; v < nv; v++)
                        t += w[v] * x2[b.offset + v * d + m];
                    if (!gOut) {
                        out[c.offset + u] += norm * xu[m] * t;
                        continue;
                    }
                    g1[a.offset + u * d + m] += gu * t;
                    for (int v = 0; v < nv; v++)
                        g2[b.offset + v * d + m] += gu * w[v] * xu[m];
                }
            } else {
                double s = 0.0;
                for (int v = 0; v < nv; v++)
                    s += w[v] * x2[b.offset + v];
                if (!gOut) {
                    for (int m = 0; m < d; m++)
                        out[c.offset + u * d + m] += norm * xu[m] * s;
                    continue;
                }
                double gs = 0.0;
                for (int m = 0; m < d; m++) {
                    const double g = norm * gOut[c.offset + u * d + m];
                    g1[a.offset + u * d + m] += g * s;
                    gs += g * xu[m];
                }
                for (int v = 0; v < nv && gs != 0.0; v++)
                    g2[b.offset + v] += gs * w[v];
            }
        }
    }
}

/** MACE's SparseUvuTensorProduct (channelProductPaths), one tape block: bilinear, so its backward pass is the
 *  products' gradients at the recorded inputs. */
Vec channelProduct(const ChannelProductSpec& tp, const V* x1, const V* x2) {
    vector<double> out(tp.out.dim, 0.0), v1(tp.in1.dim), v2(tp.in2.dim);
    for (int i = 0; i < tp.in1.dim; i++)
        v1[i] = x1[i].value;
    for (int i = 0; i < tp.in2.dim; i++)
        v2[i] = x2[i].value;
    channelProductPaths(tp, v1.data(), v2.data(), out.data(), nullptr, nullptr, nullptr);
    bool variable1, variable2;
    const vector<int> nodes1 = nodesOf(x1, tp.in1.dim, variable1), nodes2 = nodesOf(x2, tp.in2.dim, variable2);
    if (!variable1 && !variable2)
        return asNodes(out, -1);
    const int first = tape().block(tp.out.dim, [&tp, nodes1, nodes2, v1, v2](vector<double>& adjoint, int first) {
        vector<double> g1(v1.size(), 0.0), g2(v2.size(), 0.0);
        channelProductPaths(tp, v1.data(), v2.data(), nullptr, &adjoint[first], g1.data(), g2.data());
        for (size_t i = 0; i < g1.size(); i++)
            if (nodes1[i] >= 0)
                adjoint[nodes1[i]] += g1[i];
        for (size_t i = 0; i < g2.size(); i++)
            if (nodes2[i] >= 0)
                adjoint[nodes2[i]] += g2[i];
    });
    return asNodes(out, first);
}

/** adjoint[nodes[j]] += gradient[j] for j = 0 .. count - 1 (constants, node -1, skipped), in order, on the calling
 *  thread: the parallel parts of a block's backward pass write their own buffers, and only this touches the tape's
 *  adjoints, so a node shared between atoms would still be summed correctly. */
void addToAdjoints(vector<double>& adjoint, const vector<int>& nodes, const double* gradient, size_t count) {
    for (size_t j = 0; j < count; j++)
        if (nodes[j] >= 0)
            adjoint[nodes[j]] += gradient[j];
}

/** A network applied to each atom on its own, f(n, atom n's inputs) -> atom n's outputs (as many for every atom), as one
 *  tape block over all atoms: each atom's part is recorded on a tape of its own, the atoms shared out by `parallel`;
 *  the block's backward pass replays each atom's tape (shared out too) and adds to the inputs' adjoints in atom order,
 *  so that results do not depend on the threads. */
vector<Vec> perAtom(const ENNParallelFor& parallel, const vector<Vec>& inputs, const std::function<Vec(int, const Vec&)>& f) {
    const int N = static_cast<int>(inputs.size());
    struct Part {
        std::unique_ptr<ENNTape> tape;
        vector<int> outputs; // the outputs' nodes on the atom's tape (-1: a constant)
    };
    auto parts = std::make_shared<vector<Part>>(N);
    vector<vector<double>> values(N);
    parallel(N, [&](int n) {
        Part& part = (*parts)[n];
        part.tape = std::make_unique<ENNTape>();
        ENNTape::Recording recording(*part.tape);
        Vec local(inputs[n].size());
        for (size_t i = 0; i < local.size(); i++)
            local[i] = part.tape->input(inputs[n][i].value); // (node i of the atom's tape)
        for (const V& out : f(n, local)) {
            values[n].push_back(out.value);
            part.outputs.push_back(out.node);
        }
    });
    const int outDim = N > 0 ? static_cast<int>(values[0].size()) : 0;
    auto inputNodes = std::make_shared<vector<vector<int>>>(N);
    bool variable = false;
    for (int n = 0; n < N; n++) {
        if (static_cast<int>(values[n].size()) != outDim)
            throw OpenMM::OpenMMException("ENNForce: internal error: a per-atom block's outputs differ in size between atoms");
        bool any;
        (*inputNodes)[n] = nodesOf(inputs[n].data(), static_cast<int>(inputs[n].size()), any);
        variable = variable || any;
    }
    vector<Vec> outputs(N);
    if (!variable) {
        for (int n = 0; n < N; n++)
            outputs[n] = asNodes(values[n], -1);
        return outputs;
    }
    const int first = tape().block(N * outDim, [parts, inputNodes, parallel, outDim, N](vector<double>& adjoint, int first) {
        vector<vector<double>> gradients(N);
        parallel(N, [&](int n) { // (reads the shared adjoints only)
            const Part& part = (*parts)[n];
            vector<double> local(part.tape->size(), 0.0);
            bool seeded = false;
            for (int k = 0; k < outDim; k++) {
                const double a = adjoint[first + n * outDim + k];
                if (part.outputs[k] >= 0 && a != 0.0) {
                    local[part.outputs[k]] += a;
                    seeded = true;
                }
            }
            if (!seeded)
                return;
            part.tape->sweep(local);
            gradients[n].assign(local.begin(), local.begin() + (*inputNodes)[n].size());
        });
        for (int n = 0; n < N; n++)
            addToAdjoints(adjoint, (*inputNodes)[n], gradients[n].data(), gradients[n].size());
    });
    for (int n = 0; n < N; n++)
        for (int k = 0; k < outDim; k++)
            outputs[n].push_back(V(values[n][k], first + n * outDim + k));
    return outputs;
}

/** total[0 .. size) += sum over atoms i = 0 .. n - 1 of what term(i, out) adds to out: the atoms in chunks (their number
 *  set by n alone) shared out by `parallel`, each chunk's sum added in chunk order, so that results do not depend on
 *  the threads; memory O(chunks x size), at most 64 chunks. */
void sumOverAtoms(const ENNParallelFor& parallel, int n, size_t size, const std::function<void(int, double*)>& term, double* total) {
    const int chunk = std::max(4, (n + 63) / 64), chunks = (n + chunk - 1) / chunk;
    vector<vector<double>> partial(chunks);
    parallel(chunks, [&](int c) {
        partial[c].assign(size, 0.0);
        for (int i = c * chunk; i < std::min(n, (c + 1) * chunk); i++)
            term(i, partial[c].data());
    });
    for (const vector<double>& p : partial)
        for (size_t j = 0; j < size; j++)
            total[j] += p[j];
}

/** graph-longrange's real-space point charges of a set of Gaussian multipoles (charge and dipole (y, z, x)): each atom
 *  as a charge at its position and, with dipoles, three more displaced by `offset` along x, y and z (finite differences). */
struct PointCharges {
    int perAtom = 1;
    vector<Vec3> offsets;
    vector<Vec> charges; // [atom][site]
};

PointCharges pointCharges(const vector<Vec>& multipoles, int multipoleLmax, bool displaced, double offset) {
    PointCharges p;
    p.perAtom = displaced ? 4 : 1;
    p.offsets = {Vec3()};
    if (displaced)
        p.offsets.insert(p.offsets.end(), {Vec3(offset, 0, 0), Vec3(0, offset, 0), Vec3(0, 0, offset)});
    for (const Vec& q : multipoles) {
        if (!displaced) {
            p.charges.push_back({q[0]});
            continue;
        }
        // sites x, y, z carry the dipole's x (entry 3), y (1) and z (2) components over the offset; the centre the rest
        Vec site(4, V(0.0));
        if (multipoleLmax >= 1) {
            site[1] = q[3] / V(offset);
            site[2] = q[1] / V(offset);
            site[3] = q[2] / V(offset);
        }
        site[0] = q[0] - (site[1] + site[2] + site[3]);
        p.charges.push_back(site);
    }
    return p;
}

/** The MM charges as graph-longrange's external sources (openmm-ml's PolarMACE embedding): Gaussian charges of the
 *  multipoles' width at the MM positions (tape inputs), half of their potential in each spin channel's features. */
struct Sources {
    const vector<Vec3>* x = nullptr;
    const vector<Vec>* xv = nullptr;
    const vector<double>* charges = nullptr;
    size_t size() const { return x ? x->size() : 0; }
};
const double SourceShareOfEachChannel = 0.5;

/** erf(d / (2 w)) / (d + softening) and its derivative. */
double kernel(double d, double w, double softening, double& derivative) {
    const double x = d / (2 * w), e = std::erf(x), denominator = d + softening;
    derivative = std::exp(-x * x) / (w * std::sqrt(M_PI)) / denominator - e / (denominator * denominator);
    return e / denominator;
}

/** The MM charges' potential (half of it: one spin channel's share) at sites 0 .. numSites - 1 of every atom for every
 *  probe width, [(atom * numSites + site) * widths + width]: one tape block whose backward pass recomputes the pair
 *  terms, so that memory is O(sites), not O(sites x MM charges). */
Vec sourcePotentials(const PolarSpec& P, const PointCharges& pc, int numSites, const vector<Vec3>& x, const vector<Vec>& xv, const Sources& sources,
                      const ENNParallelFor& parallel) {
    const int N = static_cast<int>(x.size()), W = static_cast<int>(P.fieldWidths.size());
    const size_t M = sources.size();
    vector<double> values(size_t(N) * numSites * W, 0.0);
    // (run again by the backward pass, after this function returns: everything by value but the model's spec and the
    // MM positions and charges, which outlive the evaluation)
    auto pairs = [&P, offsets = pc.offsets, x, sources, M](int i, int s, int w, auto&& visit) {
        const Vec3 at = x[i] + offsets[s];
        for (size_t m = 0; m < M; m++) {
            const Vec3 r = at - (*sources.x)[m];
            const double d = std::sqrt(r.dot(r)), q = SourceShareOfEachChannel * (*sources.charges)[m];
            double dk;
            const double k = P.fieldConstant * kernel(d, P.featureWidthFactors[w], P.softening, dk);
            visit(m, q * k, r * (q * P.fieldConstant * dk / d));
        }
    };
    parallel(N, [&](int i) {
        for (int s = 0; s < numSites; s++)
            for (int w = 0; w < W; w++)
                pairs(i, s, w, [&](size_t, double value, const Vec3&) { values[(size_t(i) * numSites + s) * W + w] += value; });
    });
    bool any = false;
    vector<int> xNodes, sourceNodes;
    for (int i = 0; i < N; i++)
        for (int a = 0; a < 3; a++)
            xNodes.push_back(xv[i][a].node);
    for (size_t m = 0; m < M; m++)
        for (int a = 0; a < 3; a++)
            sourceNodes.push_back((*sources.xv)[m][a].node);
    for (int node : xNodes)
        any = any || node >= 0;
    for (int node : sourceNodes)
        any = any || node >= 0;
    if (!any)
        return asNodes(values, -1);
    const int first = tape().block(static_cast<int>(values.size()), [pairs, xNodes, sourceNodes, N, numSites, W, M, parallel](vector<double>& adjoint,
                                                                                                                     int first) {
        vector<double> gSources(3 * M, 0.0); // d/dx of the MM charges, summed over the ML atoms
        vector<double> dx(3 * size_t(N), 0.0); // d/dx of each ML atom
        sumOverAtoms(parallel, N, gSources.size(), [&](int i, double* out) {
            for (int s = 0; s < numSites; s++)
                for (int w = 0; w < W; w++) {
                    const double g = adjoint[first + (i * numSites + s) * W + w];
                    if (g == 0.0)
                        continue;
                    pairs(i, s, w, [&](size_t m, double, const Vec3& gradient) {
                        for (int a = 0; a < 3; a++) {
                            dx[3 * size_t(i) + a] += g * gradient[a];
                            out[3 * m + a] -= g * gradient[a];
                        }
                    });
                }
        }, gSources.data());
        addToAdjoints(adjoint, xNodes, dx.data(), dx.size());
        addToAdjoints(adjoint, sourceNodes, gSources.data(), gSources.size());
    });
    return asNodes(values, first);
}

/** The potential fieldConstant sum over the other atoms' sites of Q K(d) at site s of atom i (plus the MM charges', from
 *  sourcePotentials, if any), one node: its parents the charges and the atoms' positions. */
V sitePotential(const PolarSpec& P, const PointCharges& pc, const vector<Vec3>& x, const vector<Vec>& xv, int i, int s, double w,
                const V* fromSources) {
    const int N = static_cast<int>(x.size());
    const Vec3 at = x[i] + pc.offsets[s];
    double value = 0.0;
    Vec3 gradientHere;
    tape().begin();
    if (fromSources) {
        value += fromSources->value;
        tape().parent(*fromSources, 1.0);
    }
    for (int j = 0; j < N; j++) {
        if (j == i)
            continue;
        Vec3 gradientThere;
        for (int t = 0; t < pc.perAtom; t++) {
            const Vec3 r = at - (x[j] + pc.offsets[t]);
            const double d = std::sqrt(r.dot(r));
            double dk;
            const double k = P.fieldConstant * kernel(d, w, P.softening, dk);
            const V& q = pc.charges[j][t];
            value += q.value * k;
            tape().parent(q, k);
            const Vec3 g = r * (q.value * P.fieldConstant * dk / d);
            gradientHere += g;
            gradientThere -= g;
        }
        for (int a = 0; a < 3; a++)
            tape().parent(xv[j][a], gradientThere[a]);
    }
    for (int a = 0; a < 3; a++)
        tape().parent(xv[i][a], gradientHere[a]);
    return tape().end(value);
}

/** graph-longrange's GTOElectrostaticFeatures (RealSpaceFiniteDifferenceElectrostaticFeatures, open boundaries): the
 *  potential of one spin channel's multipoles projected on each atom's probes, l = 0 per width, then l = 1 per width
 *  (y, z, x) from finite differences of the potential at the displaced sites; self terms where the model has them. */
vector<Vec> electrostaticFeatures(const PolarSpec& P, const vector<Vec>& multipoles, const vector<Vec3>& x, const vector<Vec>& xv,
                                  const Sources& sources, const ENNParallelFor& parallel) {
    const int N = static_cast<int>(x.size()), numWidths = static_cast<int>(P.fieldWidths.size());
    const bool displaced = P.multipoleLmax == 1 || P.fieldLmax == 1;
    const PointCharges pc = pointCharges(multipoles, P.multipoleLmax, displaced, P.featureOffset);
    const int numSites = P.fieldLmax == 1 ? pc.perAtom : 1; // (the sites the features read)
    const Vec fromSources = sources.size() > 0 ? sourcePotentials(P, pc, numSites, x, xv, sources, parallel) : Vec();
    auto sourceAt = [&](int i, int s, int w) { return fromSources.empty() ? nullptr : &fromSources[(size_t(i) * numSites + s) * numWidths + w]; };
    vector<Vec> features(N, Vec(P.fieldDim(), V(0.0)));
    for (int i = 0; i < N; i++) {
        for (int w = 0; w < numWidths; w++) {
            const double width = P.featureWidthFactors[w];
            const V centre = sitePotential(P, pc, x, xv, i, 0, width, sourceAt(i, 0, w));
            features[i][w] = centre * P.l0Factors[w];
            if (P.fieldLmax == 1) {
                const int siteOfComponent[3] = {2, 3, 1}; // (y, z, x)
                for (int m = 0; m < 3; m++) {
                    const int site = siteOfComponent[m];
                    features[i][numWidths + 3 * w + m] = (sitePotential(P, pc, x, xv, i, site, width, sourceAt(i, site, w)) - centre) * P.l1Factors[w];
                }
            }
        }
        for (const auto& term : P.featureSelfTerms)
            if (P.includeFeatureSelfInteraction)
                features[i][term.feature] += multipoles[i][term.source] * term.value;
    }
    return features;
}

/** graph-longrange's k vectors (compute_k_vectors_flat) in a cell, with each one's integer indices n (k = n . b). */
struct KVectorSet {
    vector<Vec3> k;
    vector<int> n; // n_0, n_1, n_2 of each k vector
    Vec3 b[3];     // the reciprocal vectors, 2 pi inv(box)^T's rows
    int nMax[3] = {0, 0, 0};
    double volume = 0.0;

    /** cos and sin of k . x for every k vector: products of the three exp(i n_a b_a . x), each of which takes one of
     *  3 (2 nMax_a + 1) cosines and sines, instead of a cosine and a sine per k vector (the reciprocal sums' cost).
     *  Round-off: that of two complex products, a few 1e-16. */
    void phases(const Vec3& x, vector<double>& c, vector<double>& s) const {
        vector<double> axis[3][2]; // [a][cos, sin] at n_a + nMax_a
        for (int a = 0; a < 3; a++) {
            const double angle = b[a].dot(x);
            for (int m = -nMax[a]; m <= nMax[a]; m++) {
                axis[a][0].push_back(std::cos(m * angle));
                axis[a][1].push_back(std::sin(m * angle));
            }
        }
        const size_t K = k.size();
        c.resize(K);
        s.resize(K);
        for (size_t i = 0; i < K; i++) {
            const int i0 = n[3 * i] + nMax[0], i1 = n[3 * i + 1] + nMax[1], i2 = n[3 * i + 2] + nMax[2];
            const double c01 = axis[0][0][i0] * axis[1][0][i1] - axis[0][1][i0] * axis[1][1][i1];
            const double s01 = axis[0][1][i0] * axis[1][0][i1] + axis[0][0][i0] * axis[1][1][i1];
            c[i] = c01 * axis[2][0][i2] - s01 * axis[2][1][i2];
            s[i] = s01 * axis[2][0][i2] + c01 * axis[2][1][i2];
        }
    }
};

/** graph-longrange's k vectors in a cell of rows box[0..2]: n . b over its half set of n (n_0 > 0; n_0 = 0, n_1 > 0;
 *  n_0 = n_1 = 0, n_2 > 0; each range as it builds it), |k| <= cutoff; k = 0 is left out (the Coulomb kernel is zero
 *  there). */
std::shared_ptr<const KVectorSet> graphLongrangeKVectors(const Vec3* box, double cutoff) {
    auto set = std::make_shared<KVectorSet>();
    const double volume = set->volume = box[0].dot(box[1].cross(box[2]));
    Vec3* b = set->b;
    b[0] = box[1].cross(box[2]) * (2 * M_PI / volume);
    b[1] = box[2].cross(box[0]) * (2 * M_PI / volume);
    b[2] = box[0].cross(box[1]) * (2 * M_PI / volume);
    // About V k_c^3 / (12 pi^2) vectors in the half set: bounded, so that an exploded box is an error, not gigabytes.
    const double expected = std::abs(volume) * cutoff * cutoff * cutoff / (12 * M_PI * M_PI);
    if (!(expected <= ENNSanityBounds::MaxReciprocalKVectors))
        throw OpenMM::OpenMMException("ENNForce: the periodic box (volume " + shortNumber(std::abs(volume)) + " in the model's length unit "
                                      "cubed) needs about " + shortNumber(expected) + " k vectors in the PolarMACE model's reciprocal sums, "
                                      "more than " + shortNumber(ENNSanityBounds::MaxReciprocalKVectors) + " (an exploded box?)");
    int* nMax = set->nMax;
    for (int i = 0; i < 3; i++)
        nMax[i] = static_cast<int>(std::ceil(cutoff / b[i].dot(box[i] / std::sqrt(box[i].dot(box[i])))));
    auto add = [&](int n0, int n1, int n2) {
        const Vec3 v = b[0] * n0 + b[1] * n1 + b[2] * n2;
        if (v.dot(v) <= cutoff * cutoff) {
            set->k.push_back(v);
            set->n.insert(set->n.end(), {n0, n1, n2});
        }
    };
    for (int n2 = 1; n2 < nMax[2]; n2++)
        add(0, 0, n2);
    for (int n1 = 1; n1 < nMax[1]; n1++)
        for (int n2 = -nMax[2]; n2 < nMax[2]; n2++)
            add(0, n1, n2);
    for (int n0 = 1; n0 < nMax[0]; n0++)
        for (int n1 = -nMax[1]; n1 < nMax[1]; n1++)
            for (int n2 = -nMax[2]; n2 < nMax[2]; n2++)
                add(n0, n1, n2);
    return set;
}

/** A Gaussian basis's Fourier coefficients at k, [width][lm], real and imaginary parts: amplitude |k|^l exp(-sigma^2 k^2
 *  / 2) Y_lm(k / |k|) (-i)^l, Y of (k_y, k_z, k_x) with e3nn's integral normalisation: real for l = 0, imaginary for
 *  l = 1 (which the reciprocal sums use: each entry's other part is zero). */
void basisCoefficients(const GaussianBasisSpec& basis, const Vec3& k, vector<vector<double>>& re, vector<vector<double>>& im) {
    const double k2 = k.dot(k), modulus = std::sqrt(k2);
    const double y0 = 1 / std::sqrt(4 * M_PI), y1 = std::sqrt(3 / (4 * M_PI)) / modulus;
    const double y[4] = {y0, y1 * k[1], y1 * k[2], y1 * k[0]};
    re.assign(basis.sigma2.size(), {});
    im.assign(basis.sigma2.size(), {});
    for (size_t j = 0; j < basis.sigma2.size(); j++) {
        const double radial = std::exp(-0.5 * k2 * basis.sigma2[j]);
        const int lmax = static_cast<int>(basis.amplitudes[j].size()) - 1;
        for (int lm = 0; lm < (lmax + 1) * (lmax + 1); lm++) {
            const int l = lm == 0 ? 0 : 1;
            const double x = basis.amplitudes[j][l] * (l == 1 ? modulus : 1.0) * radial * y[lm];
            re[j].push_back(l == 0 ? x : 0.0);
            im[j].push_back(l == 0 ? 0.0 : -x);
        }
    }
}

/** The reciprocal-space sums of one multipole density (graph-longrange's periodic GTOElectrostaticFeatures and
 *  GTOElectrostaticEnergy): for each k vector, the density rho(k) = (2 pi)^3 / V sum_i q_i . X(k) e^{-i k.x_i} and the
 *  potential 4 pi k_e rho / k^2. */
struct ReciprocalDensity {
    std::shared_ptr<const KVectorSet> set;
    vector<V> re, im; // rho(k)
};

/** rho(k) of multipoles q at x over the k vectors, one tape block whose backward pass recomputes the phases: memory
 *  O(k vectors + atoms), not O(k vectors x atoms) (the MM charges of a large box). re = sum q . (Xr c + Xi s), im = sum
 *  q . (Xi c - Xr s), times (2 pi)^3 / V. */
ReciprocalDensity reciprocalDensity(const PolarSpec& P, const vector<Vec>& q, const vector<Vec3>& x, const vector<Vec>& xv, const Vec3* box,
                                    const ENNParallelFor& parallel) {
    ReciprocalDensity rho;
    rho.set = graphLongrangeKVectors(box, P.kspaceCutoff);
    const int N = static_cast<int>(x.size()), D = P.multipoleDim(), K = static_cast<int>(rho.set->k.size());
    const double scale = std::pow(2 * M_PI, 3) / rho.set->volume;
    auto xr = std::make_shared<vector<double>>(size_t(K) * D), xi = std::make_shared<vector<double>>(size_t(K) * D);
    vector<vector<double>> br, bi;
    for (int n = 0; n < K; n++) {
        basisCoefficients(P.densityBasis, rho.set->k[n], br, bi);
        for (int lm = 0; lm < D; lm++) {
            (*xr)[size_t(n) * D + lm] = scale * br[0][lm];
            (*xi)[size_t(n) * D + lm] = scale * bi[0][lm];
        }
    }
    vector<double> values(2 * K, 0.0), qv(size_t(N) * D);
    vector<int> qNodes(size_t(N) * D), xNodes(size_t(N) * 3);
    bool variable = false;
    for (int i = 0; i < N; i++) {
        for (int lm = 0; lm < D; lm++) {
            qv[size_t(i) * D + lm] = q[i][lm].value;
            qNodes[size_t(i) * D + lm] = q[i][lm].node;
            variable = variable || q[i][lm].node >= 0;
        }
        for (int a = 0; a < 3; a++) {
            xNodes[size_t(i) * 3 + a] = xv[i][a].node;
            variable = variable || xv[i][a].node >= 0;
        }
    }
    // With the charge's coefficient a real and the dipole's b imaginary (basisCoefficients): q . (Xr c + Xi s) =
    // QA c + QB s and q . (Xi c - Xr s) = QB c - QA s, QA = q_0 a_0, QB = sum_{lm >= 1} q_lm b_lm.
    auto charge = [xr, D](const double* qi, int n) { return qi[0] * (*xr)[size_t(n) * D]; };
    auto dipole = [xi, D](const double* qi, int n) {
        double sum = 0.0;
        for (int lm = 1; lm < D; lm++)
            sum += qi[lm] * (*xi)[size_t(n) * D + lm];
        return sum;
    };
    sumOverAtoms(parallel, N, values.size(), [&](int i, double* out) {
        vector<double> c, s;
        rho.set->phases(x[i], c, s);
        const double* qi = &qv[size_t(i) * D];
        for (int n = 0; n < K; n++) {
            const double QA = charge(qi, n), QB = dipole(qi, n);
            out[2 * n] += QA * c[n] + QB * s[n];
            out[2 * n + 1] += QB * c[n] - QA * s[n];
        }
    }, values.data());
    int first = -1;
    if (variable)
        first = tape().block(2 * K, [set = rho.set, x, xr, xi, qv, qNodes, xNodes, N, D, K, parallel, charge, dipole](vector<double>& adjoint,
                                                                                                                      int first) {
            const vector<Vec3>& k = set->k;
            vector<double> gq(size_t(N) * D, 0.0), gx(size_t(N) * 3, 0.0); // each atom's, summed over k in parallel
            parallel(N, [&](int i) {
                vector<double> cs, ss;
                Vec3 dx;
                set->phases(x[i], cs, ss);
                const double* qi = &qv[size_t(i) * D];
                double* g = &gq[size_t(i) * D];
                for (int n = 0; n < K; n++) {
                    const double gr = adjoint[first + 2 * n], gi = adjoint[first + 2 * n + 1];
                    if (gr == 0.0 && gi == 0.0)
                        continue;
                    const double c = cs[n], s = ss[n], QA = charge(qi, n), QB = dipole(qi, n);
                    // d/dq_0 = a_0 (gr c - gi s), d/dq_lm = b_lm (gr s + gi c); the phase's: gr (QB c - QA s) - gi (QA c + QB s)
                    g[0] += (*xr)[size_t(n) * D] * (gr * c - gi * s);
                    const double toDipole = gr * s + gi * c;
                    for (int lm = 1; lm < D; lm++)
                        g[lm] += (*xi)[size_t(n) * D + lm] * toDipole;
                    dx += k[n] * (gr * (QB * c - QA * s) - gi * (QA * c + QB * s));
                }
                for (int a = 0; a < 3; a++)
                    gx[size_t(i) * 3 + a] = dx[a];
            });
            addToAdjoints(adjoint, qNodes, gq.data(), gq.size());
            addToAdjoints(adjoint, xNodes, gx.data(), gx.size());
        });
    for (int n = 0; n < K; n++) {
        rho.re.push_back(first < 0 ? V(values[2 * n]) : V(values[2 * n], first + 2 * n));
        rho.im.push_back(first < 0 ? V(values[2 * n + 1]) : V(values[2 * n + 1], first + 2 * n + 1));
    }
    return rho;
}

/** The MM charges' density rho(k) = (2 pi)^3 / V X_00(k) S(k) from the platform's structure factor S (a tape block whose
 *  backward pass is the structure factor's gradient): the same as reciprocalDensity of monopoles, up to the platform's
 *  approximation. */
ReciprocalDensity sourceDensityOf(const PolarSpec& P, const PolarEnvironment& environment, const vector<Vec>& xv, const Vec3* box) {
    ReciprocalDensity rho;
    rho.set = graphLongrangeKVectors(box, P.kspaceCutoff);
    const int K = static_cast<int>(rho.set->k.size());
    vector<double> sr, si, amplitude(K);
    environment.structureFactor->compute(box, environment.positions, environment.charges, rho.set->k, sr, si);
    vector<vector<double>> br, bi;
    for (int n = 0; n < K; n++) {
        basisCoefficients(P.densityBasis, rho.set->k[n], br, bi); // l = 0: real
        amplitude[n] = std::pow(2 * M_PI, 3) / rho.set->volume * br[0][0];
    }
    vector<int> xNodes;
    for (const Vec& x : xv)
        for (int a = 0; a < 3; a++)
            xNodes.push_back(x[a].node);
    ENNStructureFactor* sum = environment.structureFactor;
    const int first = tape().block(2 * K, [sum, amplitude, xNodes, K](vector<double>& adjoint, int first) {
        vector<double> gRe(K), gIm(K);
        for (int n = 0; n < K; n++) {
            gRe[n] = adjoint[first + 2 * n] * amplitude[n];
            gIm[n] = adjoint[first + 2 * n + 1] * amplitude[n];
        }
        vector<Vec3> gradient;
        sum->gradient(gRe, gIm, gradient);
        for (size_t m = 0; m < gradient.size(); m++)
            for (int a = 0; a < 3; a++)
                if (xNodes[3 * m + a] >= 0)
                    adjoint[xNodes[3 * m + a]] += gradient[m][a];
    });
    for (int n = 0; n < K; n++) {
        rho.re.push_back(V(amplitude[n] * sr[n], first + 2 * n));
        rho.im.push_back(V(amplitude[n] * si[n], first + 2 * n + 1));
    }
    return rho;
}

/** Periodic GTOElectrostaticFeatures: the potential of one channel's density (plus half the MM charges') projected on
 *  each atom's probes, less the Gaussians' own field unless the model includes it; the projection is one tape block
 *  (its backward pass recomputes the phases). */
vector<Vec> reciprocalFeatures(const PolarSpec& P, const vector<Vec>& q, const vector<Vec3>& x, const vector<Vec>& xv, const Vec3* box,
                               const ReciprocalDensity* sources, const ENNParallelFor& parallel) {
    ReciprocalDensity rho = reciprocalDensity(P, q, x, xv, box, parallel);
    for (size_t n = 0; sources && n < rho.set->k.size(); n++) {
        rho.re[n] += sources->re[n] * SourceShareOfEachChannel;
        rho.im[n] += sources->im[n] * SourceShareOfEachChannel;
    }
    const int N = static_cast<int>(x.size()), numWidths = static_cast<int>(P.fieldWidths.size()), perWidth = (P.fieldLmax + 1) * (P.fieldLmax + 1);
    const int K = static_cast<int>(rho.set->k.size()), F = P.fieldDim();
    // per k: the kernel 4 pi k_e / k^2 times 2 / (2 pi)^3, and each feature's basis coefficients (fr, fi)
    auto fr = std::make_shared<vector<double>>(size_t(K) * F), fi = std::make_shared<vector<double>>(size_t(K) * F);
    vector<vector<double>> br, bi;
    const double norm = 2 / std::pow(2 * M_PI, 3);
    for (int n = 0; n < K; n++) {
        basisCoefficients(P.featureBasis, rho.set->k[n], br, bi);
        const double kernel = 4 * M_PI * P.fieldConstant / rho.set->k[n].dot(rho.set->k[n]) * norm;
        for (int w = 0; w < numWidths; w++)
            for (int lm = 0; lm < perWidth; lm++) {
                const int feature = lm == 0 ? w : numWidths + 3 * w + (lm - 1);
                (*fr)[size_t(n) * F + feature] = kernel * br[w][lm];
                (*fi)[size_t(n) * F + feature] = kernel * bi[w][lm];
            }
    }
    // feature = sum_k (A c + B s), A = re fr + im fi, B = re fi - im fr
    vector<double> re(K), im(K), values(size_t(N) * F, 0.0);
    vector<int> rhoNodes(2 * K), xNodes(size_t(N) * 3);
    for (int n = 0; n < K; n++) {
        re[n] = rho.re[n].value;
        im[n] = rho.im[n].value;
        rhoNodes[2 * n] = rho.re[n].node;
        rhoNodes[2 * n + 1] = rho.im[n].node;
    }
    for (int i = 0; i < N; i++)
        for (int a = 0; a < 3; a++)
            xNodes[size_t(i) * 3 + a] = xv[i][a].node;
    // The l = 0 features' coefficients (the first `scalars`) are real and the l = 1 features' imaginary (basisCoefficients):
    // feature f = sum_k a_f (re c - im s) or b_f (re s + im c).
    const int scalars = numWidths;
    parallel(N, [&](int i) {
        vector<double> cs, ss, sum(F, 0.0);
        rho.set->phases(x[i], cs, ss);
        for (int n = 0; n < K; n++) {
            const double c = cs[n], s = ss[n], P = re[n] * c - im[n] * s, Q = re[n] * s + im[n] * c;
            const double* a = &(*fr)[size_t(n) * F];
            const double* b = &(*fi)[size_t(n) * F];
            for (int f = 0; f < scalars; f++)
                sum[f] += a[f] * P;
            for (int f = scalars; f < F; f++)
                sum[f] += b[f] * Q;
        }
        std::copy(sum.begin(), sum.end(), &values[size_t(i) * F]);
    });
    const int first = tape().block(N * F, [set = rho.set, x, fr, fi, re, im, rhoNodes, xNodes, N, F, K, scalars, parallel](vector<double>& adjoint,
                                                                                                                          int first) {
        const vector<Vec3>& k = set->k;
        vector<double> gRho(2 * size_t(K), 0.0); // d/d(re, im) of rho, summed over the atoms
        vector<double> dx(3 * size_t(N), 0.0);    // d/dx of each atom
        sumOverAtoms(parallel, N, gRho.size(), [&](int i, double* out) {
            vector<double> cs, ss;
            set->phases(x[i], cs, ss);
            const vector<double> g(adjoint.begin() + first + i * F, adjoint.begin() + first + (i + 1) * F);
            for (int n = 0; n < K; n++) {
                const double c = cs[n], s = ss[n];
                const double* a = &(*fr)[size_t(n) * F];
                const double* b = &(*fi)[size_t(n) * F];
                double GA = 0.0, GB = 0.0; // sum_f g_f a_f over the l = 0 features, g_f b_f over the l = 1 ones
                for (int f = 0; f < scalars; f++)
                    GA += g[f] * a[f];
                for (int f = scalars; f < F; f++)
                    GB += g[f] * b[f];
                out[2 * n] += GA * c + GB * s;
                out[2 * n + 1] += GB * c - GA * s;
                const double dPhase = re[n] * (GB * c - GA * s) - im[n] * (GA * c + GB * s);
                for (int a = 0; a < 3; a++)
                    dx[3 * size_t(i) + a] += k[n][a] * dPhase;
            }
        }, gRho.data());
        addToAdjoints(adjoint, xNodes, dx.data(), dx.size());
        addToAdjoints(adjoint, rhoNodes, gRho.data(), gRho.size());
    });
    vector<Vec> features(N, Vec(F));
    for (int i = 0; i < N; i++)
        for (int f = 0; f < F; f++)
            features[i][f] = V(values[size_t(i) * F + f], first + i * F + f);
    for (int i = 0; i < N; i++)
        for (const auto& term : P.featureSelfTerms)
            if (!P.includeFeatureSelfInteraction)
                features[i][term.feature] -= q[i][term.source] * term.value;
    return features;
}

/** Periodic GTOElectrostaticEnergy: V / (2 pi)^6 sum_k 4 pi k_e |rho(k)|^2 / k^2 over the half set, less the Gaussians'
 *  self energies unless the model includes them. */
V reciprocalEnergy(const PolarSpec& P, const vector<Vec>& q, const vector<Vec3>& x, const vector<Vec>& xv, const Vec3* box,
                   const ReciprocalDensity* sources, const ENNParallelFor& parallel) {
    const ReciprocalDensity rho = reciprocalDensity(P, q, x, xv, box, parallel);
    double value = 0.0;
    tape().begin();
    const vector<Vec3>& k = rho.set->k;
    for (size_t n = 0; n < k.size(); n++) {
        const double factor = rho.set->volume / std::pow(2 * M_PI, 6) * 4 * M_PI * P.fieldConstant / k[n].dot(k[n]);
        value += factor * (rho.re[n].value * rho.re[n].value + rho.im[n].value * rho.im[n].value);
        tape().parent(rho.re[n], 2 * factor * rho.re[n].value);
        tape().parent(rho.im[n], 2 * factor * rho.im[n].value);
        if (sources) { // the cross energy E(ML + MM) - E(ML) - E(MM): 2 factor Re(rho_ML conj(rho_MM))
            const V& sr = sources->re[n];
            const V& si = sources->im[n];
            value += 2 * factor * (rho.re[n].value * sr.value + rho.im[n].value * si.value);
            tape().parent(rho.re[n], 2 * factor * sr.value);
            tape().parent(rho.im[n], 2 * factor * si.value);
            tape().parent(sr, 2 * factor * rho.re[n].value);
            tape().parent(si, 2 * factor * rho.im[n].value);
        }
    }
    V energy = tape().end(value);
    if (!P.includeEnergySelfInteraction)
        for (const Vec& qi : q)
            for (const auto& term : P.energySelfTerms)
                energy -= qi[term.feature] * qi[term.source] * (0.5 * term.value);
    return energy;
}

/** graph-longrange's GTOElectrostaticEnergy (RealSpaceFiniteDiffereneEnergy, open boundaries): the pair energy of the
 *  point charges of different atoms, and self terms where the model has them. */
V electrostaticEnergy(const PolarSpec& P, const vector<Vec>& multipoles, const vector<Vec3>& x, const vector<Vec>& xv, const Sources& sources,
                      const ENNParallelFor& parallel) {
    const int N = static_cast<int>(x.size());
    const PointCharges pc = pointCharges(multipoles, P.multipoleLmax, P.multipoleLmax == 1, P.energyOffset);
    double value = 0.0;
    vector<vector<double>> dq(N, vector<double>(pc.perAtom, 0.0));
    vector<Vec3> dx(N), dxSources(sources.size());
    // E(ML + MM) - E(ML) - E(MM): each ML site with each MM charge (graph-longrange's external-source cross energy);
    // cross[0] the energy, cross[1 + 3 m + a] d/dx_m,a, summed over the ML atoms
    vector<double> cross(1 + 3 * sources.size(), 0.0);
    sumOverAtoms(parallel, sources.size() > 0 ? N : 0, cross.size(), [&](int i, double* out) {
        for (int s = 0; s < pc.perAtom; s++)
            for (size_t m = 0; m < sources.size(); m++) {
                const Vec3 r = (x[i] + pc.offsets[s]) - (*sources.x)[m];
                const double d = std::sqrt(r.dot(r));
                double dk;
                const double k = P.fieldConstant * kernel(d, P.multipoleSigma, P.softening, dk);
                const double qi = pc.charges[i][s].value, qm = (*sources.charges)[m];
                out[0] += qi * qm * k;
                dq[i][s] += qm * k; // (each atom's own)
                const Vec3 g = r * (qi * qm * P.fieldConstant * dk / d);
                dx[i] += g;
                for (int a = 0; a < 3; a++)
                    out[1 + 3 * m + a] -= g[a];
            }
    }, cross.data());
    value += cross[0];
    for (size_t m = 0; m < sources.size(); m++)
        dxSources[m] = Vec3(cross[1 + 3 * m], cross[2 + 3 * m], cross[3 + 3 * m]);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            for (int s = 0; s < pc.perAtom; s++)
                for (int t = 0; t < pc.perAtom; t++) {
                    const Vec3 r = (x[i] + pc.offsets[s]) - (x[j] + pc.offsets[t]);
                    const double d = std::sqrt(r.dot(r));
                    double dk;
                    const double k = P.fieldConstant * kernel(d, P.multipoleSigma, P.softening, dk);
                    const double qi = pc.charges[i][s].value, qj = pc.charges[j][t].value;
                    value += qi * qj * k;
                    dq[i][s] += qj * k;
                    dq[j][t] += qi * k;
                    const Vec3 g = r * (qi * qj * P.fieldConstant * dk / d);
                    dx[i] += g;
                    dx[j] -= g;
                }
    tape().begin();
    for (int i = 0; i < N; i++) {
        for (int s = 0; s < pc.perAtom; s++)
            tape().parent(pc.charges[i][s], dq[i][s]);
        for (int a = 0; a < 3; a++)
            tape().parent(xv[i][a], dx[i][a]);
    }
    for (size_t m = 0; m < sources.size(); m++)
        for (int a = 0; a < 3; a++)
            tape().parent((*sources.xv)[m][a], dxSources[m][a]);
    V energy = tape().end(value);
    for (int i = 0; i < N && P.includeEnergySelfInteraction; i++)
        for (const auto& term : P.energySelfTerms)
            energy += multipoles[i][term.feature] * multipoles[i][term.source] * (0.5 * term.value);
    return energy;
}

/** PolarMACE's Fukui step: channel c of each atom's charge moves by f_c / sum f_c times what the channel's total lacks
 *  (a zero sum of weights counts as one, as PolarMACE has it). */
void applyFukui(vector<Vec>& spins, const vector<Vec>& weights, const double target[2], int D) {
    const int N = static_cast<int>(spins.size());
    for (int c = 0; c < 2; c++) {
        Vec f(N), q(N);
        for (int n = 0; n < N; n++) {
            f[n] = weights[n][c];
            q[n] = spins[n][c * D];
        }
        V norm = sum(f);
        if (norm.value == 0.0)
            norm = V(1.0);
        const V missing = V(target[c]) - sum(q);
        for (int n = 0; n < N; n++)
            spins[n][c * D] += f[n] / norm * missing;
    }
}

} // namespace

ENNPolarHead::ENNPolarHead(std::shared_ptr<const ENNModel> modelPtr) : model(std::move(modelPtr)) {
    if (!model->hasPolarHead)
        throw OpenMM::OpenMMException("ENNForce: the model has no polar head");
}

double ENNPolarHead::compute(const vector<int>& species, const vector<Vec3>& x, const vector<const vector<double>*>& layerOutputs,
                                      const Vec3* box, const PolarEnvironment* environment, double totalCharge, int multiplicity,
                                      const Vec3& externalField, vector<vector<double>>* layerGradients, vector<Vec3>* positionGradient,
                                      vector<Vec3>* environmentGradient, vector<double>* multipolesOut) const {
    const ENNModel& m = *model;
    const PolarSpec& P = m.polar;
    const int N = static_cast<int>(species.size()), T = static_cast<int>(m.layers.size()), D = P.multipoleDim();
    const int dim = m.layers.back().productLinear.out.dim;
    ENNTape headTape(true);
    ENNTape::Recording recording(headTape);
    // ---- inputs: every layer's features and the positions ----
    vector<vector<Vec>> h(T, vector<Vec>(N, Vec(dim)));
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++)
            for (int k = 0; k < dim; k++)
                h[t][n][k] = headTape.input((*layerOutputs[t])[size_t(n) * dim + k]);
    vector<Vec> xv(N, Vec(3));
    for (int n = 0; n < N; n++)
        for (int a = 0; a < 3; a++)
            xv[n][a] = headTape.input(x[n][a]);
    // ---- the environment's charges: their positions are inputs too; in a cell their density is summed once ----
    const size_t M = environment ? environment->positions.size() : 0;
    vector<Vec> sourceXv(M, Vec(3));
    for (size_t m = 0; m < M; m++)
        for (int a = 0; a < 3; a++)
            sourceXv[m][a] = headTape.input(environment->positions[m][a]);
    Sources sources;
    std::unique_ptr<ReciprocalDensity> sourceDensity;
    if (M > 0) {
        sources = Sources{&environment->positions, &sourceXv, &environment->charges};
        if (box && environment->structureFactor)
            sourceDensity = std::make_unique<ReciprocalDensity>(sourceDensityOf(P, *environment, sourceXv, box));
        else if (box) {
            vector<Vec> monopoles(M, Vec(D, V(0.0)));
            for (size_t m = 0; m < M; m++)
                monopoles[m][0] = V(environment->charges[m]);
            sourceDensity = std::make_unique<ReciprocalDensity>(reciprocalDensity(P, monopoles, environment->positions, sourceXv, box, parallel));
        }
    }

    // ---- per atom: EnvironmentDependentSpinSourceBlock of every layer, summed; MultiLayerFeatureMixer; the Fukui
    // weights of the last layer's features ----
    vector<Vec> layerFeatures(N); // atom n: h[0][n], ..., h[T - 1][n]
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++)
            layerFeatures[n].insert(layerFeatures[n].end(), h[t][n].begin(), h[t][n].end());
    const vector<Vec> initial = perAtom(parallel, layerFeatures, [&](int, const Vec& in) {
        Vec spins(2 * D, V(0.0)), mixed(dim, V(0.0));
        for (int t = 0; t < T; t++) {
            const Vec source = linear(P.spinSources[t], &in[size_t(t) * dim]), mix = linear(P.featureMixer[t], &in[size_t(t) * dim]);
            for (int k = 0; k < 2 * D; k++)
                spins[k] += source[k];
            for (int k = 0; k < dim; k++)
                mixed[k] += mix[k];
        }
        const Vec weights = biasedReadout(P.fukui, &in[size_t(T - 1) * dim]);
        spins.insert(spins.end(), mixed.begin(), mixed.end());
        spins.insert(spins.end(), weights.begin(), weights.end());
        return spins;
    });
    vector<Vec> spins(N), mixed(N), weights(N);
    for (int n = 0; n < N; n++) {
        spins[n].assign(initial[n].begin(), initial[n].begin() + 2 * D);
        mixed[n].assign(initial[n].begin() + 2 * D, initial[n].begin() + 2 * D + dim);
        weights[n].assign(initial[n].begin() + 2 * D + dim, initial[n].end());
    }
    // ---- the channels' totals (Q +- (2S+1 - 1)) / 2 ----
    const double target[2] = {(totalCharge + (multiplicity - 1)) / 2, (totalCharge - (multiplicity - 1)) / 2};
    applyFukui(spins, weights, target, D);
    const vector<Vec> initialSpins = spins;

    // ---- a uniform external field (DisplacedGTOExternalFieldBlock): the potential F . (x - mean x) at each atom and the
    // field F itself, projected on the probes; half in each spin channel's features ----
    const int F = P.fieldDim();
    const bool applied = externalField != Vec3();
    vector<Vec> external(applied ? N : 0, Vec(F, V(0.0)));
    if (applied) {
        Vec mean(3, V(0.0));
        for (int n = 0; n < N; n++)
            for (int a = 0; a < 3; a++)
                mean[a] += xv[n][a] / double(N);
        for (int n = 0; n < N; n++) {
            V potential(0.0);
            for (int a = 0; a < 3; a++)
                potential += (xv[n][a] - mean[a]) * externalField[a];
            for (int k = 0; k < F; k++) {
                const std::array<double, 4>& c = P.externalFieldProjection[k];
                external[n][k] = (potential * c[0] + (c[1] * externalField[0] + c[2] * externalField[1] + c[3] * externalField[2])) * 0.5;
            }
        }
    }

    // ---- AgnosticEmbeddedOneBodyVariableUpdate steps ----
    vector<Vec> potentials(N, Vec(2 * F));
    for (const FieldUpdateSpec& u : P.fieldUpdates) {
        for (int c = 0; c < 2; c++) {
            vector<Vec> channel(N);
            for (int n = 0; n < N; n++)
                channel[n] = Vec(spins[n].begin() + c * D, spins[n].begin() + (c + 1) * D);
            const vector<Vec> features = box ? reciprocalFeatures(P, channel, x, xv, box, sourceDensity.get(), parallel)
                                             : electrostaticFeatures(P, channel, x, xv, sources, parallel);
            for (int n = 0; n < N; n++)
                for (int k = 0; k < F; k++)
                    potentials[n][c * F + k] = (applied ? features[n][k] + external[n][k] : features[n][k]) / V(P.fieldNorms[k]);
        }
        vector<Vec> stepInputs(N); // atom n: its potentials (2F), mixed features (dim), spin multipoles (2D)
        for (int n = 0; n < N; n++) {
            stepInputs[n] = potentials[n];
            stepInputs[n].insert(stepInputs[n].end(), mixed[n].begin(), mixed[n].end());
            stepInputs[n].insert(stepInputs[n].end(), spins[n].begin(), spins[n].end());
        }
        const vector<Vec> updates = perAtom(parallel, stepInputs, [&](int n, const Vec& in) {
            const V *atomPotentials = &in[0], *atomMixed = &in[2 * F], *atomSpins = &in[2 * F + dim];
            const Vec a = linear(u.potentialLinear, atomPotentials), b = linear(u.nodeFeatsLinear, atomMixed);
            const Vec c = linear(u.chargeEmbedding, atomSpins);
            Vec embedded(dim);
            for (int k = 0; k < dim; k++)
                embedded[k] = a[k] + b[k] + c[k];
            Vec invariants = channelProduct(u.dotProducts, atomMixed, embedded.data());
            Vec oneHot(m.numElements(), V(0.0));
            oneHot[species[n]] = V(1.0);
            const Vec source = linear(u.sourceEmbedding, oneHot.data());
            invariants.insert(invariants.end(), source.begin(), source.end());
            const Vec scalars = mlp(u.nonlinearity, invariants);
            const Vec updated = channelProduct(u.tpOut, atomMixed, scalars.data());
            return biasedReadout(u.readout, updated.data()); // the spin multipoles' changes (2D), then Fukui weights
        });
        for (int n = 0; n < N; n++) {
            for (int k = 0; k < 2 * D; k++)
                spins[n][k] += updates[n][k];
            weights[n] = Vec(updates[n].begin() + 2 * D, updates[n].end());
        }
        applyFukui(spins, weights, target, D);
    }

    // ---- OneBodyMLPFieldReadout: the local electron energy ----
    V energy(0.0);
    if (P.hasElectronEnergy) {
        const ElectronEnergySpec& e = P.electronEnergy;
        vector<Vec> readoutInputs(N); // atom n: spins + initial spins (2D), potentials (2F), last layer's features (dim)
        for (int n = 0; n < N; n++) {
            for (int k = 0; k < 2 * D; k++)
                readoutInputs[n].push_back(spins[n][k] + initialSpins[n][k]);
            readoutInputs[n].insert(readoutInputs[n].end(), potentials[n].begin(), potentials[n].end());
            readoutInputs[n].insert(readoutInputs[n].end(), h[T - 1][n].begin(), h[T - 1][n].end());
        }
        const vector<Vec> perAtomEnergy = perAtom(parallel, readoutInputs, [&](int, const Vec& in) {
            const V *q = &in[0], *atomPotentials = &in[2 * D], *features = &in[2 * D + 2 * F];
            const Vec qUp = linear(e.linearUpQ, q), vUp = linear(e.linearUpV, atomPotentials);
            Vec invariants = channelProduct(e.dotQ, features, qUp.data());
            const Vec vInvariants = channelProduct(e.dotV, features, vUp.data());
            invariants.insert(invariants.end(), vInvariants.begin(), vInvariants.end());
            return Vec{mlp(e.mlp, invariants)[0]};
        });
        Vec energies(N);
        for (int n = 0; n < N; n++)
            energies[n] = perAtomEnergy[n][0];
        energy += sum(energies);
    }
    // ---- the Coulomb energy of the multipoles (alpha + beta) ----
    vector<Vec> multipoles(N, Vec(D));
    for (int n = 0; n < N; n++)
        for (int k = 0; k < D; k++)
            multipoles[n][k] = spins[n][k] + spins[n][D + k];
    energy += box ? reciprocalEnergy(P, multipoles, x, xv, box, sourceDensity.get(), parallel) : electrostaticEnergy(P, multipoles, x, xv, sources, parallel);
    // ---- the external field's energy: F . (the region's dipole, sum_n q_n x_n + p_n, p in (y, z, x) order) ----
    for (int n = 0; n < N && applied; n++)
        for (int a = 0; a < 3; a++) {
            const int dipoleEntry[3] = {3, 1, 2}; // (x, y, z) among (q, p_y, p_z, p_x)
            V term = multipoles[n][0] * xv[n][a];
            if (P.multipoleLmax >= 1)
                term += multipoles[n][dipoleEntry[a]];
            energy += term * externalField[a];
        }
    if (multipolesOut) {
        multipolesOut->resize(size_t(N) * D);
        for (int n = 0; n < N; n++)
            for (int k = 0; k < D; k++)
                (*multipolesOut)[size_t(n) * D + k] = multipoles[n][k].value;
    }
    if (layerGradients || positionGradient) {
        const vector<double> adjoint = headTape.gradient(energy);
        if (layerGradients) {
            layerGradients->assign(T, vector<double>(size_t(N) * dim, 0.0));
            for (int t = 0; t < T; t++)
                for (int n = 0; n < N; n++)
                    for (int k = 0; k < dim; k++)
                        (*layerGradients)[t][size_t(n) * dim + k] = adjoint[h[t][n][k].node];
        }
        if (positionGradient) {
            positionGradient->assign(N, Vec3());
            for (int n = 0; n < N; n++)
                for (int a = 0; a < 3; a++)
                    (*positionGradient)[n][a] = adjoint[xv[n][a].node];
        }
        if (environmentGradient) {
            environmentGradient->assign(M, Vec3());
            for (size_t m = 0; m < M; m++)
                for (int a = 0; a < 3; a++)
                    (*environmentGradient)[m][a] = adjoint[sourceXv[m][a].node];
        }
    }
    return energy.value;
}

ENNPolarEvaluation::ENNPolarEvaluation(const ENNForce& force) : head(force.getModelPtr()) {
    // E (kJ/mol/nm/e) to the model's units, negated: mace's external_field is the potential's gradient, -E
    const ENNModel& m = force.getModel();
    externalField = force.getExternalField() * (-m.lengthToNm / m.energyToKJPerMol);
    for (int i = 0; i < force.getNumMMParticles(); i++) {
        int particle;
        double charge;
        force.getMMParticleParameters(i, particle, charge);
        mmParticles.push_back(particle);
        mmCharges.push_back(charge);
    }
}

void ENNPolarEvaluation::update(const ENNForce& force) {
    ENNPolarEvaluation fresh(force);
    if (fresh.mmParticles != mmParticles)
        throw OpenMM::OpenMMException("ENNForce: updateParametersInContext cannot change which particles are MM charges");
    mmCharges = fresh.mmCharges;
    externalField = fresh.externalField;
}

LayerFeatureHead ENNPolarEvaluation::at(const vector<Vec3>& positions, const Vec3* box, const ENNParticles& ml) {
    return [this, &positions, box, &ml](const vector<const vector<double>*>& outputs, vector<vector<double>>* gradients) {
        const ENNModel& m = head.getModel();
        const double toModel = 1.0 / m.lengthToNm;
        vector<Vec3> local;
        ml.gather(positions, toModel, local);
        Vec3 cell[3];
        for (int k = 0; k < 3 && box; k++)
            cell[k] = box[k] * toModel;
        PolarEnvironment environment;
        environment.structureFactor = structureFactor.get();
        for (size_t i = 0; i < mmParticles.size(); i++) {
            const Vec3& p = positions[mmParticles[i]];
            if (!std::isfinite(p[0]) || !std::isfinite(p[1]) || !std::isfinite(p[2]))
                throw OpenMM::OpenMMException("ENNForce: MM particle " + std::to_string(mmParticles[i]) + " has a non-finite position");
            environment.positions.push_back(p * toModel);
            environment.charges.push_back(mmCharges[i]);
        }
        gradient.clear();
        environmentGradient.clear();
        const double energy = head.compute(ml.species, local, outputs, box ? cell : nullptr, coupled() ? &environment : nullptr,
                                           ml.chargeGroups.total(), ml.spinMultiplicity, externalField, gradients, gradients ? &gradient : nullptr,
                                           gradients ? &environmentGradient : nullptr, &multipoles);
        ml.checkCharges(charges());
        return energy;
    };
}

void ENNPolarEvaluation::addEnvironmentForces(vector<Vec3>& forces) const {
    const ENNModel& m = head.getModel();
    for (size_t i = 0; i < environmentGradient.size(); i++)
        forces[mmParticles[i]] -= environmentGradient[i] * (m.energyToKJPerMol / m.lengthToNm);
}

vector<Vec3> ENNPolarEvaluation::dipoles() const {
    const ENNModel& m = head.getModel();
    const size_t perAtom = m.polar.multipoleDim();
    vector<Vec3> out;
    for (size_t i = 0; perAtom == 4 && i * perAtom < multipoles.size(); i++) {
        const double* p = &multipoles[i * perAtom + 1];
        out.push_back(Vec3(p[2], p[0], p[1]) * m.lengthToNm);
    }
    return out;
}

vector<double> ENNPolarEvaluation::charges() const {
    const size_t perAtom = head.getModel().polar.multipoleDim(); // each atom's charge, then any dipole
    vector<double> out;
    for (size_t i = 0; i * perAtom < multipoles.size(); i++)
        out.push_back(multipoles[i * perAtom]);
    return out;
}
