#ifndef ENN_POLAR_MESH_CASE_H_
#define ENN_POLAR_MESH_CASE_H_

// The test case of a platform's PolarMACE MM mesh (an ENNStructureFactor: CpuENNPolarMesh, CommonENNPolarMesh) against
// the exact sums S(k) = sum_m q_m exp(-i k . x_m) and the exact gradient of sum_k (gRe Re S + gIm Im S), in a triclinic
// cell whose k set reaches a different frequency along each axis (6, 4 and 5: every stage of a pruned transform, both
// blocks of kept z frequencies), with charges outside the cell too.
// Interpolation bound: each charge's term is interpolated to (1/7)^5 = 6e-5 of its size at the largest k, so
// |error of S(k)| <= 6e-5 sum |q|; its derivative, d/dx of the same aliased terms, to 6e-5 times the largest |k| of the
// grid's aliases (2 pi K_a / L_a, 8x the k set's), so per charge <= 6e-5 * 9 |k|max |q_m| sum_k (|gRe| + |gIm|).

#include "ENNPeriodicGeometry.h"
#include "ENNPolarHead.h"
#include "openmm/Vec3.h"
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace enntest {

struct PolarMeshCase {
    OpenMM::Vec3 box[3] = {OpenMM::Vec3(31.0, 0, 0), OpenMM::Vec3(4.0, 23.0, 0), OpenMM::Vec3(-5.0, 6.0, 27.0)}; // model units (A)
    std::vector<OpenMM::Vec3> x, k;
    std::vector<double> q, gRe, gIm;
    double chargeSum = 0.0, kMax = 0.0, weights = 0.0;
    const double interpolation = std::pow(1.0 / 7, 5);

    PolarMeshCase() {
        std::mt19937 random(7);
        std::uniform_real_distribution<double> unit(0.0, 1.0);
        for (int m = 0; m < 400; m++) {
            x.push_back(box[0] * unit(random) + box[1] * unit(random) + box[2] * unit(random) + OpenMM::Vec3(0, 0, 40.0 * (m % 3 - 1)));
            q.push_back(unit(random) - 0.5);
            chargeSum += std::abs(q.back());
        }
        OpenMM::Vec3 recip[3];
        OpenMMENN::reciprocalVectors(box, recip);
        const double cutoff = 1.3; // 1/A: reaches n = 6, 4 and 5 along the three axes
        for (int a = 0; a <= 8; a++)
            for (int b = -8; b <= 8; b++)
                for (int c = -8; c <= 8; c++) {
                    const bool half = a > 0 || (a == 0 && b > 0) || (a == 0 && b == 0 && c > 0);
                    const OpenMM::Vec3 kv = (recip[0] * a + recip[1] * b + recip[2] * c) * (2 * M_PI);
                    if (half && std::sqrt(kv.dot(kv)) <= cutoff)
                        k.push_back(kv);
                }
        for (size_t i = 0; i < k.size(); i++) {
            gRe.push_back(unit(random) - 0.5);
            gIm.push_back(unit(random) - 0.5);
            kMax = std::max(kMax, std::sqrt(k[i].dot(k[i])));
            weights += std::abs(gRe.back()) + std::abs(gIm.back());
        }
    }

    /** S(k) and the gradient from `mesh`. */
    void run(OpenMMENN::ENNStructureFactor& mesh, std::vector<double>& re, std::vector<double>& im, std::vector<OpenMM::Vec3>& gradient) const {
        mesh.compute(box, x, q, k, re, im);
        mesh.gradient(gRe, gIm, gradient);
    }

    /** The largest error of S(k) as a fraction of sum |q|, and of the gradient as a fraction of |q_m| |k|max sum |g|. */
    void errors(const std::vector<double>& re, const std::vector<double>& im, const std::vector<OpenMM::Vec3>& gradient, double& worstS,
                double& worstGradient) const {
        worstS = worstGradient = 0.0;
        for (size_t i = 0; i < k.size(); i++) {
            double exactRe = 0.0, exactIm = 0.0;
            for (size_t m = 0; m < x.size(); m++) {
                exactRe += q[m] * std::cos(k[i].dot(x[m]));
                exactIm -= q[m] * std::sin(k[i].dot(x[m]));
            }
            worstS = std::max({worstS, std::abs(re[i] - exactRe), std::abs(im[i] - exactIm)});
        }
        worstS /= chargeSum;
        for (size_t m = 0; m < x.size(); m++) {
            OpenMM::Vec3 exact; // d/dx_m: Re S -> -q k sin(k.x), Im S -> -q k cos(k.x)
            for (size_t i = 0; i < k.size(); i++)
                exact -= k[i] * (q[m] * (gRe[i] * std::sin(k[i].dot(x[m])) + gIm[i] * std::cos(k[i].dot(x[m]))));
            for (int a = 0; a < 3; a++)
                worstGradient = std::max(worstGradient, std::abs(gradient[m][a] - exact[a]) / (std::abs(q[m]) * kMax * weights));
        }
    }
};

} // namespace enntest

#endif
