#ifndef OPENMM_CPU_ENN_POLAR_MESH_H_
#define OPENMM_CPU_ENN_POLAR_MESH_H_

// The structure factor of the MM charges a PolarMACE region is coupled to in a periodic cell, on a mesh (smooth PME's
// B-spline interpolation, order 5, and FFTW), for the CPU platform: O(N log N) instead of the exact sum over every k
// vector and every MM charge. Double precision; the grid oversamples the model's k vectors 8-fold, so that the
// interpolation error, (1/7)^5 of S at the largest k and less below, is far under the platform's float tolerances.
// Only the grid's low frequencies are read (|n_a| <= the k set's reach, an eighth of each axis), so the 3D transform is
// pruned: z rows of the whole grid, real to complex, then y columns only at the kept z frequencies 0 .. reach (the grid
// is real: F(-n) = conj F(n)), then x columns only at the kept (y, z) ones, each stage shared out over the pool's
// threads; the gradient runs them backwards, ending complex to real.

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
    /** The 3D transform of the real grid in `data` at the kept frequencies (z: 0 .. reach; the rest are conjugates): z rows
     *  real to complex, y columns, x columns; lowFrequenciesIn: backwards from the kept frequencies to the whole real grid
     *  (x columns, y columns, z rows complex to real), the same sign. */
    void transform(bool lowFrequenciesIn);
    /** run(i) for i = 0 .. count - 1 on the pool. */
    void forEach(int count, const std::function<void(int)>& run);
    int grid[3] = {0, 0, 0}, reach[3] = {-1, -1, -1}, rowLength = 0;
    // Plans, applied in place anywhere in `data` (FFTW_UNALIGNED): one x plane's z rows, real to complex (sign -) and
    // complex to real (sign +); one x plane's y columns and one kept y's x columns at the kept z frequencies (sign -).
    fftw_plan rows = nullptr, rowsBack = nullptr, columns = nullptr, depths = nullptr;
    std::vector<int> keptY; // the kept y frequencies' grid indices
    // x planes of y rows of rowLength = grid[2] / 2 + 1 complex values: the real grid, each row padded, or its transform
    std::vector<std::complex<double>> data;
    OpenMM::Vec3 recip[3];
    std::vector<size_t> index;                     // per k vector: its grid point (PolarMeshGrid's n, n_2 >= 0)
    std::vector<bool> conjugate;                   // per k vector: PolarMeshGrid's
    std::vector<std::complex<double>> splineFactor; // per k vector: 1 / prod_a Bhat_a(n_a)
    const std::vector<OpenMM::Vec3>* positions = nullptr;
    const std::vector<double>* charges = nullptr;
    OpenMM::ThreadPool* threads = nullptr;
};

} // namespace OpenMMENN

#endif
