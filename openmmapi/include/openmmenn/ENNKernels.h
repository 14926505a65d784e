#ifndef OPENMM_ENN_KERNELS_H_
#define OPENMM_ENN_KERNELS_H_

#include "openmmenn/ENNForce.h"
#include "openmm/KernelImpl.h"
#include "openmm/Vec3.h"
#include "openmm/System.h"
#include "openmm/Platform.h"
#include <string>
#include <vector>

namespace OpenMMENN {

/** The kernel that evaluates an ENNForce; each platform implements it. */
class CalcENNForceKernel : public OpenMM::KernelImpl {
public:
    static std::string Name() { return "CalcENNForce"; }
    CalcENNForceKernel(std::string name, const OpenMM::Platform& platform) : OpenMM::KernelImpl(name, platform) {}
    virtual void initialize(const OpenMM::System& system, const ENNForce& force) = 0;
    /** Add forces to the context and return the energy (kJ/mol). */
    virtual double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) = 0;
    virtual void copyParametersToContext(OpenMM::ContextImpl& context, const ENNForce& force) = 0;
    /** Predicted charges of the ML particles at the current positions. */
    virtual std::vector<double> getCharges(OpenMM::ContextImpl& context) = 0;
    /** The dipoles of a polar head's multipoles (e nm) at the current positions (ENNForce::getDipoles checks that the
     *  model has them). */
    virtual std::vector<OpenMM::Vec3> getDipoles(OpenMM::ContextImpl& context) = 0;
};

} // namespace OpenMMENN

#endif
