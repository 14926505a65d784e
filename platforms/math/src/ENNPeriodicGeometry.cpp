#include "ENNPeriodicGeometry.h"
#include "ENNSanityBounds.h"
#include "openmm/OpenMMException.h"
#include <string>

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

double OpenMMENN::boxVolume(const Vec3* box) {
    return box[0].dot(box[1].cross(box[2]));
}

void OpenMMENN::reciprocalVectors(const Vec3* box, Vec3* recip) {
    const double volume = boxVolume(box);
    recip[0] = box[1].cross(box[2]) / volume;
    recip[1] = box[2].cross(box[0]) / volume;
    recip[2] = box[0].cross(box[1]) / volume;
}
