#ifndef OPENMM_CPU_ENN_POLAR_MESH_H_
#define OPENMM_CPU_ENN_POLAR_MESH_H_

// The structure factor of the MM charges a PolarMACE region is coupled to in a periodic cell, on a mesh (smooth PME's
// B-spline interpolation, order 5, and FFTW), for the CPU platform: O(N log N) instead of the exact sum over every k
// vector and every MM charge. Double precision; the grid oversamples the model's k vectors 8-fold, so that the
// interpolation error, (1/7)^5 of S at the largest k and less below, is far under the platform's float tolerances.

#include "ENNPolarHead.h"
#include <complex>
#include <fftw3.h>
#include <vector>

namespace OpenMMENN {

class CpuENNPolarMesh : public ENNStructureFactor {
public:
    ~CpuENNPolarMesh() override;
    void compute(const OpenMM::Vec3* box, const std::vector<OpenMM::Vec3>& positions, const std::vector<double>& charges,
                 const std::vector<OpenMM::Vec3>& k, std::vector<double>& re, std::vector<double>& im) override;
    void gradient(const std::vector<double>& gRe, const std::vector<double>& gIm, std::vector<OpenMM::Vec3>& gradient) override;
    /** Grid points along each axis (after a compute). */
    const int* gridSize() const { return grid; }

private:
    /** A grid of `size` points for the given cell and k vectors (a new plan where the size changes). */
    void prepare(const OpenMM::Vec3* box, const std::vector<OpenMM::Vec3>& k);
    int grid[3] = {0, 0, 0};
    fftw_plan plan = nullptr; // forward (sign -1), in place on `data`
    std::vector<std::complex<double>> data;
    OpenMM::Vec3 recip[3];
    std::vector<int> index;                        // per k vector: its grid point
    std::vector<std::complex<double>> splineFactor; // per k vector: 1 / prod_a Bhat_a(n_a)
    const std::vector<OpenMM::Vec3>* positions = nullptr;
    const std::vector<double>* charges = nullptr;
};

} // namespace OpenMMENN

#endif
