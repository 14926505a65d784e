#ifndef OPENMM_ENN_FORCE_IMPL_H_
#define OPENMM_ENN_FORCE_IMPL_H_

#include "openmmenn/ENNForce.h"
#include "openmm/Kernel.h"
#include "openmm/internal/ForceImpl.h"
#include <map>
#include <string>
#include <vector>

namespace OpenMMENN {

class ENNForceImpl : public OpenMM::ForceImpl {
public:
    explicit ENNForceImpl(const ENNForce& owner) : owner(owner) {}
    void initialize(OpenMM::ContextImpl& context) override;
    const ENNForce& getOwner() const override { return owner; }
    void updateContextState(OpenMM::ContextImpl&, bool&) override {}
    double calcForcesAndEnergy(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy, int groups) override;
    std::map<std::string, double> getDefaultParameters() override { return {}; }
    std::vector<std::string> getKernelNames() override;
    void updateParametersInContext(OpenMM::ContextImpl& context);
    std::vector<double> getCharges(OpenMM::ContextImpl& context);
    std::vector<OpenMM::Vec3> getDipoles(OpenMM::ContextImpl& context);

private:
    /** Throws OpenMMException naming what a PolarMACE model's coupling cannot be (docs/polar.md). */
    void checkPolarCoupling() const;
    const ENNForce& owner;
    OpenMM::Kernel kernel;
};

} // namespace OpenMMENN

#endif
