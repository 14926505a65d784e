#ifndef OPENMM_CPU_ENN_KERNELS_H_
#define OPENMM_CPU_ENN_KERNELS_H_

#include "openmmenn/ENNKernels.h"
#include "CpuENNElectrostatics.h"
#include "CpuENNLatentEwald.h"
#include "CpuENNNetwork.h"
#include "CpuENNPolarMesh.h"
#include "ENNParticles.h"
#include <memory>

namespace OpenMMENN {

/** ENNForce on the CPU platform: the float network on the platform's thread pool, and the
 *  electrostatics of the predicted charges in double. */
class CpuCalcENNForceKernel : public CalcENNForceKernel {
public:
    CpuCalcENNForceKernel(std::string name, const OpenMM::Platform& platform) : CalcENNForceKernel(name, platform) {}
    void initialize(const OpenMM::System& system, const ENNForce& force) override;
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) override;
    void copyParametersToContext(OpenMM::ContextImpl& context, const ENNForce& force) override;
    std::vector<double> getCharges(OpenMM::ContextImpl& context) override;
    std::vector<OpenMM::Vec3> getDipoles(OpenMM::ContextImpl& context) override;

private:
    double evaluate(OpenMM::ContextImpl& context, std::vector<double>* charges, bool includeForces);
    std::unique_ptr<CpuENNNetwork> network;
    std::unique_ptr<CpuENNElectrostatics> electrostatics; // null when the force has no coupling
    std::unique_ptr<CpuENNLatentEwald> latentEwald;       // the model's periodic sum as trained, or null
    std::unique_ptr<ENNPolarEvaluation> polar;            // PolarMACE's head (in double) and its MM charges, or null
    CpuENNPolarMesh* polarMesh = nullptr;                 // its MM charges' structure factor in a cell (owned by polar)
    ENNParticles ml;
    std::vector<OpenMM::Vec3> local, gradient, electrostaticForces; // reused from step to step
};

} // namespace OpenMMENN

#endif
