#include "openmmenn/internal/ENNForceImpl.h"
#include "openmmenn/ENNKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include <set>

using namespace OpenMMENN;
using OpenMM::OpenMMException;

void ENNForceImpl::initialize(OpenMM::ContextImpl& context) {
    const OpenMM::System& system = context.getSystem();
    if (owner.getNumParticles() == 0)
        throw OpenMMException("ENNForce: no particles were added");
    std::set<int> seen;
    for (int i = 0; i < owner.getNumParticles(); i++) {
        int particle, z;
        owner.getParticleParameters(i, particle, z);
        if (particle >= system.getNumParticles())
            throw OpenMMException("ENNForce: particle index " + std::to_string(particle) + " is out of range (the System has " +
                                  std::to_string(system.getNumParticles()) + " particles)");
        if (!seen.insert(particle).second)
            throw OpenMMException("ENNForce: particle " + std::to_string(particle) + " was added twice");
    }
    const bool coupled = owner.getElectrostaticsMethod() != ENNForce::NoElectrostatics || owner.getUseImplicitSolvent();
    if (owner.hasPolarHead())
        checkPolarCoupling();
    if (coupled && !owner.hasChargeHead() && !owner.hasPolarHead())
        throw OpenMMException("ENNForce: electrostatics with predicted charges needs a model with a charge head");
    auto checkParticle = [&](int particle, const std::string& what) {
        if (particle < 0 || particle >= system.getNumParticles())
            throw OpenMMException("ENNForce: " + what + " particle index " + std::to_string(particle) + " is out of range (the System has " +
                                  std::to_string(system.getNumParticles()) + " particles)");
    };
    for (int i = 0; i < owner.getNumMMParticles(); i++) {
        int particle;
        double charge;
        owner.getMMParticleParameters(i, particle, charge);
        checkParticle(particle, "MM");
    }
    for (int i = 0; i < owner.getNumElectrostaticExceptions(); i++) {
        int p1, p2;
        double scale;
        owner.getElectrostaticExceptionParameters(i, p1, p2, scale);
        checkParticle(p1, "exception");
        checkParticle(p2, "exception");
    }
    for (int i = 0; i < owner.getNumGBParticles(); i++) {
        int particle;
        double charge, radius, scale;
        owner.getGBParticleParameters(i, particle, charge, radius, scale);
        checkParticle(particle, "GB");
    }
    kernel = context.getPlatform().createKernel(CalcENNForceKernel::Name(), context);
    kernel.getAs<CalcENNForceKernel>().initialize(system, owner);
}

void ENNForceImpl::checkPolarCoupling() const {
    // PolarMACE's embedding (openmm-ml's, with graph-longrange's external sources): every MM charge a Gaussian of the
    // multipoles' width, in every field-update step and in the energy, summed without cutoff (NoCutoff) or by the
    // model's reciprocal sums (PME's periodic box); nothing else is defined for it.
    const ENNForce::ElectrostaticsMethod method = owner.getElectrostaticsMethod();
    if (owner.getUseImplicitSolvent())
        throw OpenMMException("ENNForce: a PolarMACE model (polar head) cannot be coupled to implicit solvent: its multipoles respond "
                              "to the field, and a generalized Born reaction field inside its update steps is not defined");
    if (method == ENNForce::CutoffNonPeriodic || method == ENNForce::CutoffPeriodic)
        throw OpenMMException("ENNForce: a PolarMACE model (polar head) couples to MM charges with NoCutoff or PME only (its "
                              "real-space or reciprocal sums of Gaussian charges); a reaction field is not defined for it");
    if (method == ENNForce::NoElectrostatics && owner.getNumMMParticles() > 0)
        throw OpenMMException("ENNForce: MM charges need an electrostatics method (NoCutoff or PME)");
    if (owner.getNumElectrostaticExceptions() > 0)
        throw OpenMMException("ENNForce: a PolarMACE model (polar head) sums every ML-MM pair in full (graph-longrange's sources "
                              "have no exclusions), so an ML region bonded to MM atoms is not supported: make the ML region whole "
                              "molecules (" + std::to_string(owner.getNumElectrostaticExceptions()) + " ML-MM exceptions found)");
}

double ENNForceImpl::calcForcesAndEnergy(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy, int groups) {
    if ((groups & (1 << owner.getForceGroup())) == 0)
        return 0.0;
    return kernel.getAs<CalcENNForceKernel>().execute(context, includeForces, includeEnergy);
}

std::vector<std::string> ENNForceImpl::getKernelNames() {
    return {CalcENNForceKernel::Name()};
}

void ENNForceImpl::updateParametersInContext(OpenMM::ContextImpl& context) {
    kernel.getAs<CalcENNForceKernel>().copyParametersToContext(context, owner);
}

std::vector<double> ENNForceImpl::getCharges(OpenMM::ContextImpl& context) {
    return kernel.getAs<CalcENNForceKernel>().getCharges(context);
}

std::vector<OpenMM::Vec3> ENNForceImpl::getDipoles(OpenMM::ContextImpl& context) {
    return kernel.getAs<CalcENNForceKernel>().getDipoles(context);
}
