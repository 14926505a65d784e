#ifndef OPENMM_COMMON_ENN_KERNELS_H_
#define OPENMM_COMMON_ENN_KERNELS_H_

#include "openmmenn/ENNKernels.h"
#include "CommonENNElectrostatics.h"
#include "CommonENNLatentEwald.h"
#include "CommonENNNetwork.h"
#include "ENNParticles.h"
#include "ENNPolarHead.h"
#include "ENNThreadPool.h"
#include "openmm/common/ComputeContext.h"
#include <memory>

namespace OpenMMENN {

/**
 * ENNForce on the CUDA and OpenCL platforms, written once against OpenMM's ComputeContext: the network
 * runs on the device and its forces go into the context's fixed-point force buffer.
 * The electrostatics of the predicted charges runs on the device too (CommonENNElectrostatics).
 */
class CommonCalcENNForceKernel : public CalcENNForceKernel {
public:
    CommonCalcENNForceKernel(std::string name, const OpenMM::Platform& platform, OpenMM::ComputeContext& cc)
        : CalcENNForceKernel(name, platform), cc(cc) {}
    ~CommonCalcENNForceKernel() override { work.report(getPlatform().getName()); }
    void initialize(const OpenMM::System& system, const ENNForce& force) override;
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) override;
    void copyParametersToContext(OpenMM::ContextImpl& context, const ENNForce& force) override;
    std::vector<double> getCharges(OpenMM::ContextImpl& context) override;
    std::vector<OpenMM::Vec3> getDipoles(OpenMM::ContextImpl& context) override;

private:
    /** A PolarMACE model's step: the backbone forward on the device; its layer features to the host, where the head
     *  runs in double (ENNPolarHead, as on Reference and CPU); the head's feature gradients and direct forces back for
     *  the backbone's backward pass. Returns the head's energy (kJ/mol; the network's goes to the energy buffer). */
    double executePolar(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy);
    /** The polar head at the context's positions, after a forward pass whose status is finished. */
    double evaluatePolarHead(OpenMM::ContextImpl& context, std::vector<std::vector<double>>* gradients);
    OpenMM::ComputeContext& cc;
    std::unique_ptr<CommonENNNetwork> network;
    std::unique_ptr<CommonENNElectrostatics> electrostatics; // null when the force has no coupling
    std::unique_ptr<CommonENNLatentEwald> latentEwald;       // the model's periodic sum as trained, or null
    std::unique_ptr<ENNPolarEvaluation> polar;               // PolarMACE's head (on the host, in double) and its MM charges, or null
    OpenMM::ComputeArray polarForces;                        // the head's direct forces and those on its MM charges (real4 per particle)
    std::unique_ptr<OpenMM::ThreadPool> hostThreads;         // the polar head's per-atom networks on the host's cores
    ENNParticles ml;
    DeviceWork work; // what the steps queued (CommonENNDeviceWork.h)
};

} // namespace OpenMMENN

#endif
