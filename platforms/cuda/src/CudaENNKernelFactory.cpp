// Registers the common-compute ENNForce kernel on the CUDA platform.
#include "openmmenn/ENNKernels.h"
#include "CommonENNKernels.h"
#include "CudaContext.h"
#include "CudaPlatform.h"
#include "openmm/KernelFactory.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/internal/windowsExport.h"

using namespace OpenMMENN;

namespace {
class CudaENNKernelFactory : public OpenMM::KernelFactory {
public:
    OpenMM::KernelImpl* createKernelImpl(std::string name, const OpenMM::Platform& platform, OpenMM::ContextImpl& context) const override {
        OpenMM::CudaPlatform::PlatformData& data = *static_cast<OpenMM::CudaPlatform::PlatformData*>(context.getPlatformData());
        if (name == CalcENNForceKernel::Name())
            return new CommonCalcENNForceKernel(name, platform, *data.contexts[0]);
        throw OpenMM::OpenMMException("CudaENNKernelFactory: no kernel named " + name);
    }
};
} // namespace

// OpenMM's plugin loader looks up registerPlatforms with dlsym, which also searches the libraries a
// plugin links; without this definition it would find libOpenMMCUDA's and register CUDA twice.
extern "C" OPENMM_EXPORT void registerPlatforms() {}

extern "C" OPENMM_EXPORT void registerENNCudaKernelFactories() {
    for (int i = 0; i < OpenMM::Platform::getNumPlatforms(); i++) {
        OpenMM::Platform& platform = OpenMM::Platform::getPlatform(i);
        if (platform.getName() == "CUDA")
            platform.registerKernelFactory(CalcENNForceKernel::Name(), new CudaENNKernelFactory());
    }
}

extern "C" OPENMM_EXPORT void registerKernelFactories() {
    registerENNCudaKernelFactories();
}
