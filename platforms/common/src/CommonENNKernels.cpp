#include "CommonENNKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/common/ContextSelector.h"
#include "openmm/internal/ContextImpl.h"

using namespace OpenMMENN;

void CommonCalcENNForceKernel::initialize(const OpenMM::System& system, const ENNForce& force) {
    OpenMM::ContextSelector selector(cc);
    if (force.hasPolarHead())
        throw OpenMM::OpenMMException("ENNForce: a PolarMACE model (polar head) runs only on the Reference and CPU platforms so far, "
                                      "not on OpenCL or CUDA");
    ml.read(force);
    std::vector<int> mlOfAtom(system.getNumParticles(), -1);
    for (size_t i = 0; i < ml.particles.size(); i++)
        mlOfAtom[ml.particles[i]] = static_cast<int>(i);
    network = std::make_unique<CommonENNNetwork>(cc, force.getModelPtr(), ml.species, mlOfAtom, ml.periodic, ml.chargeGroups, ml.initialFeatures, work);
    ENNCouplingParameters coupling(system, force);
    if (coupling.active())
        electrostatics = std::make_unique<CommonENNElectrostatics>(cc, std::move(coupling), system.getNumParticles(), network->getCharges(),
                                                                   ml.chargeGroups.total(), network->getStatus(), work);
    if (usesTrainedPeriodicSum(force))
        latentEwald = std::make_unique<CommonENNLatentEwald>(cc, force.getModel(), network->getPositions(), network->getCharges(), ml.particles,
                                                             system.getNumParticles(), network->getStatus(), work);
}

double CommonCalcENNForceKernel::execute(OpenMM::ContextImpl&, bool includeForces, bool includeEnergy) {
    OpenMM::ContextSelector selector(cc);
    work.steps++;
    // Before anything is queued, so that nothing is in flight if it throws.
    network->checkBox();
    if (electrostatics)
        electrostatics->checkBox();
    network->forward(electrostatics != nullptr || latentEwald != nullptr);
    OpenMM::ComputeArray *potential = nullptr, *forces = nullptr; // of the energy terms that depend on the charges
    double potentialScale = 1.0;
    if (electrostatics) {
        electrostatics->compute(includeEnergy);
        potential = &electrostatics->getPotential();
        forces = &electrostatics->getForces();
        potentialScale = electrostatics->getPotentialScale();
    }
    if (latentEwald) { // (never with electrostatics: ENNCouplingParameters refuses the combination)
        latentEwald->compute(includeEnergy);
        potential = &latentEwald->getPotential();
        forces = &latentEwald->getForces();
    }
    if (includeEnergy)
        network->addEnergy();
    if (includeForces)
        network->backward(potential, forces, potentialScale);
    // Only now, with the whole step queued, wait for its status. If the list overflowed, OpenMM
    // recomputes the step (as for its own neighbour list).
    network->queueStatus();
    if (!network->finishStep())
        cc.setForcesValid(false);
    return 0; // every energy term is added to the context's energy buffer on the device
}

void CommonCalcENNForceKernel::copyParametersToContext(OpenMM::ContextImpl&, const ENNForce& force) {
    ml.update(force);
    network->setChargeGroupCharges(ml.chargeGroups);
    network->setInitialFeatures(ml.initialFeatures);
    if (electrostatics)
        electrostatics->updateCharges(force, ml.chargeGroups.total());
}

std::vector<double> CommonCalcENNForceKernel::getCharges(OpenMM::ContextImpl&) {
    OpenMM::ContextSelector selector(cc);
    network->checkBox();
    const DeviceWork beforeCharges = work; // counted per force evaluation only
    std::vector<double> charges = network->predictCharges();
    work = beforeCharges;
    return charges;
}
