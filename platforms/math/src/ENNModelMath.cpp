#include "ENNModelMath.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::vector;

double OpenMMENN::activation(const ActivationSpec& act, double x, double* derivative) {
    if (act.kind == ActivationSpec::Sigmoid) {
        const double s = 1.0 / (1.0 + std::exp(-x));
        if (derivative)
            *derivative = act.scale * s * (1.0 - s);
        return act.scale * s;
    }
    if (act.kind == ActivationSpec::SiLU) {
        double s = 1.0 / (1.0 + std::exp(-x));
        if (derivative)
            *derivative = act.scale * s * (1.0 + x * (1.0 - s));
        return act.scale * x * s;
    }
    double t = std::tanh(x);
    if (derivative)
        *derivative = act.scale * (1.0 - t * t);
    return act.scale * t;
}

double OpenMMENN::polynomialEnvelope(int pInt, double rc, double r, double& derivative) {
    if (r >= rc) {
        derivative = 0.0;
        return 0.0;
    }
    const double p = pInt, x = r / rc;
    const double xp = std::pow(x, p);
    derivative = (-(p + 1) * (p + 2) / 2 * p * xp / x + p * (p + 2) * (p + 1) * xp - p * (p + 1) / 2 * (p + 2) * xp * x) / rc;
    return 1.0 - (p + 1) * (p + 2) / 2 * xp + p * (p + 2) * xp * x - p * (p + 1) / 2 * xp * x * x;
}

double OpenMMENN::transformedDistance(const ENNModel& m, int elementA, int elementB, double r, double& dydr) {
    const DistanceTransformSpec& t = m.distanceTransform;
    if (t.kind == DistanceTransformSpec::None) {
        dydr = 1.0;
        return r;
    }
    if (t.kind == DistanceTransformSpec::Soft) { // y = p0 + (r - p0) s, s = (1 + tanh(k (r - m))) / 2
        const double r0 = t.covalentRadii[elementA] + t.covalentRadii[elementB], p0 = 0.75 * r0, p1 = r0 * 4.0 / 3.0;
        const double k = t.alpha / (p1 - p0), h = std::tanh(k * (r - 0.5 * (p0 + p1))), s = 0.5 * (1.0 + h);
        dydr = s + (r - p0) * 0.5 * k * (1.0 - h * h);
        return p0 + (r - p0) * s;
    }
    // Agnesi: y = 1 / (1 + f), f = a x^q / (1 + x^(q-p)), x = r / r0; df/dx = a x^(q-1) (q + p x^(q-p)) / (1 + x^(q-p))^2.
    const double r0 = 0.5 * (t.covalentRadii[elementA] + t.covalentRadii[elementB]), x = r / r0;
    const double xq = std::pow(x, t.q), v = std::pow(x, t.q - t.p);
    const double f = t.a * xq / (1.0 + v), y = 1.0 / (1.0 + f);
    const double dfdx = t.a * (xq / x) * (t.q + t.p * v) / ((1.0 + v) * (1.0 + v));
    dydr = -y * y * dfdx / r0;
    return y;
}

void OpenMMENN::radialBasis(const ENNModel& m, int elementA, int elementB, double r, double* b, double* db) {
    double denv = 0.0, dydr;
    const double env = m.applyCutoff ? polynomialEnvelope(m.envelopeP, m.rMax, r, denv) : 1.0;
    const double y = transformedDistance(m, elementA, elementB, r, dydr);
    for (size_t n = 0; n < m.besselFrequencies.size(); n++) {
        const double w = m.besselFrequencies[n];
        const double s = std::sin(w * y), c = std::cos(w * y);
        const double bessel = m.besselPrefactor * s / y;
        const double dbessel = m.besselPrefactor * (w * c * y - s) / (y * y) * dydr;
        b[n] = bessel * env;
        db[n] = dbessel * env + bessel * denv;
    }
}

