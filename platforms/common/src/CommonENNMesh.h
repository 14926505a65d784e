#ifndef OPENMM_COMMON_ENN_MESH_H_
#define OPENMM_COMMON_ENN_MESH_H_

// What the device's charge meshes share (their kernels' part is kernels/ennMesh.cc): the fixed-point scale of the grids
// the charges are spread on, and the check that the device has the 64-bit atomic adds the spreading needs.

#include "openmm/common/ComputeArray.h"
#include "openmm/common/ComputeContext.h"
#include "openmm/common/ComputeKernel.h"
#include "openmm/common/ComputeProgram.h"
#include <vector>

namespace OpenMMENN {

/** 2^40: grid charges (e) to 64-bit integers, whose sums do not depend on the order of the atomic adds. */
const double MeshFixedPointScale = 1099511627776.0;

/** Whether the device does 64-bit atomic adds (ennMesh.cc's checkAtomics, from a program that includes it). */
inline bool hasAtomicAdds64(OpenMM::ComputeContext& cc, OpenMM::ComputeProgram& program) {
    OpenMM::ComputeArray flag;
    flag.initialize<int>(cc, 1, "ennAtomicsFlag");
    cc.clearBuffer(flag);
    OpenMM::ComputeKernel check = program->createKernel("checkAtomics");
    check->addArg(flag);
    check->execute(1);
    std::vector<int> supported;
    flag.download(supported);
    return supported[0] != 0;
}

} // namespace OpenMMENN

#endif
