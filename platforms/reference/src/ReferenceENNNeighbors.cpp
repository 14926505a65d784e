#include "ReferenceENNNeighbors.h"
#include "ENNSanityBounds.h"
#include "openmm/OpenMMException.h"
#include <cmath>

using namespace OpenMMENN;
using OpenMM::Vec3;

void OpenMMENN::latticePlaneSpacings(const Vec3* box, double spacing[3]) {
    const double volume = box[0][0] * box[1][1] * box[2][2];
    auto length = [](const Vec3& v) { return std::sqrt(v.dot(v)); };
    spacing[0] = volume / length(box[1].cross(box[2]));
    spacing[1] = volume / length(box[0].cross(box[2]));
    spacing[2] = volume / length(box[0].cross(box[1]));
}

void OpenMMENN::checkPeriodicBox(const Vec3* box, double cutoff) {
    for (int k = 0; k < 3; k++)
        for (int d = 0; d < 3; d++)
            if (!(std::abs(box[k][d]) <= ENNSanityBounds::MaxCoordinate))
                throw OpenMM::OpenMMException("ENNForce: the periodic box vectors are not finite or longer than 1e4 nm (box vector " +
                                              std::to_string(k) + " has component " + shortNumber(box[k][d]) + " nm)");
    double spacing[3];
    latticePlaneSpacings(box, spacing);
    for (int k = 0; k < 3; k++)
        if (!(spacing[k] * ENNSanityBounds::MaxPeriodicImages >= cutoff))
            throw OpenMM::OpenMMException("ENNForce: the periodic box is too small: its width along lattice direction " + std::to_string(k) +
                                          " is " + shortNumber(spacing[k]) + " nm, less than 1/" +
                                          std::to_string(ENNSanityBounds::MaxPeriodicImages) + " of the cutoff (" + shortNumber(cutoff) + " nm)");
}

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
