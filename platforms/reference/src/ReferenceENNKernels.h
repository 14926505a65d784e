#ifndef OPENMM_REFERENCE_ENN_KERNELS_H_
#define OPENMM_REFERENCE_ENN_KERNELS_H_

#include "openmmenn/ENNKernels.h"
#include "ENNParticles.h"
#include "ReferenceENNElectrostatics.h"
#include "ReferenceENNLatentEwald.h"
#include "ReferenceENNNeighbors.h"
#include "ReferenceENNNetwork.h"
#include "ENNPolarHead.h"
#include <memory>

namespace OpenMMENN {

/** ENNForce on the Reference platform: double precision throughout. */
class ReferenceCalcENNForceKernel : public CalcENNForceKernel {
public:
    ReferenceCalcENNForceKernel(std::string name, const OpenMM::Platform& platform) : CalcENNForceKernel(name, platform) {}
    void initialize(const OpenMM::System& system, const ENNForce& force) override;
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) override;
    void copyParametersToContext(OpenMM::ContextImpl& context, const ENNForce& force) override;
    std::vector<double> getCharges(OpenMM::ContextImpl& context) override;
    std::vector<OpenMM::Vec3> getDipoles(OpenMM::ContextImpl& context) override;

private:
    /** Edges of the ML region at the context's positions, in model length units. */
    std::vector<ENNEdge> buildEdges(OpenMM::ContextImpl& context);
    /** The polar head as the network's layer-feature head at the context's positions, or empty without one. */
    LayerFeatureHead polarHeadAt(OpenMM::ContextImpl& context);
    std::unique_ptr<ReferenceENNNetwork> network;
    std::unique_ptr<ReferenceENNElectrostatics> electrostatics; // null when the force has no coupling
    std::unique_ptr<ReferenceENNLatentEwald> latentEwald;       // the model's periodic sum as trained, or null
    std::unique_ptr<ENNPolarEvaluation> polar;                  // PolarMACE's head and its MM charges, or null
    ENNParticles ml;
};

} // namespace OpenMMENN

#endif
