#ifndef OPENMM_COMMON_ENN_POLAR_MESH_H_
#define OPENMM_COMMON_ENN_POLAR_MESH_H_

// The structure factor of the MM charges a PolarMACE region is coupled to in a periodic cell, and its gradient, on a mesh
// on the GPU (kernels/ennPolarMesh.cc): the device counterpart of CpuENNPolarMesh, on the same grid (PolarMeshGrid:
// order-5 B-splines, 8x finer than the k set's reach), O(N_MM + grid x kept frequencies) instead of the exact sums'
// O(N_k x N_MM). The charges are spread on a fixed-point grid (64-bit atomic adds); the DFT is pruned to the kept
// frequencies one axis at a time (z rows of the whole grid into z frequencies 0 .. reach, the grid being real; y columns at
// those; x columns at the kept (y, z)), and the gradient runs the same stages backwards into a real grid, then each
// charge's stencil derivatives. Memory: 16 bytes a grid point in double (the fixed-point grid and the real Phi), the rest
// a fraction of it. Arithmetic in the
// context's `real`; the kept frequencies (a few thousand values) go to the host, which deconvolves them in double.

#include "CommonENNDeviceWork.h"
#include "ENNPolarHead.h"
#include "openmm/common/ComputeArray.h"
#include "openmm/common/ComputeContext.h"
#include "openmm/common/ComputeKernel.h"
#include <complex>
#include <vector>

namespace OpenMMENN {

class CommonENNPolarMesh : public ENNStructureFactor {
public:
    CommonENNPolarMesh(OpenMM::ComputeContext& cc, DeviceWork& deviceWork);
    /** Whether the device can spread charges (64-bit atomic adds); without them, use the exact sums
     *  (CommonENNPolarStructureFactor). */
    bool usable() const { return atomics; }
    void compute(const OpenMM::Vec3* box, const std::vector<OpenMM::Vec3>& positions, const std::vector<double>& charges,
                 const std::vector<OpenMM::Vec3>& k, std::vector<double>& re, std::vector<double>& im) override;
    void gradient(const std::vector<double>& gRe, const std::vector<double>& gIm, std::vector<OpenMM::Vec3>& gradient) override;
    /** Grid points along each axis (after a compute). */
    const int* gridSize() const { return grid; }

private:
    /** The grid for the cell and k vectors (new arrays where its size or reach changes). */
    void prepare(const OpenMM::Vec3* box, const std::vector<OpenMM::Vec3>& k);
    /** One stage of the pruned DFT along `axis` (polarMeshAxis). */
    void axisStage(OpenMM::ComputeArray& in, OpenMM::ComputeArray& out, int axis, int outer, int inner, bool toFrequencies, bool realOut);
    /** Sets a spreading or gradient kernel's cell and grid arguments (1 .. 7). */
    void setGridArgs(OpenMM::ComputeKernel& kernel);
    OpenMM::ComputeContext& cc;
    DeviceWork& deviceWork;
    bool atomics = false;
    // per axis: the grid's size, the k set's reach, and how many frequencies are kept (x and y: -reach .. reach; z: 0 ..
    // reach, the grid being real)
    int grid[3] = {0, 0, 0}, reach[3] = {-1, -1, -1}, kept[3] = {0, 0, 0}, numCharges = 0;
    OpenMM::Vec3 recip[3];
    std::vector<int> compactIndex;                    // per k vector: its place among the kept frequencies (PolarMeshGrid's n)
    std::vector<bool> conjugate;                      // per k vector: PolarMeshGrid's
    std::vector<std::complex<double>> splineFactor;    // per k vector: 1 / prod_a Bhat_a(n_a)
    // positions (real4, charge in w); the fixed-point grid; the z rows at the kept z and the y columns at the kept (y, z)
    // (complex, as pairs of reals); the kept frequencies; the gradient's real grid Phi; each axis's twiddles; the charges'
    // gradients (mixed)
    OpenMM::ComputeArray positions, fixedGrid, rows, columns, frequencies, potential, twiddles[3], gradients;
    OpenMM::ComputeKernel spreadKernel, rowsKernel, axisKernel, gradientKernel;
};

} // namespace OpenMMENN

#endif
