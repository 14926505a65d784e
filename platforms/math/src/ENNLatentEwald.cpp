#include "ENNLatentEwald.h"
#include "ENNSanityBounds.h"
#include "openmmenn/ENNForce.h"
#include "openmmenn/ENNModel.h"
#include "openmm/OpenMMException.h"
#include <cmath>

using namespace OpenMMENN;
using OpenMM::Vec3;

bool OpenMMENN::usesTrainedPeriodicSum(const ENNForce& force) {
    return force.hasTrainedPeriodicSum() && force.usesPeriodicBoundaryConditions() &&
           force.getElectrostaticsMethod() == ENNForce::NoElectrostatics;
}

LatentEwaldKSet OpenMMENN::latentEwaldKSet(const ENNModel& model, const Vec3 box[3]) {
    if (!model.hasTruncatedReciprocalSum())
        throw OpenMM::OpenMMException("ENNForce: the model declares no periodic sum of its charges");
    LatentEwaldKSet set;
    const double volume = box[0].dot(box[1].cross(box[2]));
    if (!(volume > 0))
        throw OpenMM::OpenMMException("ENNForce: the periodic box has no volume");
    for (int a = 0; a < 3; a++)
        set.reciprocal[a] = box[(a + 1) % 3].cross(box[(a + 2) % 3]) * (2 * M_PI / volume);
    const double dl = model.truncatedReciprocalSpacing, sigma = model.chargeGaussianSigma, kC = model.chargeCoulombConstant;
    const double kSquaredMax = (2 * M_PI / dl) * (2 * M_PI / dl);
    // About V (2 pi / dl)^3 / (12 pi^2) k vectors in the half set: bounded, so that an exploded box is an error, not
    // gigabytes (a 34 nm box at dl = 2 A; a 3,000-atom water box has 7,757).
    const double expected = volume * std::pow(2 * M_PI / dl, 3) / (12 * M_PI * M_PI);
    if (!(expected <= ENNSanityBounds::MaxReciprocalKVectors))
        throw OpenMM::OpenMMException("ENNForce: the periodic box (volume " + std::to_string(volume) + " in the model's length unit cubed) "
                                      "needs about " + std::to_string(expected) + " k vectors in the model's truncated reciprocal sum, more than " +
                                      std::to_string(ENNSanityBounds::MaxReciprocalKVectors) + "; choose setElectrostaticsMethod(PME) for such a box");
    for (int a = 0; a < 3; a++) {
        const double cells = std::sqrt(box[a].dot(box[a])) / dl;
        if (!(cells < 1e4))
            throw OpenMM::OpenMMException("ENNForce: the periodic box is too large for the model's truncated reciprocal sum (" +
                                          std::to_string(cells) + " grid spacings along a box vector)");
        set.maxIndex[a] = std::max(1, static_cast<int>(cells));
    }
    for (int n0 = -set.maxIndex[0]; n0 <= set.maxIndex[0]; n0++)
        for (int n1 = -set.maxIndex[1]; n1 <= set.maxIndex[1]; n1++)
            for (int n2 = -set.maxIndex[2]; n2 <= set.maxIndex[2]; n2++) {
                const int first = n0 != 0 ? n0 : n1 != 0 ? n1 : n2;
                if (first <= 0)
                    continue; // k = 0, or the other half
                const Vec3 k = set.reciprocal[0] * n0 + set.reciprocal[1] * n1 + set.reciprocal[2] * n2;
                const double k2 = k.dot(k);
                if (k2 > kSquaredMax)
                    continue;
                set.k.push_back(k);
                set.n.insert(set.n.end(), {n0, n1, n2});
                set.weight.push_back(4 * M_PI * kC * std::exp(-0.5 * sigma * sigma * k2) / (volume * k2));
            }
    if (!model.chargeGaussianSelfEnergy)
        set.selfCoefficient = kC / (sigma * std::sqrt(2 * M_PI));
    return set;
}

bool OpenMMENN::sameBox(const Vec3 a[3], const Vec3 b[3]) {
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (a[i][j] != b[i][j])
                return false;
    return true;
}
