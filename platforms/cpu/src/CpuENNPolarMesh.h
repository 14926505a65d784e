#ifndef OPENMM_CPU_ENN_POLAR_MESH_H_
#define OPENMM_CPU_ENN_POLAR_MESH_H_

// The structure factor of the MM charges a PolarMACE region is coupled to in a periodic cell, on a mesh (smooth PME's
// B-spline interpolation, order 5, and FFTW), for the CPU platform: O(N log N) instead of the exact sum over every k
// vector and every MM charge. Double precision; the grid oversamples the model's k vectors 8-fold, so that the
// interpolation error, (1/7)^5 of S at the largest k and less below, is far under the platform's float tolerances.
// Only the grid's low frequencies are read (|n_a| <= the k set's reach, about a quarter of each axis), so the 3D
// transform is pruned: rows along z for the whole grid, then y columns only at the kept z frequencies, then x columns
// only at the kept (y, z) ones (about 0.44 of a full transform), each stage shared out over the pool's threads.

#include "ENNPolarHead.h"
#include "openmm/internal/ThreadPool.h"
#include <complex>
#include <fftw3.h>
#include <functional>
#include <vector>

namespace OpenMMENN {

class CpuENNPolarMesh : public ENNStructureFactor {
public:
    ~CpuENNPolarMesh() override;
    /** The pool the next compute and gradient run on (null: the calling thread alone). */
    void setThreads(OpenMM::ThreadPool* pool) { threads = pool; }
    void compute(const OpenMM::Vec3* box, const std::vector<OpenMM::Vec3>& positions, const std::vector<double>& charges,
                 const std::vector<OpenMM::Vec3>& k, std::vector<double>& re, std::vector<double>& im) override;
    void gradient(const std::vector<double>& gRe, const std::vector<double>& gIm, std::vector<OpenMM::Vec3>& gradient) override;
    /** Grid points along each axis (after a compute). */
    const int* gridSize() const { return grid; }

private:
    /** A grid for the given cell and k vectors (new plans where its size or the k set's reach changes). */
    void prepare(const OpenMM::Vec3* box, const std::vector<OpenMM::Vec3>& k);
    void destroyPlans();
    /** The forward 3D transform of `data` at the kept frequencies: z rows, y columns, x columns (lowFrequenciesIn:
     *  the input is zero outside them, so the stages run the other way round and the output is the whole grid). */
    void transform(bool lowFrequenciesIn);
    /** run(i) for i = 0 .. count - 1 on the pool. */
    void forEach(int count, const std::function<void(int)>& run);
    int grid[3] = {0, 0, 0}, reach[3] = {-1, -1, -1};
    // Plans, forward (sign -1), applied in place anywhere in `data` (FFTW_UNALIGNED): the z rows of one x plane; y
    // columns and x columns, one plan per block of kept z frequencies (0 .. reach, then grid - reach .. grid - 1).
    fftw_plan rows = nullptr, columns[2] = {nullptr, nullptr}, depths[2] = {nullptr, nullptr};
    int blockStart[2] = {0, 0}, blockCount[2] = {0, 0};
    std::vector<int> keptY; // the kept y frequencies' grid indices
    std::vector<std::complex<double>> data;
    OpenMM::Vec3 recip[3];
    std::vector<int> index;                        // per k vector: its grid point
    std::vector<std::complex<double>> splineFactor; // per k vector: 1 / prod_a Bhat_a(n_a)
    const std::vector<OpenMM::Vec3>* positions = nullptr;
    const std::vector<double>* charges = nullptr;
    OpenMM::ThreadPool* threads = nullptr;
};

} // namespace OpenMMENN

#endif