int OpenMMENN::numRadialOutputs(const LayerSpec& layer) {
    return layer.conv.numWeights + (layer.densityNormalized ? 1 : 0);
}

bool OpenMMENN::radialDependsOnElements(const ENNModel& model) {
    if (model.distanceTransform.kind != DistanceTransformSpec::None)
        return true;
    for (const LayerSpec& layer : model.layers)
        if (layer.hasEdgeEmbeddings())
            return true;
    return false;
}

namespace {

/** One radial MLP (RadialMLPSpec) in forward mode: the values t and their r-derivatives dt go in, and come out. Where
 *  the inputs are only the leading ones of the first layer, `firstLayerConstant` is the rest's contribution to it. */
void radialMLPForward(const RadialMLPSpec& mlp, vector<double>& t, vector<double>& dt, const vector<double>* firstLayerConstant = nullptr) {
    const int layers = static_cast<int>(mlp.weights.size());
    for (int k = 0; k < layers; k++) {
        const int nin = k == 0 ? static_cast<int>(t.size()) : mlp.sizes[k], nout = mlp.sizes[k + 1];
        vector<double> pre(nout, 0.0), dpre(nout, 0.0);
        if (k == 0 && firstLayerConstant)
            pre = *firstLayerConstant;
        for (int i = 0; i < nin; i++)
            for (int j = 0; j < nout; j++) {
                pre[j] += t[i] * mlp.weights[k][i * nout + j];
                dpre[j] += dt[i] * mlp.weights[k][i * nout + j];
            }
        for (int j = 0; j < nout; j++) {
            pre[j] = pre[j] * mlp.weightScales[k] + (mlp.biases.empty() ? 0.0 : mlp.biases[k][j]);
            dpre[j] *= mlp.weightScales[k];
        }
        if (k + 1 < layers && !mlp.layerNorms.empty()) { // y = (x - mean) / sqrt(var + eps) * weight + bias
            const RadialMLPSpec::LayerNorm& norm = mlp.layerNorms[k];
            double mean = 0.0, dmean = 0.0;
            for (int j = 0; j < nout; j++) {
                mean += pre[j];
                dmean += dpre[j];
            }
            mean /= nout;
            dmean /= nout;
            double var = 0.0, dvar = 0.0;
            for (int j = 0; j < nout; j++) {
                var += (pre[j] - mean) * (pre[j] - mean);
                dvar += 2.0 * (pre[j] - mean) * (dpre[j] - dmean);
            }
            var /= nout;
            dvar /= nout;
            const double inv = 1.0 / std::sqrt(var + norm.eps), dinv = -0.5 * inv * inv * inv * dvar;
            for (int j = 0; j < nout; j++) {
                const double centred = pre[j] - mean, dcentred = dpre[j] - dmean;
                pre[j] = centred * inv * norm.weight[j] + norm.bias[j];
                dpre[j] = (dcentred * inv + centred * dinv) * norm.weight[j];
            }
        }
        t.resize(nout);
        dt.resize(nout);
        for (int j = 0; j < nout; j++) {
            if (k + 1 < layers) {
                double derivative;
                t[j] = activation(mlp.activation, pre[j], &derivative);
                dt[j] = derivative * dpre[j];
            } else {
                t[j] = pre[j];
                dt[j] = dpre[j];
            }
        }
    }
}

} // namespace

vector<double> OpenMMENN::elementRow(const LinearSpec& linear, int element) {
    vector<double> row(linear.out.dim, 0.0);
    forEachLinearTerm(linear, 0, [&](int i, int o, double c) {
        if (i == element)
            row[o] += c;
    });
    return row;
}

GateLayout GateLayout::e3nn(const GateSpec& gate) {
    GateLayout layout;
    int out = gate.scalarCount;
    for (const GateSpec::Gated& e : gate.gated) {
        layout.entries.push_back({e.start, e.dim, 1, out, e.dim, 1});
        out += e.mul * e.dim;
    }
    return layout;
}

