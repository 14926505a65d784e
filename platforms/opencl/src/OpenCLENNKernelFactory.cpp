// Registers the common-compute ENNForce kernel on the OpenCL platform.
#include "CommonENNKernelFactory.h"
#include "OpenCLContext.h"
#include "OpenCLPlatform.h"
#include "openmm/internal/windowsExport.h"

// OpenMM's plugin loader looks up registerPlatforms with dlsym, which also searches the libraries a
// plugin links; without this definition it would find libOpenMMOpenCL's and register OpenCL twice.
extern "C" OPENMM_EXPORT void registerPlatforms() {}

extern "C" OPENMM_EXPORT void registerENNOpenCLKernelFactories() {
    OpenMMENN::registerCommonENNKernelFactory<OpenMM::OpenCLPlatform::PlatformData>("OpenCL");
}

extern "C" OPENMM_EXPORT void registerKernelFactories() {
    registerENNOpenCLKernelFactories();
}
