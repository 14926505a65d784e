#include "ENNEwald.h"
#include "ENNPeriodicGeometry.h"
#include "ENNSanityBounds.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cmath>
#include <complex>
#include <string>

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::vector;

namespace {

/** The smallest size >= n with no prime factor above 7 (the fast sizes of FFTW and of OpenMM's FFTs). */
int fftSize(int n) {
    for (int size = std::max(n, 1);; size++) {
        int rest = size;
        for (int p : {2, 3, 5, 7})
            while (rest % p == 0)
                rest /= p;
        if (rest == 1)
            return size;
    }
}

/** Bhat(n) = sum_{j=1}^{4} M_5(j) exp(2 pi i n j / K): with pmeStencil's stencil (grid point base - j gets M_5(f + j)),
 *  sum_g Q(g) exp(-2 pi i n g / K) = Bhat(n) exp(-2 pi i n u / K) for one charge at u, up to the interpolation error. */
std::complex<double> splineSum(int n, int K) {
    static const double M5[4] = {1.0 / 24, 11.0 / 24, 11.0 / 24, 1.0 / 24}; // M_5(1..4)
    std::complex<double> sum = 0.0;
    for (int j = 1; j <= 4; j++)
        sum += M5[j - 1] * std::polar(1.0, 2 * M_PI * n * j / K);
    return sum;
}

/** weight[j] = M_5(f + j) and dweight[j] = M_5'(f + j), j = 0..4 (see pmeStencil): the recursion unrolled. */
void splineWeights(double f, double weight[PMEOrder], double dweight[PMEOrder]) {
    static_assert(PMEOrder == 5, "the unrolled recursion is for order 5");
    const double g = 1.0 - f;
    // Order 3 from order 2 (f, 1 - f); then order 4.
    const double a0 = 0.5 * f * f, a1 = 0.5 * ((f + 1) * g + (2 - f) * f), a2 = 0.5 * g * g;
    const double b0 = f * a0 / 3, b1 = ((f + 1) * a1 + (3 - f) * a0) / 3, b2 = ((f + 2) * a2 + (2 - f) * a1) / 3, b3 = g * a2 / 3;
    dweight[0] = b0;
    dweight[1] = b1 - b0;
    dweight[2] = b2 - b1;
    dweight[3] = b3 - b2;
    dweight[4] = -b3;
    weight[0] = f * b0 / 4;
    weight[1] = ((f + 1) * b1 + (4 - f) * b0) / 4;
    weight[2] = ((f + 2) * b2 + (3 - f) * b1) / 4;
    weight[3] = ((f + 3) * b3 + (2 - f) * b2) / 4;
    weight[4] = g * b3 / 4;
}

} // namespace

int OpenMMENN::pmeFirstIndex(const Vec3& position, const Vec3& recipAxis, int K, double& f) {
    double s = position.dot(recipAxis);
    s -= std::floor(s);
    const double u = s * K;
    const int base = static_cast<int>(std::floor(u)); // 0..K (K only when s * K rounds up to K)
    f = u - base;
    return base < K ? base : base - K;
}

void OpenMMENN::pmeStencil(const Vec3& position, const Vec3* recip, const int grid[3], int index[3 * PMEOrder],
                           double weight[3 * PMEOrder], double dweight[3 * PMEOrder]) {
    for (int d = 0; d < 3; d++) {
        double f;
        const int first = pmeFirstIndex(position, recip[d], grid[d], f);
        splineWeights(f, weight + d * PMEOrder, dweight + d * PMEOrder);
        for (int j = 0; j < PMEOrder; j++)
            index[d * PMEOrder + j] = first - j >= 0 ? first - j : first - j + grid[d];
    }
}

vector<double> OpenMMENN::pmeSplineModuli(int K) {
    vector<double> moduli(K);
    double atIntegers[PMEOrder], unused[PMEOrder];
    splineWeights(0.0, atIntegers, unused); // M_5(j) for j = 0..4
    for (int m = 0; m < K; m++) {
        std::complex<double> sum = 0;
        for (int j = 0; j <= PMEOrder - 2; j++)
            sum += atIntegers[j + 1] * std::polar(1.0, 2 * M_PI * m * j / K);
        moduli[m] = std::norm(sum);
    }
    for (int m = 0; m < K; m++)
        if (moduli[m] < 1e-7)
            moduli[m] = 0.5 * (moduli[(m - 1 + K) % K] + moduli[(m + 1) % K]);
    return moduli;
}