RadialPairConstants OpenMMENN::radialPairConstants(const ENNModel& model, int layer, int sender, int receiver) {
    const LayerSpec& L = model.layers[layer];
    RadialPairConstants pair;
    if (!L.hasEdgeEmbeddings())
        return pair;
    // The sender's and the receiver's element embeddings, the first layer's inputs after the basis.
    vector<double> embeddings = elementRow(L.nonlinearBlock.sourceEmbedding, sender);
    const vector<double> target = elementRow(L.nonlinearBlock.targetEmbedding, receiver);
    embeddings.insert(embeddings.end(), target.begin(), target.end());
    const int nb = static_cast<int>(model.besselFrequencies.size());
    auto firstLayer = [&](const RadialMLPSpec& mlp, vector<double>& out) {
        const int nout = mlp.sizes[1];
        out.assign(nout, 0.0);
        for (size_t i = 0; i < embeddings.size(); i++)
            for (int j = 0; j < nout; j++)
                out[j] += embeddings[i] * mlp.weights[0][(nb + i) * nout + j]; // (before the weight scale, as the sum)
    };
    firstLayer(L.radial, pair.radial);
    if (L.densityNormalized)
        firstLayer(L.density.mlp, pair.density);
    return pair;
}

void OpenMMENN::radialWeights(const ENNModel& model, int layer, int sender, int receiver, double r, vector<double>& w,
                              vector<double>& dwdr) {
    radialWeights(model, layer, sender, receiver, r, radialPairConstants(model, layer, sender, receiver), w, dwdr);
}

void OpenMMENN::radialWeights(const ENNModel& model, int layer, int sender, int receiver, double r, const RadialPairConstants& pair,
                              vector<double>& w, vector<double>& dwdr) {
    // Forward-mode derivative through the MLPs: the tangent of every layer rides along with its value. The inputs are
    // the basis, then (edge embeddings) constants of the pair, whose part of the first layer the pair's constants hold.
    const LayerSpec& L = model.layers[layer];
    const int nb = static_cast<int>(model.besselFrequencies.size());
    vector<double> input(nb), dinput(nb);
    radialBasis(model, sender, receiver, r, input.data(), dinput.data());
    const bool embedded = L.hasEdgeEmbeddings();
    w = input;
    dwdr = dinput;
    radialMLPForward(L.radial, w, dwdr, embedded ? &pair.radial : nullptr);
    if (L.densityNormalized) { // tanh(s^2), s the density network's output
        vector<double> s(input), ds(dinput);
        radialMLPForward(L.density.mlp, s, ds, embedded ? &pair.density : nullptr);
        const double density = std::tanh(s[0] * s[0]);
        w.push_back(density);
        dwdr.push_back((1.0 - density * density) * 2.0 * s[0] * ds[0]);
    }
    if (!model.applyCutoff) { // MACE's apply_cutoff=False: the envelope multiplies the outputs
        double denv;
        const double env = polynomialEnvelope(model.envelopeP, model.rMax, r, denv);
        for (size_t k = 0; k < w.size(); k++) {
            dwdr[k] = dwdr[k] * env + w[k] * denv;
            w[k] *= env;
        }
    }
}

