#include "CommonENNKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/common/ContextSelector.h"
#include "openmm/internal/ContextImpl.h"

using namespace OpenMMENN;
using OpenMM::Vec3;

void CommonCalcENNForceKernel::initialize(const OpenMM::System& system, const ENNForce& force) {
    OpenMM::ContextSelector selector(cc);
    ml.read(force);
    std::vector<int> mlOfAtom(system.getNumParticles(), -1);
    for (size_t i = 0; i < ml.particles.size(); i++)
        mlOfAtom[ml.particles[i]] = static_cast<int>(i);
    network = std::make_unique<CommonENNNetwork>(cc, force.getModelPtr(), ml.species, mlOfAtom, ml.periodic);
    network->setTotalCharge(ml.totalCharge);
    electrostatics = std::make_unique<ReferenceENNElectrostatics>(system, force);
    if (!electrostatics->active())
        electrostatics.reset();
}

double CommonCalcENNForceKernel::execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) {
    OpenMM::ContextSelector selector(cc);
    network->forward(electrostatics != nullptr);
    double energy = 0;
    std::vector<double> potential;
    if (electrostatics) {
        const ENNModel& m = network->getModel();
        const std::vector<double> charges = network->downloadCharges();
        context.getPositions(allPositions);
        Vec3 box[3];
        cc.getPeriodicBoxVectors(box[0], box[1], box[2]);
        electrostaticForces.assign(allPositions.size(), Vec3());
        energy = electrostatics->compute(allPositions, box, charges, electrostaticForces, potential);
        for (double& p : potential)
            p /= m.energyToKJPerMol;
    }
    if (includeEnergy)
        network->addEnergy();
    if (includeForces)
        network->backward(electrostatics ? &potential : nullptr, electrostatics ? &electrostaticForces : nullptr);
    return energy;
}

void CommonCalcENNForceKernel::copyParametersToContext(OpenMM::ContextImpl&, const ENNForce& force) {
    ml.update(force);
    network->setTotalCharge(ml.totalCharge);
    if (electrostatics)
        electrostatics->updateCharges(force);
}

std::vector<double> CommonCalcENNForceKernel::getCharges(OpenMM::ContextImpl&) {
    OpenMM::ContextSelector selector(cc);
    network->forward(true);
    return network->downloadCharges();
}
