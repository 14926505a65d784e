#ifndef OPENMM_COMMON_ENN_DEVICE_WORK_H_
#define OPENMM_COMMON_ENN_DEVICE_WORK_H_

// What the ENNForce queues on a GPU, counted where it is queued: for a small ML region the step is bound by
// launches and host round trips, not arithmetic (docs/gpu.md). Every kernel launch of the plugin goes through
// launch(), every buffer clear through clear() (OpenMM runs a kernel for it), every transform through fft()
// (OpenMM's FFT launches kernels of its own, counted here as one call), every host-device copy of a step through
// transfer(). With the environment variable OPENMM_ENN_DEVICE_WORK set, a Context reports its counts per step on
// standard error when it is destroyed.

#include "openmm/common/ComputeArray.h"
#include "openmm/common/ComputeContext.h"
#include "openmm/common/ComputeKernel.h"
#include <cstdio>
#include <cstdlib>
#include <string>

namespace OpenMMENN {

class DeviceWork {
public:
    long long launches = 0, clears = 0, ffts = 0, transfers = 0, steps = 0;

    void launch(OpenMM::ComputeKernel& kernel, int threads, int blockSize = -1) {
        kernel->execute(threads, blockSize);
        launches++;
    }
    void clear(OpenMM::ComputeContext& cc, OpenMM::ArrayInterface& array) {
        cc.clearBuffer(array);
        clears++;
    }
    void fft() { ffts++; }
    void transfer() { transfers++; }

    /** The line OPENMM_ENN_DEVICE_WORK asks for, or nothing; `platform` names the Context's platform. */
    void report(const std::string& platform) const {
        if (std::getenv("OPENMM_ENN_DEVICE_WORK") == nullptr || steps == 0)
            return;
        std::fprintf(stderr, "ENNForce device work on %s: %lld steps; per step %.1f kernel launches, %.1f buffer clears, %.1f FFTs, %.1f transfers\n",
                     platform.c_str(), steps, double(launches) / steps, double(clears) / steps, double(ffts) / steps, double(transfers) / steps);
    }
};

} // namespace OpenMMENN

#endif
