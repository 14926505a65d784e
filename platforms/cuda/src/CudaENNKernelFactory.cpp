// Registers the common-compute ENNForce kernel on the CUDA platform.
#include "CommonENNKernelFactory.h"
#include "CudaContext.h"
#include "CudaPlatform.h"
#include "openmm/internal/windowsExport.h"

// OpenMM's plugin loader looks up registerPlatforms with dlsym, which also searches the libraries a
// plugin links; without this definition it would find libOpenMMCUDA's and register CUDA twice.
extern "C" OPENMM_EXPORT void registerPlatforms() {}

extern "C" OPENMM_EXPORT void registerENNCudaKernelFactories() {
    OpenMMENN::registerCommonENNKernelFactory<OpenMM::CudaPlatform::PlatformData>("CUDA");
}

extern "C" OPENMM_EXPORT void registerKernelFactories() {
    registerENNCudaKernelFactories();
}
