#ifndef OPENMM_COMMON_ENN_KERNEL_FACTORY_H_
#define OPENMM_COMMON_ENN_KERNEL_FACTORY_H_

// The kernel factory of the GPU plugins: the same for CUDA and OpenCL except for the platform's
// PlatformData type (which holds the ComputeContext) and the platform's name.

#include "openmmenn/ENNKernels.h"
#include "CommonENNKernels.h"
#include "openmm/KernelFactory.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/internal/ContextImpl.h"
#include <string>

namespace OpenMMENN {

template <class PlatformData>
class CommonENNKernelFactory : public OpenMM::KernelFactory {
public:
    OpenMM::KernelImpl* createKernelImpl(std::string name, const OpenMM::Platform& platform, OpenMM::ContextImpl& context) const override {
        PlatformData& data = *static_cast<PlatformData*>(context.getPlatformData());
        if (name == CalcENNForceKernel::Name())
            return new CommonCalcENNForceKernel(name, platform, *data.contexts[0]);
        throw OpenMM::OpenMMException("ENNForce GPU kernel factory: no kernel named " + name);
    }
};

/** Registers the factory on every platform named `platformName`. */
template <class PlatformData>
void registerCommonENNKernelFactory(const std::string& platformName) {
    for (int i = 0; i < OpenMM::Platform::getNumPlatforms(); i++) {
        OpenMM::Platform& platform = OpenMM::Platform::getPlatform(i);
        if (platform.getName() == platformName)
            platform.registerKernelFactory(CalcENNForceKernel::Name(), new CommonENNKernelFactory<PlatformData>());
    }
}

} // namespace OpenMMENN

#endif
