#ifndef OPENMM_COMMON_ENN_KERNEL_SOURCES_H_
#define OPENMM_COMMON_ENN_KERNEL_SOURCES_H_

#include <string>

namespace OpenMMENN {

/** The sources in platforms/common/src/kernels, embedded at build time (CMake writes the .cpp). */
struct CommonENNKernelSources {
    static const std::string ennReduce, ennCells, ennNetwork, ennMesh, ennElectrostatics, ennStructureFactors, ennPolarMesh,
        ennLatentEwald;
    /** Threads of the one work group that runs each reduction of ennReduce.cc (its REDUCE_SIZE). */
    static const int ReduceSize = 128;
};

} // namespace OpenMMENN

#endif
