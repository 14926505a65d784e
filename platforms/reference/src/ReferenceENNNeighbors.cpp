#include "ReferenceENNNeighbors.h"
#include "openmm/OpenMMException.h"
#include <cmath>

using namespace OpenMMENN;
using OpenMM::Vec3;

std::vector<ENNEdge> OpenMMENN::buildReferenceEdges(const std::vector<Vec3>& pos, double cutoff, const Vec3* box) {
    const int n = static_cast<int>(pos.size());
    const double cutoff2 = cutoff * cutoff;
    std::vector<ENNEdge> edges;
    int range[3] = {0, 0, 0};
    if (box != nullptr) {
        double width[3];
        latticePlaneSpacings(box, width);
        for (int k = 0; k < 3; k++)
            range[k] = static_cast<int>(std::ceil(cutoff / width[k] + 0.5));
    }
    for (int r = 0; r < n; r++)
        for (int s = 0; s < n; s++) {
            const Vec3 d = box != nullptr ? wrapDisplacement(pos[r] - pos[s], box) : pos[r] - pos[s];
            for (int i = -range[0]; i <= range[0]; i++)
                for (int j = -range[1]; j <= range[1]; j++)
                    for (int k = -range[2]; k <= range[2]; k++) {
                        Vec3 v = d;
                        if (box != nullptr)
                            v += box[0] * i + box[1] * j + box[2] * k;
                        double r2 = v.dot(v);
                        if (r2 >= cutoff2)
                            continue;
                        if (r == s && i == 0 && j == 0 && k == 0)
                            continue;
                        if (r2 < 1e-20)
                            throw OpenMM::OpenMMException("ENNForce: particles " + std::to_string(r) + " and " + std::to_string(s) +
                                                          " of the ML region are at the same position");
                        edges.push_back({r, s, v});
                    }
        }
    return edges;
}
