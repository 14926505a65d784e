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
    for (fftw_plan* plan : {&rows, &columns[0], &columns[1], &depths[0], &depths[1]}) {
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
    const int* size = mesh.size;
    const int* needed = mesh.reach;
    if (!std::equal(size, size + 3, grid) || !std::equal(needed, needed + 3, reach)) {
        std::lock_guard<std::mutex> lock(fftwPlannerMutex());
        destroyPlans();
        std::copy(size, size + 3, grid);
        std::copy(needed, needed + 3, reach);
        data.assign(size_t(grid[0]) * grid[1] * grid[2], 0.0);
        fftw_complex* raw = reinterpret_cast<fftw_complex*>(data.data());
        const int flags = FFTW_ESTIMATE | FFTW_UNALIGNED, plane = grid[1] * grid[2];
        rows = fftw_plan_many_dft(1, &grid[2], grid[1], raw, nullptr, 1, grid[2], raw, nullptr, 1, grid[2], FFTW_FORWARD, flags);
        bool planned = rows != nullptr;
        blockStart[0] = 0;
        blockCount[0] = reach[2] + 1;
        blockStart[1] = grid[2] - reach[2];
        blockCount[1] = reach[2];
        for (int b = 0; b < 2 && blockCount[b] > 0; b++) {
            columns[b] = fftw_plan_many_dft(1, &grid[1], blockCount[b], raw, nullptr, grid[2], 1, raw, nullptr, grid[2], 1, FFTW_FORWARD, flags);
            depths[b] = fftw_plan_many_dft(1, &grid[0], blockCount[b], raw, nullptr, plane, 1, raw, nullptr, plane, 1, FFTW_FORWARD, flags);
            planned = planned && columns[b] != nullptr && depths[b] != nullptr;
        }
        if (!planned)
            throw OpenMM::OpenMMException("ENNForce: FFTW could not plan the PolarMACE mesh transform");
        keptY.clear();
        for (int y = 0; y < grid[1]; y++)
            if (y <= reach[1] || y >= grid[1] - reach[1])
                keptY.push_back(y);
    }
    index.resize(k.size());
    for (size_t i = 0; i < k.size(); i++) {
        int g[3];
        for (int a = 0; a < 3; a++)
            g[a] = ((mesh.n[3 * i + a] % grid[a]) + grid[a]) % grid[a];
        index[i] = (g[0] * grid[1] + g[1]) * grid[2] + g[2];
    }
    splineFactor = mesh.splineFactor;
}

void CpuENNPolarMesh::transform(bool lowFrequenciesIn) {
    // A DFT along each axis in turn; the axes commute, so each stage needs only the lines the others read or fill.
    fftw_complex* raw = reinterpret_cast<fftw_complex*>(data.data());
    const size_t plane = size_t(grid[1]) * grid[2];
    auto zRows = [&]() { forEach(grid[0], [&](int x) { fftw_execute_dft(rows, raw + plane * x, raw + plane * x); }); };
    auto yColumns = [&]() {
        forEach(grid[0], [&](int x) {
            for (int b = 0; b < 2 && blockCount[b] > 0; b++)
                fftw_execute_dft(columns[b], raw + plane * x + blockStart[b], raw + plane * x + blockStart[b]);
        });
    };
    auto xColumns = [&]() {
        forEach(static_cast<int>(keptY.size()), [&](int i) {
            for (int b = 0; b < 2 && blockCount[b] > 0; b++) {
                fftw_complex* at = raw + size_t(keptY[i]) * grid[2] + blockStart[b];
                fftw_execute_dft(depths[b], at, at);
            }
        });
    };
    if (lowFrequenciesIn) {
        xColumns();
        yColumns();
        zRows();
    } else {
        zRows();
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
    int stencil[3 * PMEOrder];
    double weight[3 * PMEOrder], dweight[3 * PMEOrder];
    for (size_t m = 0; m < x.size(); m++) { // Q(g) = sum_m q_m prod_a M_5(K_a u_a - g_a)
        pmeStencil(x[m], recip, grid, stencil, weight, dweight);
        for (int i = 0; i < PMEOrder; i++)
            for (int j = 0; j < PMEOrder; j++) {
                const double w = q[m] * weight[i] * weight[PMEOrder + j];
                Complex* row = &data[(size_t(stencil[i]) * grid[1] + stencil[PMEOrder + j]) * grid[2]];
                for (int l = 0; l < PMEOrder; l++)
                    row[stencil[2 * PMEOrder + l]] += w * weight[2 * PMEOrder + l];
            }
    }
    transform(false);
    re.resize(k.size());
    im.resize(k.size());
    for (size_t i = 0; i < k.size(); i++) { // S(n) = F(n) / prod_a Bhat_a(n_a)
        const Complex s = data[index[i]] * splineFactor[i];
        re[i] = s.real();
        im[i] = s.imag();
    }
}

void CpuENNPolarMesh::gradient(const vector<double>& gRe, const vector<double>& gIm, vector<Vec3>& gradient) {
    // dE = Re sum_n (gRe - i gIm)(n) dS(n) = sum_g dQ(g) Phi(g), Phi = Re sum_n A(n) exp(-2 pi i n g / K),
    // A(n) = (gRe - i gIm)(n) / prod_a Bhat_a(n_a): one more forward transform, then the stencils' gradients.
    std::fill(data.begin(), data.end(), Complex(0.0));
    for (size_t i = 0; i < index.size(); i++)
        data[index[i]] += Complex(gRe[i], -gIm[i]) * splineFactor[i];
    transform(true);
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
                    const Complex* row = &data[(size_t(stencil[i]) * grid[1] + stencil[PMEOrder + j]) * grid[2]];
                    for (int l = 0; l < PMEOrder; l++) {
                        const double phi = row[stencil[2 * PMEOrder + l]].real();
                        const double w0 = weight[i], w1 = weight[PMEOrder + j], w2 = weight[2 * PMEOrder + l];
                        d[0] += phi * dweight[i] * w1 * w2;
                        d[1] += phi * w0 * dweight[PMEOrder + j] * w2;
                        d[2] += phi * w0 * w1 * dweight[2 * PMEOrder + l];
                    }
                }
            for (int a = 0; a < 3; a++) // u_a = K_a x . recip[a]
                gradient[m] += recip[a] * (q[m] * d[a] * grid[a]);
        }
    });
}
