#include "ReferenceENNNetwork.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cmath>

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::vector;

namespace {

// ---- building blocks: each has a forward and a transpose/backward that accumulates ------------

/** out += Linear(in). */
void linearForward(const LinearSpec& lin, int element, const double* in, double* out) {
    forEachLinearTerm(lin, element, [&](int i, int o, double c) { out[o] += c * in[i]; });
}

/** gradIn += Linear^T(gradOut). */
void linearBackward(const LinearSpec& lin, int element, const double* gradOut, double* gradIn) {
    forEachLinearTerm(lin, element, [&](int i, int o, double c) { gradIn[i] += c * gradOut[o]; });
}

double activation(const ActivationSpec& act, double x, double* derivative) {
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

/** The readout of one node's features: a scalar. */
double readoutForward(const ReadoutSpec& r, const double* h) {
    vector<double> hidden(r.linear1.out.dim, 0.0);
    linearForward(r.linear1, 0, h, hidden.data());
    if (!r.nonlinear)
        return hidden[0];
    for (double& x : hidden)
        x = activation(r.activation, x, nullptr);
    double e = 0.0;
    linearForward(r.linear2, 0, hidden.data(), &e);
    return e;
}

/** gradH += gradE * d readout / dh. */
void readoutBackward(const ReadoutSpec& r, const double* h, double gradE, double* gradH) {
    vector<double> hidden(r.linear1.out.dim, 0.0);
    if (!r.nonlinear) {
        hidden[0] = gradE;
        linearBackward(r.linear1, 0, hidden.data(), gradH);
        return;
    }
    linearForward(r.linear1, 0, h, hidden.data());
    vector<double> gradHidden(hidden.size(), 0.0);
    linearBackward(r.linear2, 0, &gradE, gradHidden.data());
    for (size_t i = 0; i < hidden.size(); i++) {
        double derivative;
        activation(r.activation, hidden[i], &derivative);
        gradHidden[i] *= derivative;
    }
    linearBackward(r.linear1, 0, gradHidden.data(), gradH);
}

/** Radial MLP of one edge; `pre` keeps the pre-activations of every layer for the backward pass. */
void radialForward(const RadialMLPSpec& mlp, const double* basis, vector<vector<double>>& pre, vector<double>& out) {
    const int layers = static_cast<int>(mlp.weights.size());
    pre.resize(layers);
    vector<double> t(basis, basis + mlp.sizes[0]);
    for (int k = 0; k < layers; k++) {
        const int nin = mlp.sizes[k], nout = mlp.sizes[k + 1];
        pre[k].assign(nout, 0.0);
        for (int i = 0; i < nin; i++)
            for (int j = 0; j < nout; j++)
                pre[k][j] += t[i] * mlp.weights[k][i * nout + j];
        for (double& x : pre[k])
            x *= mlp.weightScales[k];
        t.resize(nout);
        for (int j = 0; j < nout; j++)
            t[j] = (k + 1 < layers ? activation(mlp.activation, pre[k][j], nullptr) : pre[k][j]);
    }
    out = t;
}

void radialBackward(const RadialMLPSpec& mlp, const vector<vector<double>>& pre, vector<double> grad, double* gradBasis) {
    const int layers = static_cast<int>(mlp.weights.size());
    for (int k = layers - 1; k >= 0; k--) {
        const int nin = mlp.sizes[k], nout = mlp.sizes[k + 1];
        if (k + 1 < layers)
            for (int j = 0; j < nout; j++) {
                double derivative;
                activation(mlp.activation, pre[k][j], &derivative);
                grad[j] *= derivative;
            }
        vector<double> gradIn(nin, 0.0);
        for (int i = 0; i < nin; i++) {
            double sum = 0.0;
            for (int j = 0; j < nout; j++)
                sum += mlp.weights[k][i * nout + j] * grad[j];
            gradIn[i] = sum * mlp.weightScales[k];
        }
        grad.swap(gradIn);
    }
    for (int i = 0; i < mlp.sizes[0]; i++)
        gradBasis[i] += grad[i];
}

/** Bessel basis times the polynomial envelope, and its derivative with respect to r. */
void radialBasis(const ENNModel& m, double r, double* b, double* db) {
    const double p = m.envelopeP, x = r / m.rMax;
    const double xp = std::pow(x, p);
    const double env = 1.0 - (p + 1) * (p + 2) / 2 * xp + p * (p + 2) * xp * x - p * (p + 1) / 2 * xp * x * x;
    const double denv = (-(p + 1) * (p + 2) / 2 * p * xp / x + p * (p + 2) * (p + 1) * xp - p * (p + 1) / 2 * (p + 2) * xp * x) / m.rMax;
    for (size_t n = 0; n < m.besselFrequencies.size(); n++) {
        const double w = m.besselFrequencies[n];
        const double s = std::sin(w * r), c = std::cos(w * r);
        const double bessel = m.besselPrefactor * s / r;
        const double dbessel = m.besselPrefactor * (w * c * r - s) / (r * r);
        b[n] = bessel * env;
        db[n] = dbessel * env + bessel * denv;
    }
}

} // namespace

ReferenceENNNetwork::ReferenceENNNetwork(std::shared_ptr<const ENNModel> modelPtr) : model(std::move(modelPtr)) {
    const ENNModel& m = *model;
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
        vector<int> positions, dims;
        for (const auto& e : layer.irrepsMessage().entries)
            for (int mm = 0; mm < e.ir.dim(); mm++) {
                positions.push_back(e.offset + mm);
                dims.push_back(e.ir.dim());
            }
        featurePositions.push_back(positions);
        featureDims.push_back(dims);
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

const vector<ReferenceENNNetwork::SparseEntry>& ReferenceENNNetwork::sparseW3j(int l1, int l2, int l3) {
    auto it = sparse.find({l1, l2, l3});
    if (it != sparse.end())
        return it->second;
    const vector<double>& c = model->w3j(l1, l2, l3);
    vector<SparseEntry> entries;
    const int d2 = 2 * l2 + 1, d3 = 2 * l3 + 1;
    for (size_t flat = 0; flat < c.size(); flat++)
        if (c[flat] != 0.0) {
            int k = static_cast<int>(flat % d3), j = static_cast<int>((flat / d3) % d2), i = static_cast<int>(flat / (d3 * d2));
            entries.push_back({i, j, k, c[flat]});
        }
    return sparse[{l1, l2, l3}] = entries;
}

void ReferenceENNNetwork::sphericalHarmonics(const Vec3& v, double* y, double (*dy)[3]) const {
    // Harmonics of u = v/|v| by the recursion over the model's own Wigner 3j blocks; the gradient is
    // taken with respect to u and then projected onto the sphere and divided by |v|.
    const ENNModel& m = *model;
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

void ReferenceENNNetwork::radialWeights(int layer, double r, vector<double>& w, vector<double>& dwdr) const {
    // Forward-mode derivative through the MLP: the tangent of every layer rides along with its value.
    const RadialMLPSpec& mlp = model->layers[layer].radial;
    const int nb = mlp.sizes[0];
    vector<double> t(nb), dt(nb);
    radialBasis(*model, r, t.data(), dt.data());
    const int layers = static_cast<int>(mlp.weights.size());
    for (int k = 0; k < layers; k++) {
        const int nin = mlp.sizes[k], nout = mlp.sizes[k + 1];
        vector<double> pre(nout, 0.0), dpre(nout, 0.0);
        for (int i = 0; i < nin; i++)
            for (int j = 0; j < nout; j++) {
                pre[j] += t[i] * mlp.weights[k][i * nout + j];
                dpre[j] += dt[i] * mlp.weights[k][i * nout + j];
            }
        t.resize(nout);
        dt.resize(nout);
        for (int j = 0; j < nout; j++) {
            pre[j] *= mlp.weightScales[k];
            dpre[j] *= mlp.weightScales[k];
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
    w = t;
    dwdr = dt;
}

template <class Visit>
void ReferenceENNNetwork::forEachMonomial(int layer, int element, Visit visit) const {
    const LayerSpec& L = model->layers[layer];
    int outOffset = 0, pos[3];
    for (size_t k = 0; k < L.contractions.size(); k++) {
        const int dM = L.contractions[k].out.dim();
        for (const ContractionTerms& ct : contractionTerms[layer][k]) {
            const size_t numTerms = ct.terms.size();
            for (size_t term = 0; term < numTerms; term++) {
                const auto& key = ct.terms[term];
                const double* coefficients = &ct.coefficients[(element * numTerms + term) * L.channels];
                for (int c = 0; c < L.channels; c++) {
                    // A[c, f] sits at the offset of feature f's irrep entry plus c times its dimension.
                    for (int i = 0; i < ct.correlation; i++)
                        pos[i] = featurePositions[layer][key[i + 1]] + c * featureDims[layer][key[i + 1]];
                    visit(outOffset + c * dM + key[0], coefficients[c], pos, ct.correlation);
                }
            }
        }
        outOffset += L.channels * dM;
    }
}

double ReferenceENNNetwork::compute(const vector<int>& species, const vector<ENNEdge>& edges, const ENNChargeGroups& chargeGroups,
                                    const ChargeCoupling& coupling, vector<double>* charges, vector<Vec3>* gradient) {
    const ENNModel& m = *model;
    const int N = static_cast<int>(species.size());
    const int E = static_cast<int>(edges.size());
    const int T = static_cast<int>(m.layers.size());
    const int nb = static_cast<int>(m.besselFrequencies.size());
    const int nsh = (m.shLmax + 1) * (m.shLmax + 1);
    const bool wantGradient = gradient != nullptr;
    const bool wantCharges = charges != nullptr || bool(coupling);
    if (wantCharges && !m.hasChargeHead)
        throw OpenMM::OpenMMException("ENNForce: the model has no charge head");

    // ---- edge geometry ----
    vector<double> basis(size_t(E) * nb), dbasis(size_t(E) * nb), sh(size_t(E) * nsh);
    vector<double> dsh(wantGradient ? size_t(E) * nsh * 3 : 0);
    for (int e = 0; e < E; e++) {
        const Vec3& v = edges[e].vec;
        radialBasis(m, std::sqrt(v.dot(v)), &basis[size_t(e) * nb], &dbasis[size_t(e) * nb]);
        sphericalHarmonics(v, &sh[size_t(e) * nsh], wantGradient ? reinterpret_cast<double(*)[3]>(&dsh[size_t(e) * nsh * 3]) : nullptr);
    }

    // ---- forward ----
    vector<vector<double>> h(T + 1), hUp(T), A(T);
    {
        const int dim = m.embedding.out.dim;
        h[0].assign(size_t(N) * dim, 0.0);
        vector<double> onehot(m.numElements());
        for (int n = 0; n < N; n++) {
            std::fill(onehot.begin(), onehot.end(), 0.0);
            onehot[species[n]] = 1.0;
            linearForward(m.embedding, 0, onehot.data(), &h[0][size_t(n) * dim]);
        }
    }
    double energy = 0.0;
    vector<vector<double>> pre;
    vector<double> w;
    for (int t = 0; t < T; t++) {
        const LayerSpec& L = m.layers[t];
        const int dIn = L.irrepsIn().dim, dUp = L.linearUp.out.dim, dTp = L.conv.out.dim, dMsg = L.irrepsMessage().dim;
        const int dProd = L.productLinear.in.dim, dOut = L.irrepsOut().dim;
        hUp[t].assign(size_t(N) * dUp, 0.0);
        for (int n = 0; n < N; n++)
            linearForward(L.linearUp, 0, &h[t][size_t(n) * dIn], &hUp[t][size_t(n) * dUp]);
        vector<double> M(size_t(N) * dTp, 0.0);
        for (int e = 0; e < E; e++) {
            radialForward(L.radial, &basis[size_t(e) * nb], pre, w);
            const double* x1 = &hUp[t][size_t(edges[e].sender) * dUp];
            const double* y = &sh[size_t(e) * nsh];
            double* out = &M[size_t(edges[e].receiver) * dTp];
            for (const auto& p : L.conv.paths) {
                const auto &a = L.conv.in1.entries[p.in1], &b = L.conv.in2.entries[p.in2], &c = L.conv.out.entries[p.out];
                const auto& cg = sparseW3j(a.ir.l, b.ir.l, c.ir.l);
                const int d1 = a.ir.dim(), d3 = c.ir.dim();
                for (int u = 0; u < a.mul; u++) {
                    const double wu = p.weight * w[p.weightOffset + u];
                    for (const auto& s : cg)
                        out[c.offset + u * d3 + s.k] += wu * s.value * x1[a.offset + u * d1 + s.i] * y[b.offset + s.j];
                }
            }
        }
        A[t].assign(size_t(N) * dMsg, 0.0);
        vector<double> message(dMsg);
        for (int n = 0; n < N; n++) {
            std::fill(message.begin(), message.end(), 0.0);
            linearForward(L.linear, 0, &M[size_t(n) * dTp], message.data());
            for (double& x : message)
                x /= L.avgNumNeighbors;
            if (L.residual)
                std::copy(message.begin(), message.end(), &A[t][size_t(n) * dMsg]);
            else
                linearForward(L.skip, species[n], message.data(), &A[t][size_t(n) * dMsg]);
        }
        h[t + 1].assign(size_t(N) * dOut, 0.0);
        vector<double> B(dProd);
        for (int n = 0; n < N; n++) {
            std::fill(B.begin(), B.end(), 0.0);
            const double* a = &A[t][size_t(n) * dMsg];
            forEachMonomial(t, species[n], [&](int out, double coefficient, const int* pos, int nu) {
                for (int i = 0; i < nu; i++)
                    coefficient *= a[pos[i]];
                B[out] += coefficient;
            });
            double* hOut = &h[t + 1][size_t(n) * dOut];
            linearForward(L.productLinear, 0, B.data(), hOut);
            if (L.residual)
                linearForward(L.skip, species[n], &h[t][size_t(n) * dIn], hOut);
            energy += m.energyScale * readoutForward(L.readout, hOut);
        }
    }
    for (int n = 0; n < N; n++)
        energy += m.e0[species[n]] + m.energyShift;

    // ---- charges ----
    vector<double> q;
    if (wantCharges) {
        const int dOut = m.layers.back().irrepsOut().dim;
        q.resize(N);
        for (int n = 0; n < N; n++)
            q[n] = readoutForward(m.chargeReadout, &h[T][size_t(n) * dOut]) + m.chargeElementOffsets[species[n]];
        chargeGroups.apply(q);
        if (charges)
            *charges = q;
    }
    vector<double> chargePotential;
    if (coupling)
        coupling(q, chargePotential);
    if (!wantGradient)
        return energy;

    // ---- backward ----
    vector<double> gradBasis(size_t(E) * nb, 0.0), gradSh(size_t(E) * nsh, 0.0);
    vector<double> gradH(h[T].size(), 0.0);
    if (coupling) {
        // q_i = raw_i + (Q_g - sum_g raw)/N_g, so dE/draw_j = phi_j - mean of phi over j's group.
        const vector<double> projected = chargeGroups.project(chargePotential);
        const int dOut = m.layers.back().irrepsOut().dim;
        for (int n = 0; n < N; n++)
            readoutBackward(m.chargeReadout, &h[T][size_t(n) * dOut], projected[n], &gradH[size_t(n) * dOut]);
    }
    vector<double> gw;
    for (int t = T - 1; t >= 0; t--) {
        const LayerSpec& L = m.layers[t];
        const int dIn = L.irrepsIn().dim, dUp = L.linearUp.out.dim, dTp = L.conv.out.dim, dMsg = L.irrepsMessage().dim;
        const int dProd = L.productLinear.in.dim, dOut = L.irrepsOut().dim;
        vector<double> gradIn(size_t(N) * dIn, 0.0), gradM(size_t(N) * dTp, 0.0), gradB(dProd), gradA(dMsg), gradMessage(dMsg);
        for (int n = 0; n < N; n++) {
            double* gOut = &gradH[size_t(n) * dOut];
            readoutBackward(L.readout, &h[t + 1][size_t(n) * dOut], m.energyScale, gOut);
            if (L.residual)
                linearBackward(L.skip, species[n], gOut, &gradIn[size_t(n) * dIn]);
            std::fill(gradB.begin(), gradB.end(), 0.0);
            linearBackward(L.productLinear, 0, gOut, gradB.data());
            std::fill(gradA.begin(), gradA.end(), 0.0);
            const double* a = &A[t][size_t(n) * dMsg];
            forEachMonomial(t, species[n], [&](int out, double coefficient, const int* pos, int nu) {
                const double g = gradB[out] * coefficient;
                for (int i = 0; i < nu; i++) {
                    double product = g;
                    for (int j = 0; j < nu; j++)
                        if (j != i)
                            product *= a[pos[j]];
                    gradA[pos[i]] += product;
                }
            });
            std::fill(gradMessage.begin(), gradMessage.end(), 0.0);
            if (L.residual)
                gradMessage = gradA;
            else
                linearBackward(L.skip, species[n], gradA.data(), gradMessage.data());
            for (double& x : gradMessage)
                x /= L.avgNumNeighbors;
            linearBackward(L.linear, 0, gradMessage.data(), &gradM[size_t(n) * dTp]);
        }
        vector<double> gradUp(size_t(N) * dUp, 0.0);
        for (int e = 0; e < E; e++) {
            radialForward(L.radial, &basis[size_t(e) * nb], pre, w);
            gw.assign(w.size(), 0.0);
            const int s = edges[e].sender;
            const double* x1 = &hUp[t][size_t(s) * dUp];
            double* gx1 = &gradUp[size_t(s) * dUp];
            const double* y = &sh[size_t(e) * nsh];
            double* gy = &gradSh[size_t(e) * nsh];
            const double* g = &gradM[size_t(edges[e].receiver) * dTp];
            for (const auto& p : L.conv.paths) {
                const auto &a = L.conv.in1.entries[p.in1], &b = L.conv.in2.entries[p.in2], &c = L.conv.out.entries[p.out];
                const auto& cg = sparseW3j(a.ir.l, b.ir.l, c.ir.l);
                const int d1 = a.ir.dim(), d3 = c.ir.dim();
                for (int u = 0; u < a.mul; u++) {
                    const double wu = p.weight * w[p.weightOffset + u];
                    double gwu = 0.0;
                    for (const auto& sp : cg) {
                        const double go = g[c.offset + u * d3 + sp.k] * sp.value;
                        const double xv = x1[a.offset + u * d1 + sp.i], yv = y[b.offset + sp.j];
                        gx1[a.offset + u * d1 + sp.i] += wu * go * yv;
                        gy[b.offset + sp.j] += wu * go * xv;
                        gwu += go * xv * yv;
                    }
                    gw[p.weightOffset + u] += p.weight * gwu;
                }
            }
            radialBackward(L.radial, pre, gw, &gradBasis[size_t(e) * nb]);
        }
        for (int n = 0; n < N; n++)
            linearBackward(L.linearUp, 0, &gradUp[size_t(n) * dUp], &gradIn[size_t(n) * dIn]);
        gradH.swap(gradIn);
    }
    gradient->assign(N, Vec3());
    for (int e = 0; e < E; e++) {
        const Vec3& v = edges[e].vec;
        const double r = std::sqrt(v.dot(v));
        double gr = 0.0;
        for (int k = 0; k < nb; k++)
            gr += gradBasis[size_t(e) * nb + k] * dbasis[size_t(e) * nb + k];
        Vec3 gv = v * (gr / r);
        for (int k = 0; k < nsh; k++)
            for (int a = 0; a < 3; a++)
                gv[a] += gradSh[size_t(e) * nsh + k] * dsh[(size_t(e) * nsh + k) * 3 + a];
        (*gradient)[edges[e].receiver] += gv;
        (*gradient)[edges[e].sender] -= gv;
    }
    return energy;
}