InitialNodeFeatures OpenMMENN::initialNodeFeatures(const ENNModel& m, double totalCharge, int spinMultiplicity) {
    const int nel = m.numElements(), dim = m.embedding.out.dim;
    InitialNodeFeatures result;
    result.energy.assign(nel, 0.0);
    for (int z = 0; z < nel; z++)
        result.features.push_back(elementRow(m.embedding, z));
    if (!m.hasJointEmbedding)
        return result;
    const JointEmbeddingSpec& je = m.jointEmbedding;
    vector<double> concatenated;
    for (const JointEmbeddingSpec::Input& in : je.inputs) {
        const bool charge = in.source == JointEmbeddingSpec::Input::TotalCharge;
        const double value = charge ? totalCharge : spinMultiplicity;
        const std::string what = charge ? "total charge" : "spin multiplicity";
        if (std::abs(value - std::round(value)) > 1e-6)
            throw OpenMM::OpenMMException("ENNForce: the model embeds the " + what + " as a class (MACE's categorical embedding), so it "
                                          "must be a whole number; it is " + std::to_string(value));
        const long long index = std::llround(value) + in.offset;
        if (index < 0 || index >= in.numClasses)
            throw OpenMM::OpenMMException("ENNForce: the " + what + " " + std::to_string(std::llround(value)) + " is outside the model's range (" +
                                          std::to_string(-in.offset) + " to " + std::to_string(in.numClasses - 1 - in.offset) + ")");
        concatenated.insert(concatenated.end(), &in.table[size_t(index) * in.dim], &in.table[size_t(index + 1) * in.dim]);
    }
    const ActivationSpec silu; // torch's SiLU, unnormalised
    vector<double> joint(dim, 0.0);
    for (size_t i = 0; i < concatenated.size(); i++)
        for (int o = 0; o < dim; o++)
            joint[o] += concatenated[i] * je.projection[i * dim + o];
    for (double& x : joint)
        x = activation(silu, x, nullptr);
    for (int z = 0; z < nel; z++) {
        for (int o = 0; o < dim; o++)
            result.features[z][o] += joint[o];
        if (je.hasReadout)
            forEachLinearTerm(je.readout, 0, [&](int i, int, double c) { result.energy[z] += c * result.features[z][i]; });
    }
    return result;
}

ZBLPair OpenMMENN::zblPair(const ENNModel& m, int elementA, int elementB) {
    const PairRepulsionSpec& z = m.pairRepulsion;
    const double za = m.elements[elementA], zb = m.elements[elementB];
    return {z.aPrefactor * z.bohr / (std::pow(za, z.aExponent) + std::pow(zb, z.aExponent)), 0.5 * z.coulomb * za * zb * m.energyScale,
            z.covalentRadii[elementA] + z.covalentRadii[elementB]};
}

double OpenMMENN::pairRepulsionEnergy(const ENNModel& m, int elementA, int elementB, double r, double& dEdr) {
    const PairRepulsionSpec& z = m.pairRepulsion;
    const ZBLPair pair = zblPair(m, elementA, elementB);
    dEdr = 0.0;
    if (r >= pair.cutoff)
        return 0.0;
    double denv;
    const double env = polynomialEnvelope(z.envelopeP, pair.cutoff, r, denv);
    double phi = 0.0, dphi = 0.0;
    for (int k = 0; k < 4; k++) {
        const double term = z.c[k] * std::exp(-z.exponents[k] * r / pair.screening);
        phi += term;
        dphi -= term * z.exponents[k] / pair.screening;
    }
    const double v = pair.prefactor * phi / r, dv = pair.prefactor * (dphi / r - phi / (r * r));
    dEdr = dv * env + v * denv;
    return v * env;
}

