#ifndef OPENMM_COMMON_ENN_KERNEL_SOURCES_H_
#define OPENMM_COMMON_ENN_KERNEL_SOURCES_H_

#include <string>

namespace OpenMMENN {

/** The sources in platforms/common/src/kernels, embedded at build time (CMake writes the .cpp). */
struct CommonENNKernelSources {
    static const std::string ennNetwork;
};

} // namespace OpenMMENN

#endif
