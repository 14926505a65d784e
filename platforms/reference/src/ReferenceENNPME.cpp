#include "ReferenceENNPME.h"
#include "ENNPeriodicGeometry.h"
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

} // namespace

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