void OpenMMENN::pmeInfluence(const Vec3* box, double alpha, const int grid[3], const vector<double>* moduli, int firstPlane, int lastPlane,
                             double* influence) {
    Vec3 recip[3];
    reciprocalVectors(box, recip);
    const double prefactor = ONE_4PI_EPS0 / (M_PI * boxVolume(box));
    double* out = influence;
    for (int m0 = firstPlane; m0 < lastPlane; m0++)
        for (int m1 = 0; m1 < grid[1]; m1++)
            for (int m2 = 0; m2 < grid[2]; m2++, out++) {
                if (m0 == 0 && m1 == 0 && m2 == 0) {
                    *out = 0.0;
                    continue;
                }
                // The wave vector of index k, and of -k. A Nyquist index (K/2 of an even K) stands for +K/2 in both, so in a
                // triclinic box the two differ there. Only the even part of the kernel acts on a real charge grid (theta is
                // the real part of the transform); it is the one used, so that g(k) = g(-k) exactly and the one-pass PME
                // of the CPU and GPU platforms (two real grids as one complex grid) keeps the two grids apart.
                auto wave = [&](int k, int K) { return k <= K / 2 ? k : k - K; };
                const Vec3 m = recip[0] * wave(m0, grid[0]) + recip[1] * wave(m1, grid[1]) + recip[2] * wave(m2, grid[2]);
                const Vec3 minus = recip[0] * wave((grid[0] - m0) % grid[0], grid[0]) + recip[1] * wave((grid[1] - m1) % grid[1], grid[1]) +
                                   recip[2] * wave((grid[2] - m2) % grid[2], grid[2]);
                *out = prefactor * 0.5 * (ewaldKernel(m, alpha) + ewaldKernel(minus, alpha)) / (moduli[0][m0] * moduli[1][m1] * moduli[2][m2]);
            }
}

double OpenMMENN::neutralizingBackgroundEnergy(double totalCharge, const Vec3* box, double alpha) {
    return -ONE_4PI_EPS0 * M_PI * totalCharge * totalCharge / (2 * boxVolume(box) * alpha * alpha);
}

void OpenMMENN::choosePMEParameters(double cutoff, double tolerance, const Vec3* box, double& alpha, int grid[3]) {
    if (!(tolerance > 0) || !(cutoff > 0))
        throw OpenMM::OpenMMException("ENNForce: PME needs a positive cutoff and error tolerance");
    alpha = std::sqrt(-std::log(2 * tolerance)) / cutoff;
    for (int d = 0; d < 3; d++)
        grid[d] = std::max(6, static_cast<int>(std::ceil(2 * alpha * box[d][d] / (3 * std::pow(tolerance, 0.2)))));
}

PolarMeshGrid::PolarMeshGrid(const Vec3* box, const vector<Vec3>& k) : n(3 * k.size()), splineFactor(k.size(), 1.0) {
    for (int a = 0; a < 3; a++)
        reach[a] = 0;
    for (size_t i = 0; i < k.size(); i++)
        for (int a = 0; a < 3; a++) { // k . box_a = 2 pi n_a
            n[3 * i + a] = static_cast<int>(std::lround(k[i].dot(box[a]) / (2 * M_PI)));
            reach[a] = std::max(reach[a], std::abs(n[3 * i + a]));
        }
    for (int a = 0; a < 3; a++)
        size[a] = fftSize(std::max(8 * reach[a], PMEOrder + 1));
    if (!(double(size[0]) * size[1] * size[2] <= 8 * ENNSanityBounds::MaxReciprocalKVectors)) // (16 bytes a point)
        throw OpenMM::OpenMMException("ENNForce: the periodic box needs a PolarMACE mesh of " + std::to_string(size[0]) + " x " +
                                      std::to_string(size[1]) + " x " + std::to_string(size[2]) + " points (an exploded box?)");
    conjugate.resize(k.size());
    for (size_t i = 0; i < k.size(); i++) {
        for (int a = 0; a < 3; a++)
            splineFactor[i] /= splineSum(n[3 * i + a], size[a]);
        conjugate[i] = n[3 * i + 2] < 0;
        for (int a = 0; a < 3 && conjugate[i]; a++)
            n[3 * i + a] = -n[3 * i + a];
    }
}
