#include "CpuENNPolarMesh.h"
#include "CpuENNParallel.h"
#include "ENNEwald.h"
#include "ENNPeriodicGeometry.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cmath>

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::vector;
typedef std::complex<double> Complex;

CpuENNPolarMesh::~CpuENNPolarMesh() {
    std::lock_guard<std::mutex> lock(fftwPlannerMutex());
    destroyPlans();
}

void CpuENNPolarMesh::destroyPlans() {
    for (fftw_plan* plan : {&rows, &rowsBack, &columns, &depths}) {
        if (*plan != nullptr)
            fftw_destroy_plan(*plan);
        *plan = nullptr;
    }
}

void CpuENNPolarMesh::forEach(int count, const std::function<void(int)>& run) {
    if (threads == nullptr) {
        for (int i = 0; i < count; i++)
            run(i);
        return;
    }
    parallelFor(*threads, count, [&](int i, int) { run(i); });
}

void CpuENNPolarMesh::prepare(const Vec3* box, const vector<Vec3>& k) {
    reciprocalVectors(box, recip); // recip[a] . box[b] = delta_ab: k = 2 pi sum_a n_a recip[a]
    const PolarMeshGrid mesh(box, k);
    if (!std::equal(mesh.size, mesh.size + 3, grid) || !std::equal(mesh.reach, mesh.reach + 3, reach)) {
        std::lock_guard<std::mutex> lock(fftwPlannerMutex());
        destroyPlans();
        std::copy(mesh.size, mesh.size + 3, grid);
        std::copy(mesh.reach, mesh.reach + 3, reach);
        rowLength = grid[2] / 2 + 1;
        data.assign(size_t(grid[0]) * grid[1] * rowLength, 0.0);
        fftw_complex* raw = reinterpret_cast<fftw_complex*>(data.data());
        double* realRaw = reinterpret_cast<double*>(data.data());
        const int flags = FFTW_ESTIMATE | FFTW_UNALIGNED, plane = grid[1] * rowLength, padded = 2 * rowLength, kept = reach[2] + 1;
        // one x plane's z rows, real to complex and back (in place, each row padded to rowLength complex values)
        rows = fftw_plan_many_dft_r2c(1, &grid[2], grid[1], realRaw, &padded, 1, padded, raw, &rowLength, 1, rowLength, flags);
        rowsBack = fftw_plan_many_dft_c2r(1, &grid[2], grid[1], raw, &rowLength, 1, rowLength, realRaw, &padded, 1, padded, flags);
        // one x plane's y columns at the kept z frequencies; one kept y's x columns at them
        columns = fftw_plan_many_dft(1, &grid[1], kept, raw, nullptr, rowLength, 1, raw, nullptr, rowLength, 1, FFTW_FORWARD, flags);
        depths = fftw_plan_many_dft(1, &grid[0], kept, raw, nullptr, plane, 1, raw, nullptr, plane, 1, FFTW_FORWARD, flags);
        if (rows == nullptr || rowsBack == nullptr || columns == nullptr || depths == nullptr)
            throw OpenMM::OpenMMException("ENNForce: FFTW could not plan the PolarMACE mesh transform");
        keptY.clear();
        for (int y = 0; y < grid[1]; y++)
            if (y <= reach[1] || y >= grid[1] - reach[1])
                keptY.push_back(y);
    }
    index.resize(k.size());
    for (size_t i = 0; i < k.size(); i++) { // (n_2 >= 0: PolarMeshGrid's)
        const int* n = &mesh.n[3 * i];
        const int g0 = (n[0] % grid[0] + grid[0]) % grid[0], g1 = (n[1] % grid[1] + grid[1]) % grid[1];
        index[i] = (size_t(g0) * grid[1] + g1) * rowLength + n[2];
    }
    conjugate = mesh.conjugate;
    splineFactor = mesh.splineFactor;
}

void CpuENNPolarMesh::transform(bool lowFrequenciesIn) {
    // A DFT along each axis in turn; the axes commute, so each stage needs only the lines the others read or fill. The
    // grid is real: z rows real to complex, keeping z frequencies 0 .. reach (the others are their conjugates).
    fftw_complex* raw = reinterpret_cast<fftw_complex*>(data.data());
    double* realRaw = reinterpret_cast<double*>(data.data());
    const size_t plane = size_t(grid[1]) * rowLength;
    auto yColumns = [&]() { forEach(grid[0], [&](int x) { fftw_execute_dft(columns, raw + plane * x, raw + plane * x); }); };
    auto xColumns = [&]() {
        forEach(static_cast<int>(keptY.size()), [&](int i) {
            fftw_complex* at = raw + size_t(keptY[i]) * rowLength;
            fftw_execute_dft(depths, at, at);
        });
    };
    if (lowFrequenciesIn) {
        xColumns();
        yColumns();
        // Re sum_m B(m) e^{-i m z} = sum_m Re(conj B(m) e^{+i m z}): the complex-to-real transform (sign +) of conj B,
        // halved above m = 0 (it adds each m > 0 and its conjugate partner)
        forEach(grid[0], [&](int x) {
            for (int y = 0; y < grid[1]; y++) {
                Complex* row = &data[plane * x + size_t(y) * rowLength];
                row[0] = std::conj(row[0]);
                for (int m = 1; m <= reach[2]; m++)
                    row[m] = 0.5 * std::conj(row[m]);
            }
            fftw_execute_dft_c2r(rowsBack, raw + plane * x, realRaw + 2 * plane * x);
        });
    } else {
        forEach(grid[0], [&](int x) { fftw_execute_dft_r2c(rows, realRaw + 2 * plane * x, raw + plane * x); });
        yColumns();
        xColumns();
    }
}

