#include "ENNModelMath.h"
#include "openmm/OpenMMException.h"
#include <cmath>
#include <string>
#include <utility>

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::vector;

double OpenMMENN::activation(const ActivationSpec& act, double x, double* derivative) {
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

void OpenMMENN::radialBasis(const ENNModel& m, double r, double* b, double* db) {
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

void OpenMMENN::radialWeights(const ENNModel& model, int layer, double r, vector<double>& w, vector<double>& dwdr) {
    // Forward-mode derivative through the MLP: the tangent of every layer rides along with its value.
    const RadialMLPSpec& mlp = model.layers[layer].radial;
    const int nb = mlp.sizes[0];
    vector<double> t(nb), dt(nb);
    radialBasis(model, r, t.data(), dt.data());
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

ENNModelTables::ENNModelTables(const ENNModel& modelRef) : model(modelRef) {
    const ENNModel& m = model;
    // Every stored Wigner 3j block, by its non-zero entries.
    for (const auto& block : m.wigner3j) {
        const int d2 = 2 * block.first[1] + 1, d3 = 2 * block.first[2] + 1;
        vector<SparseW3jEntry>& entries = sparse[block.first];
        for (size_t flat = 0; flat < block.second.size(); flat++)
            if (block.second[flat] != 0.0) {
                const int k = static_cast<int>(flat % d3), j = static_cast<int>((flat / d3) % d2), i = static_cast<int>(flat / (d3 * d2));
                entries.push_back({i, j, k, block.second[flat]});
            }
    }
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
