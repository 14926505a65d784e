#include "openmmenn/ENNKernels.h"
#include "CpuENNKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/KernelFactory.h"
#include "openmm/internal/windowsExport.h"

using namespace OpenMMENN;

namespace {
class CpuENNKernelFactory : public OpenMM::KernelFactory {
public:
    OpenMM::KernelImpl* createKernelImpl(std::string name, const OpenMM::Platform& platform, OpenMM::ContextImpl&) const override {
        if (name == CalcENNForceKernel::Name())
            return new CpuCalcENNForceKernel(name, platform);
        throw OpenMM::OpenMMException("CpuENNKernelFactory: no kernel named " + name);
    }
};
} // namespace

extern "C" OPENMM_EXPORT void registerENNCpuKernelFactories() {
    for (int i = 0; i < OpenMM::Platform::getNumPlatforms(); i++) {
        OpenMM::Platform& platform = OpenMM::Platform::getPlatform(i);
        if (platform.getName() == "CPU")
            platform.registerKernelFactory(CalcENNForceKernel::Name(), new CpuENNKernelFactory());
    }
}

// OpenMM's plugin loader looks up registerPlatforms in every plugin with dlsym, which also searches the
// libraries a plugin links. Without this definition it would find libOpenMMCPU's and register the CPU
// platform a second time.
extern "C" OPENMM_EXPORT void registerPlatforms() {}

extern "C" OPENMM_EXPORT void registerKernelFactories() {
    registerENNCpuKernelFactories();
}
