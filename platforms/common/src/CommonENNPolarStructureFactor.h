#ifndef OPENMM_COMMON_ENN_POLAR_STRUCTURE_FACTOR_H_
#define OPENMM_COMMON_ENN_POLAR_STRUCTURE_FACTOR_H_

// The structure factor of the MM charges a PolarMACE region is coupled to in a periodic cell, and its gradient, on the
// GPU (kernels/ennStructureFactors.cc): the exact sums over every k vector and every MM charge, O(N_k x N_MM) but a
// thread per k vector (per charge for the gradient), where the host would take seconds at 20,000 MM atoms. Phases in
// the context's `real`, sums in `mixed`; positions and charges come from the host's polar head each step.

#include "CommonENNDeviceWork.h"
#include "ENNPolarHead.h"
#include "openmm/common/ComputeArray.h"
#include "openmm/common/ComputeContext.h"
#include "openmm/common/ComputeKernel.h"

namespace OpenMMENN {

class CommonENNPolarStructureFactor : public ENNStructureFactor {
public:
    CommonENNPolarStructureFactor(OpenMM::ComputeContext& cc, DeviceWork& deviceWork);
    void compute(const OpenMM::Vec3* box, const std::vector<OpenMM::Vec3>& positions, const std::vector<double>& charges,
                 const std::vector<OpenMM::Vec3>& k, std::vector<double>& re, std::vector<double>& im) override;
    void gradient(const std::vector<double>& gRe, const std::vector<double>& gIm, std::vector<OpenMM::Vec3>& gradient) override;

private:
    /** Sizes the arrays for n charges and K k vectors (at least one of each). */
    void resize(int n, int K);
    OpenMM::ComputeContext& cc;
    DeviceWork& deviceWork;
    int numCharges = 0, numK = 0;
    OpenMM::ComputeArray positions, charges, kvectors, structure, weights, gradients;
    OpenMM::ComputeKernel structureKernel, gradientKernel;
};

} // namespace OpenMMENN

#endif
