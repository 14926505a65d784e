#include "ReferenceENNPME.h"
#include "ReferenceENNElectrostatics.h"
#include "openmm/OpenMMException.h"
#include <cmath>
#include <complex>

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::vector;
typedef std::complex<double> Complex;

namespace {

const int Order = PMEOrder;

void checkSizes(const vector<Vec3>& pos, const vector<double>& q) {
    if (pos.size() != q.size())
        throw OpenMM::OpenMMException("ENNForce: reciprocal sum given " + std::to_string(pos.size()) + " positions but " +
                                      std::to_string(q.size()) + " charges");
}

/** out[m] = sum_k in[k] exp(sign 2 pi i m k / n), by mixed-radix Cooley-Tukey (direct sums for prime n). */
void fft(const Complex* in, int stride, int n, int sign, Complex* out) {
    int p = 2;
    while (p * p <= n && n % p != 0)
        p++;
    if (p * p > n)
        p = n; // n is prime (or 1)
    const int m = n / p;
    if (m == 1) {
        for (int k = 0; k < n; k++) {
            Complex sum = 0;
            for (int j = 0; j < n; j++)
                sum += in[j * stride] * std::polar(1.0, sign * 2 * M_PI * double((size_t(j) * k) % n) / n);
            out[k] = sum;
        }
        return;
    }
    // p interleaved sub-transforms of length m, then p-point butterflies with twiddles.
    std::vector<Complex> sub(n);
    for (int r = 0; r < p; r++)
        fft(in + r * stride, stride * p, m, sign, &sub[r * m]);
    for (int k = 0; k < n; k++) {
        Complex sum = 0;
        for (int r = 0; r < p; r++)
            sum += sub[r * m + k % m] * std::polar(1.0, sign * 2 * M_PI * double((size_t(r) * k) % n) / n);
        out[k] = sum;
    }
}

/** The transform of a 3D grid along one axis, in place. */
void dftAxis(vector<Complex>& data, const int grid[3], int axis, int sign) {
    const int K = grid[axis];
    vector<Complex> line(K), out(K);
    const int stride[3] = {grid[1] * grid[2], grid[2], 1};
    const int a1 = (axis + 1) % 3, a2 = (axis + 2) % 3;
    for (int i = 0; i < grid[a1]; i++)
        for (int j = 0; j < grid[a2]; j++) {
            const int base = i * stride[a1] + j * stride[a2];
            for (int k = 0; k < K; k++)
                line[k] = data[base + k * stride[axis]];
            fft(line.data(), 1, K, sign, out.data());
            for (int m = 0; m < K; m++)
                data[base + m * stride[axis]] = out[m];
        }
}

void dft3d(vector<Complex>& data, const int grid[3], int sign) {
    for (int axis = 0; axis < 3; axis++)
        dftAxis(data, grid, axis, sign);
}

/** weight[j] = M_5(f + j) and dweight[j] = M_5'(f + j), j = 0..4 (see pmeStencil): the recursion unrolled. */
void splineWeights(double f, double weight[Order], double dweight[Order]) {
    static_assert(Order == 5, "the unrolled recursion is for order 5");
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
        splineWeights(f, weight + d * Order, dweight + d * Order);
        for (int j = 0; j < Order; j++)
            index[d * Order + j] = first - j >= 0 ? first - j : first - j + grid[d];
    }
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

vector<double> OpenMMENN::pmeSplineModuli(int K) {
    vector<double> moduli(K);
    double atIntegers[Order], unused[Order];
    splineWeights(0.0, atIntegers, unused); // M_5(j) for j = 0..4
    for (int m = 0; m < K; m++) {
        Complex sum = 0;
        for (int j = 0; j <= Order - 2; j++)
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

double OpenMMENN::pmeReciprocal(const vector<Vec3>& pos, const vector<double>& q, const Vec3* box, double alpha, const int grid[3],
                                vector<Vec3>* forces, vector<double>* potential) {
    checkSizes(pos, q);
    Vec3 recip[3];
    reciprocalVectors(box, recip);
    const int n = static_cast<int>(pos.size());
    const size_t gridSize = size_t(grid[0]) * grid[1] * grid[2];
    // Each atom's n^3 stencil: grid indices and weights per axis, with derivatives.
    vector<int> index(size_t(n) * 3 * Order);
    vector<double> weight(size_t(n) * 3 * Order), dweight(size_t(n) * 3 * Order);
    for (int i = 0; i < n; i++) {
        const size_t at = size_t(i) * 3 * Order;
        pmeStencil(pos[i], recip, grid, &index[at], &weight[at], &dweight[at]);
    }
    auto forEachStencilPoint = [&](int i, auto visit) {
        const size_t b = size_t(i) * 3 * Order;
        for (int a = 0; a < Order; a++)
            for (int c = 0; c < Order; c++)
                for (int e = 0; e < Order; e++) {
                    const size_t k = (size_t(index[b + a]) * grid[1] + index[b + Order + c]) * grid[2] + index[b + 2 * Order + e];
                    visit(k, weight[b + a], weight[b + Order + c], weight[b + 2 * Order + e], dweight[b + a], dweight[b + Order + c],
                          dweight[b + 2 * Order + e]);
                }
    };
    vector<Complex> Q(gridSize, 0.0);
    for (int i = 0; i < n; i++)
        forEachStencilPoint(i, [&](size_t k, double wx, double wy, double wz, double, double, double) { Q[k] += q[i] * wx * wy * wz; });
    dft3d(Q, grid, 1);
    const vector<double> moduli[3] = {pmeSplineModuli(grid[0]), pmeSplineModuli(grid[1]), pmeSplineModuli(grid[2])};
    vector<double> influence(gridSize);
    pmeInfluence(box, alpha, grid, moduli, 0, grid[0], influence.data());
    double energy = 0.0;
    for (size_t k = 0; k < gridSize; k++) {
        energy += 0.5 * influence[k] * std::norm(Q[k]);
        Q[k] *= influence[k];
    }
    dft3d(Q, grid, -1); // Q now holds theta(k), the potential on the grid
    for (int i = 0; i < n; i++) {
        double phi = 0.0;
        Vec3 gradU;
        forEachStencilPoint(i, [&](size_t k, double wx, double wy, double wz, double dx, double dy, double dz) {
            const double theta = Q[k].real();
            phi += theta * wx * wy * wz;
            gradU += Vec3(dx * wy * wz, wx * dy * wz, wx * wy * dz) * theta;
        });
        if (potential)
            (*potential)[i] = phi;
        if (forces)
            (*forces)[i] -= (recip[0] * (gradU[0] * grid[0]) + recip[1] * (gradU[1] * grid[1]) + recip[2] * (gradU[2] * grid[2])) * q[i];
    }
    return energy;
}

double OpenMMENN::ewaldReciprocal(const vector<Vec3>& pos, const vector<double>& q, const Vec3* box, double alpha, int kmax,
                                  vector<Vec3>* forces, vector<double>* potential) {
    checkSizes(pos, q);
    Vec3 recip[3];
    reciprocalVectors(box, recip);
    const double prefactor = ONE_4PI_EPS0 / (M_PI * boxVolume(box));
    const int n = static_cast<int>(pos.size());
    double energy = 0.0;
    if (potential)
        potential->assign(n, 0.0);
    vector<Complex> phase(n);
    for (int a = -kmax; a <= kmax; a++)
        for (int b = -kmax; b <= kmax; b++)
            for (int c = -kmax; c <= kmax; c++) {
                if (a == 0 && b == 0 && c == 0)
                    continue;
                const Vec3 m = recip[0] * a + recip[1] * b + recip[2] * c;
                const double g = prefactor * ewaldKernel(m, alpha);
                Complex S = 0.0;
                for (int i = 0; i < n; i++) {
                    phase[i] = std::polar(1.0, 2 * M_PI * m.dot(pos[i]));
                    S += q[i] * phase[i];
                }
                energy += 0.5 * g * std::norm(S);
                for (int i = 0; i < n; i++) {
                    const Complex t = std::conj(S) * phase[i]; // d|S|^2/dq_i = 2 Re(t)
                    if (potential)
                        (*potential)[i] += g * t.real();
                    if (forces)
                        (*forces)[i] += m * (2 * M_PI * g * q[i] * t.imag());
                }
            }
    return energy;
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