ENNModelTables::ENNModelTables(const ENNModel& modelRef) : model(modelRef) {
    const ENNModel& m = model;
    // Every stored Wigner 3j block, by its non-zero entries.
    auto sparsify = [](const std::map<std::array<int, 3>, vector<double>>& blocks, std::map<std::array<int, 3>, vector<SparseW3jEntry>>& out) {
        for (const auto& block : blocks) {
            const int d2 = 2 * block.first[1] + 1, d3 = 2 * block.first[2] + 1;
            vector<SparseW3jEntry>& entries = out[block.first];
            for (size_t flat = 0; flat < block.second.size(); flat++)
                if (block.second[flat] != 0.0) {
                    const int k = static_cast<int>(flat % d3), j = static_cast<int>((flat / d3) % d2), i = static_cast<int>(flat / (d3 * d2));
                    entries.push_back({i, j, k, block.second[flat]});
                }
        }
    };
    sparsify(m.wigner3j, sparse);
    layerSparse.resize(m.layers.size());
    for (size_t t = 0; t < m.layers.size(); t++)
        sparsify(m.layers[t].conv.w3j, layerSparse[t]);
    // Normalisation of the harmonics recursion Y_l ~ C(1,l-1,l) Y_1 Y_{l-1}: |Y_l|^2 = 2l+1 at any direction.
    shNormalization.assign(m.shLmax + 1, 1.0);
    {
        const int n = (m.shLmax + 1) * (m.shLmax + 1);
        vector<double> y(n);
        for (int l = 2; l <= m.shLmax; l++) {
            sphericalHarmonics(Vec3(0.36, 0.48, 0.8), y.data(), nullptr);
            double norm2 = 0.0;
            for (int k = l * l; k < (l + 1) * (l + 1); k++)
                norm2 += y[k] * y[k];
            if (!(norm2 > 1e-20))
                throw OpenMM::OpenMMException("ENN model file: the Wigner 3j block (1," + std::to_string(l - 1) + "," + std::to_string(l) +
                                              ") does not generate spherical harmonics");
            shNormalization[l] = std::sqrt((2 * l + 1) / norm2);
        }
    }
    // Symmetric contractions: sum U and W over the basis index for each element, and merge
    // permutations of (a1..a_nu), since A[c,a1]...A[c,a_nu] is symmetric in them.
    for (const LayerSpec& layer : m.layers) {
        const int D = layer.featuresPerChannel, C = layer.channels, nel = m.numElements();
        vector<vector<ContractionTerms>> perContraction;
        for (const ContractionSpec& con : layer.contractions) {
            vector<ContractionTerms> perNu;
            for (int nu = 1; nu <= con.correlation; nu++) {
                ContractionTerms ct;
                ct.correlation = nu;
                const vector<double>& U = con.U[nu - 1];
                const vector<double>& W = con.weights[nu - 1];
                const int K = con.numBasis[nu - 1];
                // Each non-zero U entry as (M, sorted a1..a_nu) and its basis index kappa.
                auto decode = [&](size_t flat, int& kappa) {
                    size_t rest = flat;
                    kappa = static_cast<int>(rest % K);
                    rest /= K;
                    std::array<int, 4> key{-1, -1, -1, -1};
                    for (int i = nu; i >= 1; i--) {
                        key[i] = static_cast<int>(rest % D);
                        rest /= D;
                    }
                    for (int i = 2; i <= nu; i++) // insertion sort of at most three indices
                        for (int j = i; j > 1 && key[j] < key[j - 1]; j--)
                            std::swap(key[j], key[j - 1]);
                    key[0] = static_cast<int>(rest);
                    return key;
                };
                std::map<std::array<int, 4>, size_t> index;
                int kappa;
                for (size_t flat = 0; flat < U.size(); flat++)
                    if (U[flat] != 0.0 && index.emplace(decode(flat, kappa), ct.terms.size()).second)
                        ct.terms.push_back(decode(flat, kappa));
                const size_t T = ct.terms.size();
                ct.coefficients.assign(size_t(nel) * T * C, 0.0);
                for (size_t flat = 0; flat < U.size(); flat++) {
                    if (U[flat] == 0.0)
                        continue;
                    const size_t term = index[decode(flat, kappa)];
                    for (int z = 0; z < nel; z++)
                        for (int c = 0; c < C; c++)
                            ct.coefficients[(z * T + term) * C + c] += U[flat] * W[(size_t(z) * K + kappa) * C + c];
                }
                perNu.push_back(std::move(ct));
            }
            perContraction.push_back(std::move(perNu));
        }
        contractionTerms.push_back(std::move(perContraction));
    }
}

const vector<SparseW3jEntry>& ENNModelTables::convW3j(int layer, int l1, int l2, int l3) const {
    auto own = layerSparse[layer].find({l1, l2, l3});
    return own != layerSparse[layer].end() ? own->second : sparseW3j(l1, l2, l3);
}

