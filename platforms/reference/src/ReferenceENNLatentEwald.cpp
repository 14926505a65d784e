#include "ReferenceENNLatentEwald.h"
#include <cmath>

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::vector;

double ReferenceENNLatentEwald::compute(const vector<Vec3>& positions, const Vec3 box[3], const vector<double>& q, vector<double>& phi,
                                        vector<Vec3>& gradient) const {
    const LatentEwaldKSet set = latentEwaldKSet(model, box);
    const size_t N = positions.size();
    double energy = 0.0;
    for (size_t i = 0; i < N; i++) {
        energy -= set.selfCoefficient * q[i] * q[i];
        phi[i] -= 2 * set.selfCoefficient * q[i];
    }
    for (size_t m = 0; m < set.k.size(); m++) {
        const Vec3& k = set.k[m];
        double re = 0.0, im = 0.0; // S(k)
        for (size_t i = 0; i < N; i++) {
            const double kr = k.dot(positions[i]);
            re += q[i] * std::cos(kr);
            im += q[i] * std::sin(kr);
        }
        const double w = set.weight[m];
        energy += w * (re * re + im * im);
        for (size_t i = 0; i < N; i++) {
            const double kr = k.dot(positions[i]), c = std::cos(kr), s = std::sin(kr);
            phi[i] += 2 * w * (re * c + im * s);
            gradient[i] += k * (2 * w * q[i] * (im * c - re * s));
        }
    }
    return energy;
}
