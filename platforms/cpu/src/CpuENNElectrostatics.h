#ifndef OPENMM_CPU_ENN_ELECTROSTATICS_H_
#define OPENMM_CPU_ENN_ELECTROSTATICS_H_

// Electrostatics of the predicted charges on the CPU platform: the Reference physics in double.

#include "ReferenceENNElectrostatics.h"
#include "openmm/internal/ThreadPool.h"

namespace OpenMMENN {

class CpuENNElectrostatics : public ReferenceENNElectrostatics {
public:
    CpuENNElectrostatics(const OpenMM::System& system, const ENNForce& force) : ReferenceENNElectrostatics(system, force) {}
    double compute(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box, const std::vector<double>& mlCharges,
                   std::vector<OpenMM::Vec3>& forces, std::vector<double>& potential, OpenMM::ThreadPool&) const {
        return ReferenceENNElectrostatics::compute(positions, box, mlCharges, forces, potential);
    }
};

} // namespace OpenMMENN

#endif