void CpuENNPolarMesh::compute(const Vec3* box, const vector<Vec3>& x, const vector<double>& q, const vector<Vec3>& k, vector<double>& re,
                              vector<double>& im) {
    prepare(box, k);
    positions = &x;
    charges = &q;
    std::fill(data.begin(), data.end(), Complex(0.0));
    double* realGrid = reinterpret_cast<double*>(data.data());
    const size_t padded = 2 * size_t(rowLength);
    int stencil[3 * PMEOrder];
    double weight[3 * PMEOrder], dweight[3 * PMEOrder];
    for (size_t m = 0; m < x.size(); m++) { // Q(g) = sum_m q_m prod_a M_5(K_a u_a - g_a)
        pmeStencil(x[m], recip, grid, stencil, weight, dweight);
        for (int i = 0; i < PMEOrder; i++)
            for (int j = 0; j < PMEOrder; j++) {
                const double w = q[m] * weight[i] * weight[PMEOrder + j];
                double* row = &realGrid[(size_t(stencil[i]) * grid[1] + stencil[PMEOrder + j]) * padded];
                for (int l = 0; l < PMEOrder; l++)
                    row[stencil[2 * PMEOrder + l]] += w * weight[2 * PMEOrder + l];
            }
    }
    transform(false);
    re.resize(k.size());
    im.resize(k.size());
    for (size_t i = 0; i < k.size(); i++) { // S(n) = F(n) / prod_a Bhat_a(n_a)
        const Complex f = conjugate[i] ? std::conj(data[index[i]]) : data[index[i]];
        const Complex s = f * splineFactor[i];
        re[i] = s.real();
        im[i] = s.imag();
    }
}

void CpuENNPolarMesh::gradient(const vector<double>& gRe, const vector<double>& gIm, vector<Vec3>& gradient) {
    // dE = Re sum_n (gRe - i gIm)(n) dS(n) = sum_g dQ(g) Phi(g), Phi = Re sum_n A(n) exp(-2 pi i n g / K),
    // A(n) = (gRe - i gIm)(n) / prod_a Bhat_a(n_a); a term of n_2 < 0 is Re of conj A(n) at -n. One more transform
    // (to the whole grid, real), then the stencils' gradients.
    std::fill(data.begin(), data.end(), Complex(0.0));
    for (size_t i = 0; i < index.size(); i++) {
        const Complex a = Complex(gRe[i], -gIm[i]) * splineFactor[i];
        data[index[i]] += conjugate[i] ? std::conj(a) : a;
    }
    transform(true);
    const double* phi = reinterpret_cast<const double*>(data.data());
    const size_t padded = 2 * size_t(rowLength);
    const vector<Vec3>& x = *positions;
    const vector<double>& q = *charges;
    gradient.assign(x.size(), Vec3());
    const int chunk = 256;
    forEach(numChunks(static_cast<int>(x.size()), chunk), [&](int c) {
        int first, last;
        chunkRange(c, chunk, static_cast<int>(x.size()), first, last);
        int stencil[3 * PMEOrder];
        double weight[3 * PMEOrder], dweight[3 * PMEOrder];
        for (int m = first; m < last; m++) {
            pmeStencil(x[m], recip, grid, stencil, weight, dweight);
            double d[3] = {0, 0, 0}; // dPhi-weighted sums along u_0, u_1, u_2
            for (int i = 0; i < PMEOrder; i++)
                for (int j = 0; j < PMEOrder; j++) {
                    const double* row = &phi[(size_t(stencil[i]) * grid[1] + stencil[PMEOrder + j]) * padded];
                    for (int l = 0; l < PMEOrder; l++) {
                        const double value = row[stencil[2 * PMEOrder + l]];
                        const double w0 = weight[i], w1 = weight[PMEOrder + j], w2 = weight[2 * PMEOrder + l];
                        d[0] += value * dweight[i] * w1 * w2;
                        d[1] += value * w0 * dweight[PMEOrder + j] * w2;
                        d[2] += value * w0 * w1 * dweight[2 * PMEOrder + l];
                    }
                }
            for (int a = 0; a < 3; a++) // u_a = K_a x . recip[a]
                gradient[m] += recip[a] * (q[m] * d[a] * grid[a]);
        }
    });
}