const vector<SparseW3jEntry>& ENNModelTables::sparseW3j(int l1, int l2, int l3) const {
    auto it = sparse.find({l1, l2, l3});
    if (it == sparse.end())
        model.w3j(l1, l2, l3); // throws, naming the block the file lacks
    return it->second;
}

void ENNModelTables::sphericalHarmonics(const Vec3& v, double* y, double (*dy)[3]) const {
    // Harmonics of u = v/|v| by the recursion over the model's own Wigner 3j blocks; the gradient is
    // taken with respect to u and then projected onto the sphere and divided by |v|.
    const ENNModel& m = model;
    const double r = std::sqrt(v.dot(v));
    const Vec3 u = v / r;
    const int n = (m.shLmax + 1) * (m.shLmax + 1);
    vector<double> du(3 * n, 0.0); // dY/du
    y[0] = 1.0;
    if (m.shLmax >= 1)
        for (int a = 0; a < 3; a++) {
            y[1 + a] = std::sqrt(3.0) * u[a];
            du[3 * (1 + a) + a] = std::sqrt(3.0);
        }
    for (int l = 2; l <= m.shLmax; l++) {
        const vector<double>& c = m.w3j(1, l - 1, l);
        const int d2 = 2 * l - 1, d3 = 2 * l + 1, o1 = 1, o2 = (l - 1) * (l - 1), o3 = l * l;
        const double norm = shNormalization[l];
        for (int k = 0; k < d3; k++) {
            double sum = 0.0, grad[3] = {0.0, 0.0, 0.0};
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < d2; j++) {
                    const double cijk = c[(i * d2 + j) * d3 + k];
                    if (cijk == 0.0)
                        continue;
                    sum += cijk * y[o1 + i] * y[o2 + j];
                    for (int a = 0; a < 3; a++)
                        grad[a] += cijk * (du[3 * (o1 + i) + a] * y[o2 + j] + y[o1 + i] * du[3 * (o2 + j) + a]);
                }
            y[o3 + k] = norm * sum;
            for (int a = 0; a < 3; a++)
                du[3 * (o3 + k) + a] = norm * grad[a];
        }
    }
    if (dy != nullptr)
        for (int k = 0; k < n; k++) {
            double radial = du[3 * k] * u[0] + du[3 * k + 1] * u[1] + du[3 * k + 2] * u[2];
            for (int a = 0; a < 3; a++)
                dy[k][a] = (du[3 * k + a] - radial * u[a]) / r;
        }
}

void OpenMMENN::linearApply(const LinearSpec& lin, int element, const double* in, double* out) {
    vector<double> sum;
    forEachLinearPath(lin, element, [&](const double* W, double weight, int inOffset, int outOffset, int d, int nu, int nv) {
        sum.resize(nv);
        for (int m = 0; m < d; m++) {
            std::fill(sum.begin(), sum.end(), 0.0);
            for (int u = 0; u < nu; u++) {
                const double x = in[inOffset + u * d + m];
                const double* row = W + size_t(u) * nv;
                for (int v = 0; v < nv; v++)
                    sum[v] += row[v] * x;
            }
            for (int v = 0; v < nv; v++)
                out[outOffset + v * d + m] += weight * sum[v];
        }
    });
}

void OpenMMENN::linearApplyTranspose(const LinearSpec& lin, int element, const double* gOut, double* gIn) {
    vector<double> g;
    forEachLinearPath(lin, element, [&](const double* W, double weight, int inOffset, int outOffset, int d, int nu, int nv) {
        g.resize(nv);
        for (int m = 0; m < d; m++) {
            for (int v = 0; v < nv; v++)
                g[v] = weight * gOut[outOffset + v * d + m];
            for (int u = 0; u < nu; u++)
                gIn[inOffset + u * d + m] += sumOfProducts(W + size_t(u) * nv, g.data(), nv);
        }
    });
}
