#include "openmmenn/ENNKernels.h"
#include "ReferenceENNKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/KernelFactory.h"
#include "openmm/internal/windowsExport.h"

using namespace OpenMMENN;

namespace {
class ReferenceENNKernelFactory : public OpenMM::KernelFactory {
public:
    OpenMM::KernelImpl* createKernelImpl(std::string name, const OpenMM::Platform& platform, OpenMM::ContextImpl&) const override {
        if (name == CalcENNForceKernel::Name())
            return new ReferenceCalcENNForceKernel(name, platform);
        throw OpenMM::OpenMMException("ReferenceENNKernelFactory: no kernel named " + name);
    }
};
} // namespace

extern "C" OPENMM_EXPORT void registerENNReferenceKernelFactories() {
    // Only the platform named "Reference": registering on others (CPU) would replace their own kernels.
    for (int i = 0; i < OpenMM::Platform::getNumPlatforms(); i++) {
        OpenMM::Platform& platform = OpenMM::Platform::getPlatform(i);
        if (platform.getName() == "Reference")
            platform.registerKernelFactory(CalcENNForceKernel::Name(), new ReferenceENNKernelFactory());
    }
}

extern "C" OPENMM_EXPORT void registerKernelFactories() {
    registerENNReferenceKernelFactories();
}
