// Registers the common-compute ENNForce kernel on the OpenCL platform.
#include "openmmenn/ENNKernels.h"
#include "CommonENNKernels.h"
#include "OpenCLContext.h"
#include "OpenCLPlatform.h"
#include "openmm/KernelFactory.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/internal/windowsExport.h"

using namespace OpenMMENN;

namespace {
class OpenCLENNKernelFactory : public OpenMM::KernelFactory {
public:
    OpenMM::KernelImpl* createKernelImpl(std::string name, const OpenMM::Platform& platform, OpenMM::ContextImpl& context) const override {
        OpenMM::OpenCLPlatform::PlatformData& data = *static_cast<OpenMM::OpenCLPlatform::PlatformData*>(context.getPlatformData());
        if (name == CalcENNForceKernel::Name())
            return new CommonCalcENNForceKernel(name, platform, *data.contexts[0]);
        throw OpenMM::OpenMMException("OpenCLENNKernelFactory: no kernel named " + name);
    }
};
} // namespace

// OpenMM's plugin loader looks up registerPlatforms with dlsym, which also searches the libraries a
// plugin links; without this definition it would find libOpenMMOpenCL's and register OpenCL twice.
extern "C" OPENMM_EXPORT void registerPlatforms() {}

extern "C" OPENMM_EXPORT void registerENNOpenCLKernelFactories() {
    for (int i = 0; i < OpenMM::Platform::getNumPlatforms(); i++) {
        OpenMM::Platform& platform = OpenMM::Platform::getPlatform(i);
        if (platform.getName() == "OpenCL")
            platform.registerKernelFactory(CalcENNForceKernel::Name(), new OpenCLENNKernelFactory());
    }
}

extern "C" OPENMM_EXPORT void registerKernelFactories() {
    registerENNOpenCLKernelFactories();
}
