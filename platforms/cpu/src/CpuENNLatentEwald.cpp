#include "CpuENNLatentEwald.h"
#include "CpuENNParallel.h"
#include <algorithm>
#include <cmath>

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::complex;
using std::vector;

double CpuENNLatentEwald::compute(const vector<Vec3>& positions, const Vec3 box[3], const vector<double>& q, vector<double>& phi,
                                  vector<Vec3>& gradient, OpenMM::ThreadPool& pool) {
    if (set.k.empty() || !sameBox(box, setBox)) {
        set = latentEwaldKSet(model, box);
        for (int a = 0; a < 3; a++)
            setBox[a] = box[a];
        runStart.assign(1, 0);
        for (size_t m = 1; m <= set.k.size(); m++)
            if (m == set.k.size() || set.n[3 * m] != set.n[3 * m - 3] || set.n[3 * m + 1] != set.n[3 * m - 2])
                runStart.push_back(static_cast<int>(m));
    }
    const int N = static_cast<int>(positions.size()), M = static_cast<int>(set.k.size()), runs = static_cast<int>(runStart.size()) - 1;
    for (int a = 0; a < 3; a++) {
        const int K = set.maxIndex[a];
        powers[a].resize(size_t(2 * K + 1) * N);
        for (int i = 0; i < N; i++) {
            const double phase = set.reciprocal[a].dot(positions[i]);
            for (int n = -K; n <= K; n++) // (directly, not by repeated products: no error grows with n)
                powers[a][size_t(n + K) * N + i] = complex<double>(std::cos(n * phase), std::sin(n * phase));
        }
    }
    auto power = [&](int a, int n) { return &powers[a][size_t(n + set.maxIndex[a]) * N]; };
    // exp(i k.r_i) of run r's (n_0, n_1) for atoms i0 .. i1, into e01[0 .. i1 - i0).
    auto runPhases = [&](int r, int i0, int i1, vector<complex<double>>& e01) {
        const int m = runStart[r];
        const complex<double>*p0 = power(0, set.n[3 * m]), *p1 = power(1, set.n[3 * m + 1]);
        e01.resize(std::max<size_t>(e01.size(), i1 - i0));
        for (int i = i0; i < i1; i++)
            e01[i - i0] = p0[i] * p1[i];
    };
    structureRe.assign(M, 0.0);
    structureIm.assign(M, 0.0);
    vector<vector<complex<double>>> e01(pool.getNumThreads());
    parallelFor(pool, runs, [&](int r, int thread) {
        runPhases(r, 0, N, e01[thread]);
        for (int m = runStart[r]; m < runStart[r + 1]; m++) {
            const complex<double>* p2 = power(2, set.n[3 * m + 2]);
            double re = 0.0, im = 0.0;
            for (int i = 0; i < N; i++) {
                const complex<double> e = e01[thread][i] * p2[i];
                re += q[i] * e.real();
                im += q[i] * e.imag();
            }
            structureRe[m] = re;
            structureIm[m] = im;
        }
    });
    double energy = 0.0;
    for (int m = 0; m < M; m++) // in k order, whatever the threads
        energy += set.weight[m] * (structureRe[m] * structureRe[m] + structureIm[m] * structureIm[m]);
    // The potentials and forces by blocks of atoms, each over every k vector: every output written by one chunk.
    const int block = 64, blocks = (N + block - 1) / block;
    parallelFor(pool, blocks, [&](int chunk, int thread) {
        const int i0 = chunk * block, i1 = std::min(N, i0 + block);
        double tphi[block] = {}, tgrad[3][block] = {};
        for (int r = 0; r < runs; r++) {
            runPhases(r, i0, i1, e01[thread]);
            const complex<double>* e01Block = e01[thread].data();
            for (int m = runStart[r]; m < runStart[r + 1]; m++) {
                const complex<double>* p2 = power(2, set.n[3 * m + 2]);
                const double a = 2 * set.weight[m] * structureRe[m], b = 2 * set.weight[m] * structureIm[m];
                const Vec3& k = set.k[m];
                for (int i = i0; i < i1; i++) {
                    const complex<double> e = e01Block[i - i0] * p2[i];
                    tphi[i - i0] += a * e.real() + b * e.imag();
                    const double g = q[i] * (b * e.real() - a * e.imag());
                    tgrad[0][i - i0] += g * k[0];
                    tgrad[1][i - i0] += g * k[1];
                    tgrad[2][i - i0] += g * k[2];
                }
            }
        }
        for (int i = i0; i < i1; i++) {
            phi[i] += tphi[i - i0] - 2 * set.selfCoefficient * q[i];
            gradient[i] += Vec3(tgrad[0][i - i0], tgrad[1][i - i0], tgrad[2][i - i0]);
        }
    });
    for (int i = 0; i < N; i++)
        energy -= set.selfCoefficient * q[i] * q[i];
    return energy;
}
