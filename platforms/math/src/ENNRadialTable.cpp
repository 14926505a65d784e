#include "ENNRadialTable.h"
#include "ENNModelCache.h"
#include "ENNModelMath.h"
#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <mutex>

using namespace OpenMMENN;
using std::vector;

namespace {

void hermite(double u, double& h00, double& h10, double& h01, double& h11) {
    const double u2 = u * u, u3 = u2 * u;
    h00 = 2 * u3 - 3 * u2 + 1;
    h10 = u3 - 2 * u2 + u;
    h01 = -2 * u3 + 3 * u2;
    h11 = u3 - u2;
}

void hermiteDerivative(double u, double& d00, double& d10, double& d01, double& d11) {
    d00 = 6 * u * u - 6 * u;
    d10 = 3 * u * u - 4 * u + 1;
    d01 = -d00;
    d11 = 3 * u * u - 2 * u;
}

ENNRadialTable buildRadialTable(const ENNModel& model, int layer, int elementA, int elementB) {
    // Refine until the interpolant is within float precision of the exact MLP at every midpoint (ENNRadialTable.h).
    const double rMax = model.rMax;
    const int W = numRadialOutputs(model.layers[layer]);
    const RadialPairConstants pair = radialPairConstants(model, layer, elementA, elementB); // (once for the pair)
    auto exact = [&](double r, vector<double>& w, vector<double>& dw) {
        radialWeights(model, layer, elementA, elementB, std::max(r, 1e-3 * rMax / 65536), pair, w, dw);
    };
    int intervals = 64;
    vector<vector<double>> value(intervals + 1), derivative(intervals + 1);
    for (int i = 0; i <= intervals; i++)
        exact(i * rMax / intervals, value[i], derivative[i]);
    while (true) {
        const double h = rMax / intervals;
        double scaleV = 0, scaleD = 0, errorV = 0, errorD = 0;
        vector<vector<double>> midValue(intervals), midDerivative(intervals);
        for (int i = 0; i < intervals; i++) {
            exact((i + 0.5) * h, midValue[i], midDerivative[i]);
            double h00, h10, h01, h11, d00, d10, d01, d11;
            hermite(0.5, h00, h10, h01, h11);
            hermiteDerivative(0.5, d00, d10, d01, d11);
            for (int k = 0; k < W; k++) {
                const double v = h00 * value[i][k] + h10 * h * derivative[i][k] + h01 * value[i + 1][k] + h11 * h * derivative[i + 1][k];
                const double d = (d00 * value[i][k] + d10 * h * derivative[i][k] + d01 * value[i + 1][k] + d11 * h * derivative[i + 1][k]) / h;
                errorV = std::max(errorV, std::abs(v - midValue[i][k]));
                errorD = std::max(errorD, std::abs(d - midDerivative[i][k]));
                scaleV = std::max(scaleV, std::abs(midValue[i][k]));
                scaleD = std::max(scaleD, std::abs(midDerivative[i][k]));
            }
        }
        if ((errorV <= 1e-7 * scaleV && errorD <= 1e-5 * scaleD) || intervals >= 32768)
            break;
        vector<vector<double>> finerValue(2 * intervals + 1), finerDerivative(2 * intervals + 1);
        for (int i = 0; i <= intervals; i++) {
            finerValue[2 * i] = std::move(value[i]);
            finerDerivative[2 * i] = std::move(derivative[i]);
        }
        for (int i = 0; i < intervals; i++) {
            finerValue[2 * i + 1] = std::move(midValue[i]);
            finerDerivative[2 * i + 1] = std::move(midDerivative[i]);
        }
        value.swap(finerValue);
        derivative.swap(finerDerivative);
        intervals *= 2;
    }
    ENNRadialTable table;
    table.intervals = intervals;
    table.numWeights = W;
    table.rMax = rMax;
    table.data.resize(size_t(intervals + 1) * 2 * W);
    for (int i = 0; i <= intervals; i++)
        for (int k = 0; k < W; k++) {
            table.data[size_t(i) * 2 * W + k] = value[i][k];
            table.data[size_t(i) * 2 * W + W + k] = derivative[i][k] * rMax / intervals;
        }
    return table;
}

} // namespace

namespace {

/** The tables of every layer of a model whose radial functions do not depend on the elements. */
std::shared_ptr<const vector<ENNRadialTable>> layerTablesOf(const std::shared_ptr<const ENNModel>& model) {
    return sharedPerModel<vector<ENNRadialTable>>(model, [&] {
        auto tables = std::make_shared<vector<ENNRadialTable>>();
        for (size_t t = 0; t < model->layers.size(); t++)
            tables->push_back(buildRadialTable(*model, static_cast<int>(t), 0, 0));
        return std::shared_ptr<const vector<ENNRadialTable>>(tables);
    });
}

/** The per-pair tables of a model with a distance transform, built as pairs are asked for. */
struct PairTables {
    mutable std::mutex mutex;
    mutable std::map<std::array<int, 3>, std::shared_ptr<const ENNRadialTable>> tables; // by (layer, sender, receiver)
};

} // namespace

std::shared_ptr<const ENNRadialTable> OpenMMENN::radialTableOf(const std::shared_ptr<const ENNModel>& model, int layer, int elementA,
                                                               int elementB) {
    if (!radialDependsOnElements(*model)) {
        const auto all = layerTablesOf(model);
        return std::shared_ptr<const ENNRadialTable>(all, &(*all)[layer]);
    }
    const auto pairs = sharedPerModel<PairTables>(model, [] { return std::make_shared<const PairTables>(); });
    // A distance transform is symmetric in the pair; edge embeddings (the non-linear block) are not.
    const bool ordered = model->layers[layer].hasEdgeEmbeddings();
    const std::array<int, 3> key{layer, ordered ? elementA : std::min(elementA, elementB), ordered ? elementB : std::max(elementA, elementB)};
    std::lock_guard<std::mutex> lock(pairs->mutex);
    auto found = pairs->tables.find(key);
    if (found == pairs->tables.end())
        found = pairs->tables.emplace(key, std::make_shared<const ENNRadialTable>(buildRadialTable(*model, layer, key[1], key[2]))).first;
    // Held with the model's PairTables, so that they stay in the cache while a network uses one of them.
    return std::shared_ptr<const ENNRadialTable>(pairs, found->second.get());
}
