#ifndef OPENMM_CPU_ENN_ELECTROSTATICS_H_
#define OPENMM_CPU_ENN_ELECTROSTATICS_H_

// Electrostatics of the predicted charges on the CPU platform: the Reference physics in double,
// with PME's 3D transforms done by FFTW (plans made once per grid size).

#include "ReferenceENNElectrostatics.h"
#include <fftw3.h>
#include <array>
#include <map>

namespace OpenMMENN {

class CpuENNElectrostatics : public ReferenceENNElectrostatics {
public:
    CpuENNElectrostatics(const OpenMM::System& system, const ENNForce& force);
    ~CpuENNElectrostatics();

private:
    void transform(std::complex<double>* data, const int grid[3], int sign);
    std::map<std::array<int, 4>, fftw_plan> plans; // by grid and sign
};

} // namespace OpenMMENN

#endif
