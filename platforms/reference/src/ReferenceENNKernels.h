#ifndef OPENMM_REFERENCE_ENN_KERNELS_H_
#define OPENMM_REFERENCE_ENN_KERNELS_H_

#include "openmmenn/ENNKernels.h"
#include "ENNParticles.h"
#include "ReferenceENNElectrostatics.h"
#include "ReferenceENNLatentEwald.h"
#include "ReferenceENNNeighbors.h"
#include "ReferenceENNNetwork.h"
#include "ReferenceENNPolarHead.h"
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

private:
    /** Edges of the ML region at the context's positions, in model length units. */
    std::vector<ENNEdge> buildEdges(OpenMM::ContextImpl& context);
    /** The polar head as the network's layer-feature head at the context's positions (empty without one): its direct
     *  position gradient into `gradient`, its multipoles into `multipoles` where not null. */
    LayerFeatureHead polarHeadAt(OpenMM::ContextImpl& context, std::vector<OpenMM::Vec3>* gradient, std::vector<OpenMM::Vec3>* environmentGradient,
                                 std::vector<double>* multipoles);
    /** The MM charges a polar head is coupled to (none for other heads, whose coupling is `electrostatics`'). */
    void readPolarEnvironment(const ENNForce& force);
    /** Each atom's charge among the polar head's multipoles. */
    std::vector<double> polarCharges(const std::vector<double>& multipoles) const;
    std::unique_ptr<ReferenceENNNetwork> network;
    std::unique_ptr<ReferenceENNElectrostatics> electrostatics; // null when the force has no coupling
    std::unique_ptr<ReferenceENNLatentEwald> latentEwald;       // the model's periodic sum as trained, or null
    std::unique_ptr<ReferenceENNPolarHead> polarHead;           // PolarMACE's head, or null
    std::vector<int> mmParticles;                               // with a polar head: the MM charges' particles
    std::vector<double> mmCharges;
    ENNParticles ml;
};

} // namespace OpenMMENN

#endif
