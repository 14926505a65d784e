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

} // namespace

ReferenceENNNetwork::ReferenceENNNetwork(std::shared_ptr<const ENNModel> modelPtr) : model(std::move(modelPtr)), tables(*model) {
    // Where A[c, f] of each layer's message sits: the offset of feature f's irrep entry, and its dimension.
    for (const LayerSpec& layer : model->layers) {
        vector<int> positions, dims;
        for (const auto& e : layer.irrepsMessage().entries)
            for (int mm = 0; mm < e.ir.dim(); mm++) {
                positions.push_back(e.offset + mm);
                dims.push_back(e.ir.dim());
            }
        featurePositions.push_back(positions);
        featureDims.push_back(dims);
        gateLayouts.push_back(GateLayout::e3nn(layer.nonlinearBlock.gate));
    }
}

template <class Visit>
void ReferenceENNNetwork::forEachMonomial(int layer, int element, Visit visit) const {
    const LayerSpec& L = model->layers[layer];
    int outOffset = 0, pos[3];
    for (size_t k = 0; k < L.contractions.size(); k++) {
        const int dM = L.contractions[k].out.dim();
        for (const ContractionTerms& ct : tables.layerContractions(layer)[k]) {
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
                                    const InitialNodeFeatures& initial, const ChargeCoupling& coupling, vector<double>* charges, vector<Vec3>* gradient,
                                    const LayerFeatureHead& head) {
    const ENNModel& m = *model;
    const int N = static_cast<int>(species.size());
    const int E = static_cast<int>(edges.size());
    const int T = static_cast<int>(m.layers.size());
    const int nsh = (m.shLmax + 1) * (m.shLmax + 1);
    const bool wantGradient = gradient != nullptr;
    const bool wantCharges = charges != nullptr || bool(coupling);
    if (wantCharges && !m.hasChargeHead)
        throw OpenMM::OpenMMException("ENNForce: the model has no charge head");

    // ---- edge geometry ----
    vector<double> r(E), sh(size_t(E) * nsh);
    vector<double> dsh(wantGradient ? size_t(E) * nsh * 3 : 0);
    for (int e = 0; e < E; e++) {
        const Vec3& v = edges[e].vec;
        r[e] = std::sqrt(v.dot(v));
        double (*dy)[3] = wantGradient ? reinterpret_cast<double(*)[3]>(&dsh[size_t(e) * nsh * 3]) : nullptr;
        if (!m.harmonicsOfYZX)
            tables.sphericalHarmonics(v, &sh[size_t(e) * nsh], dy);
        else { // Y(u), u = (v_y, v_z, v_x): dY/dv_y = dY/du_0, dY/dv_z = dY/du_1, dY/dv_x = dY/du_2
            tables.sphericalHarmonics(Vec3(v[1], v[2], v[0]), &sh[size_t(e) * nsh], dy);
            for (int k = 0; dy && k < nsh; k++) {
                const double du[3] = {dy[k][0], dy[k][1], dy[k][2]};
                dy[k][1] = du[0];
                dy[k][2] = du[1];
                dy[k][0] = du[2];
            }
        }
    }
    // A layer's radial outputs of edge e (tensor-product weights, then any edge density), exact, and their r-derivatives.
    vector<double> w, dwdr;
    auto radial = [&](int t, int e) { radialWeights(m, t, species[edges[e].sender], species[edges[e].receiver], r[e], w, dwdr); };

    // ---- forward ----
    vector<vector<double>> h(T + 1), hUp(T), A(T);
    double energy = 0.0;
    for (int n = 0; n < N; n++) {
        h[0].insert(h[0].end(), initial.features[species[n]].begin(), initial.features[species[n]].end());
        energy += initial.energy[species[n]];
    }
    // Kept for the backward pass: the node densities d_i of density-normalised layers and each node's message after
    // `linear` and its normalisation (MACE's density blocks and the non-linear block), and the gate's input (non-linear
    // block).
    vector<vector<double>> nodeDensity(T), scaledMessage(T), gateInput(T);
    for (int t = 0; t < T; t++) {
        const LayerSpec& L = m.layers[t];
        const int dIn = L.irrepsIn().dim, dUp = L.linearUp.out.dim, dTp = L.conv.out.dim, dLin = L.linear.out.dim, dMsg = L.irrepsMessage().dim;
        const int dProd = L.productLinear.in.dim, dOut = L.irrepsOut().dim;
        hUp[t].assign(size_t(N) * dUp, 0.0);
        for (int n = 0; n < N; n++)
            linearForward(L.linearUp, 0, &h[t][size_t(n) * dIn], &hUp[t][size_t(n) * dUp]);
        vector<double> M(size_t(N) * dTp, 0.0);
        nodeDensity[t].assign(L.densityNormalized ? N : 0, 0.0);
        for (int e = 0; e < E; e++) {
            radial(t, e);
            if (L.densityNormalized) // d_i = sum over i's edges of their densities
                nodeDensity[t][edges[e].receiver] += w[L.conv.numWeights];
            const double* x1 = &hUp[t][size_t(edges[e].sender) * dUp];
            const double* y = &sh[size_t(e) * nsh];
            double* out = &M[size_t(edges[e].receiver) * dTp];
            for (const auto& p : L.conv.paths) {
                const auto &a = L.conv.in1.entries[p.in1], &b = L.conv.in2.entries[p.in2], &c = L.conv.out.entries[p.out];
                const auto& cg = tables.convW3j(t, a.ir.l, b.ir.l, c.ir.l);
                const int d1 = a.ir.dim(), d3 = c.ir.dim();
                for (int u = 0; u < a.mul; u++) {
                    const double wu = p.weight * w[p.weightOffset + u];
                    for (const auto& s : cg)
                        out[c.offset + u * d3 + s.k] += wu * s.value * x1[a.offset + u * d1 + s.i] * y[b.offset + s.j];
                }
            }
        }
        A[t].assign(size_t(N) * dMsg, 0.0);
        scaledMessage[t].assign(L.densityNormalized ? size_t(N) * dLin : 0, 0.0);
        gateInput[t].assign(L.nonlinear ? size_t(N) * dLin : 0, 0.0);
        vector<double> linearOut(dLin), gated(L.nonlinear ? L.nonlinearBlock.gate.out.dim : 0), message(dMsg);
        for (int n = 0; n < N; n++) {
            std::fill(linearOut.begin(), linearOut.end(), 0.0);
            linearForward(L.linear, 0, &M[size_t(n) * dTp], linearOut.data());
            const double norm = L.avgNumNeighbors * (L.densityNormalized ? L.density.alpha + L.density.beta * nodeDensity[t][n] : 1.0);
            for (double& x : linearOut)
                x /= norm;
            if (L.densityNormalized)
                std::copy(linearOut.begin(), linearOut.end(), &scaledMessage[t][size_t(n) * dLin]);
            if (L.nonlinear) { // message = linear_2(gate(scaled + linear_residual(linear_up(h))))
                const NonLinearBlockSpec& nl = L.nonlinearBlock;
                linearForward(nl.linearResidual, 0, &hUp[t][size_t(n) * dUp], linearOut.data());
                std::copy(linearOut.begin(), linearOut.end(), &gateInput[t][size_t(n) * dLin]);
                gateForward(nl.gate, gateLayouts[t], linearOut.data(), gated.data());
                std::fill(message.begin(), message.end(), 0.0);
                linearForward(nl.linear2, 0, gated.data(), message.data());
            } else
                message = linearOut;
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
    vector<vector<double>> headGradient; // [layer][atom * dim + feature]
    if (head) {
        vector<const vector<double>*> outputs;
        for (int t = 0; t < T; t++)
            outputs.push_back(&h[t + 1]);
        energy += head(outputs, wantGradient ? &headGradient : nullptr);
    }
    // ZBL pair repulsion (MACE's ZBLBasis) over the edges, scaled with the network's energy (in pairRepulsionEnergy).
    vector<double> pairRepulsionDerivative(m.hasPairRepulsion ? E : 0);
    for (int e = 0; e < E && m.hasPairRepulsion; e++)
        energy += pairRepulsionEnergy(m, species[edges[e].sender], species[edges[e].receiver], r[e], pairRepulsionDerivative[e]);

    // ---- charges ----
    vector<double> q;
    if (wantCharges) {
        q.resize(N);
        for (int n = 0; n < N; n++)
            q[n] = m.chargeElementOffsets[species[n]];
        for (const ENNModel::ChargeReadout& r : m.chargeReadouts) { // summed over the layers that have one
            const int d = static_cast<int>(h[r.layer + 1].size()) / std::max(N, 1);
            for (int n = 0; n < N; n++)
                q[n] += readoutForward(r.readout, &h[r.layer + 1][size_t(n) * d]);
        }
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
    vector<double> gradR(E, 0.0), gradSh(size_t(E) * nsh, 0.0);
    for (int e = 0; e < E && m.hasPairRepulsion; e++)
        gradR[e] = pairRepulsionDerivative[e];
    vector<double> gradH(h[T].size(), 0.0);
    // q_i = raw_i + (Q_g - sum_g raw)/N_g, so dE/draw_j = phi_j - mean of phi over j's group (phi_j if unconstrained).
    const vector<double> projected = coupling ? chargeGroups.project(chargePotential) : vector<double>();
    // dE/dh of layer t's output through the heads that read it (charge readouts, a layer-feature head), added where the
    // layer's energy readout adds its own.
    auto addOutputHeadsGradient = [&](int t, vector<double>& gradOut) {
        if (head)
            for (size_t k = 0; k < gradOut.size(); k++)
                gradOut[k] += headGradient[t][k];
        if (!coupling)
            return;
        for (const ENNModel::ChargeReadout& r : m.chargeReadouts)
            if (r.layer == t) {
                const int d = static_cast<int>(h[t + 1].size()) / std::max(N, 1);
                for (int n = 0; n < N; n++)
                    readoutBackward(r.readout, &h[t + 1][size_t(n) * d], projected[n], &gradOut[size_t(n) * d]);
            }
    };
    if (T > 0)
        addOutputHeadsGradient(T - 1, gradH);
    for (int t = T - 1; t >= 0; t--) {
        const LayerSpec& L = m.layers[t];
        const int dIn = L.irrepsIn().dim, dUp = L.linearUp.out.dim, dTp = L.conv.out.dim, dLin = L.linear.out.dim, dMsg = L.irrepsMessage().dim;
        const int dProd = L.productLinear.in.dim, dOut = L.irrepsOut().dim;
        vector<double> gradIn(size_t(N) * dIn, 0.0), gradM(size_t(N) * dTp, 0.0), gradB(dProd), gradA(dMsg), gradMessage(dMsg);
        vector<double> gradLinear(dLin), gradGated(L.nonlinear ? L.nonlinearBlock.gate.out.dim : 0);
        vector<double> gradUp(size_t(N) * dUp, 0.0), gradDensity(L.densityNormalized ? N : 0, 0.0);
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
            std::fill(gradLinear.begin(), gradLinear.end(), 0.0);
            if (L.nonlinear) {
                const NonLinearBlockSpec& nl = L.nonlinearBlock;
                std::fill(gradGated.begin(), gradGated.end(), 0.0);
                linearBackward(nl.linear2, 0, gradMessage.data(), gradGated.data());
                gateBackward(nl.gate, gateLayouts[t], &gateInput[t][size_t(n) * dLin], gradGated.data(), gradLinear.data());
                linearBackward(nl.linearResidual, 0, gradLinear.data(), &gradUp[size_t(n) * dUp]);
            } else
                gradLinear = gradMessage;
            const double denominator = L.densityNormalized ? L.density.alpha + L.density.beta * nodeDensity[t][n] : 1.0;
            if (L.densityNormalized) { // scaled = raw / (avg (alpha + beta d)): dE/dd = -beta (gradLinear . scaled) / (alpha + beta d)
                double dot = 0.0;
                for (int k = 0; k < dLin; k++)
                    dot += gradLinear[k] * scaledMessage[t][size_t(n) * dLin + k];
                gradDensity[n] = -L.density.beta * dot / denominator;
            }
            for (double& x : gradLinear)
                x /= L.avgNumNeighbors * denominator;
            linearBackward(L.linear, 0, gradLinear.data(), &gradM[size_t(n) * dTp]);
        }
        for (int e = 0; e < E; e++) {
            radial(t, e);
            const int s = edges[e].sender;
            const double* x1 = &hUp[t][size_t(s) * dUp];
            double* gx1 = &gradUp[size_t(s) * dUp];
            const double* y = &sh[size_t(e) * nsh];
            double* gy = &gradSh[size_t(e) * nsh];
            const double* g = &gradM[size_t(edges[e].receiver) * dTp];
            double gr = 0.0; // dE/dr through this layer's radial outputs
            for (const auto& p : L.conv.paths) {
                const auto &a = L.conv.in1.entries[p.in1], &b = L.conv.in2.entries[p.in2], &c = L.conv.out.entries[p.out];
                const auto& cg = tables.convW3j(t, a.ir.l, b.ir.l, c.ir.l);
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
                    gr += p.weight * gwu * dwdr[p.weightOffset + u];
                }
            }
            if (L.densityNormalized)
                gr += gradDensity[edges[e].receiver] * dwdr[L.conv.numWeights];
            gradR[e] += gr;
        }
        for (int n = 0; n < N; n++)
            linearBackward(L.linearUp, 0, &gradUp[size_t(n) * dUp], &gradIn[size_t(n) * dIn]);
        if (t > 0)
            addOutputHeadsGradient(t - 1, gradIn); // the gradient of layer t-1's output
        gradH.swap(gradIn);
    }
    gradient->assign(N, Vec3());
    for (int e = 0; e < E; e++) {
        const Vec3& v = edges[e].vec;
        Vec3 gv = v * (gradR[e] / r[e]);
        for (int k = 0; k < nsh; k++)
            for (int a = 0; a < 3; a++)
                gv[a] += gradSh[size_t(e) * nsh + k] * dsh[(size_t(e) * nsh + k) * 3 + a];
        (*gradient)[edges[e].receiver] += gv;
        (*gradient)[edges[e].sender] -= gv;
    }
    return energy;
}
