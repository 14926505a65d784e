#include "CommonENNKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/common/ContextSelector.h"
#include "openmm/internal/ContextImpl.h"
#include "CommonENNPolarMesh.h"
#include "CommonENNPolarStructureFactor.h"
#include "CommonENNPrecision.h"
#include <algorithm>
#include <cstdlib>

using namespace OpenMMENN;

void CommonCalcENNForceKernel::initialize(const OpenMM::System& system, const ENNForce& force) {
    OpenMM::ContextSelector selector(cc);
    ml.read(force);
    std::vector<int> mlOfAtom(system.getNumParticles(), -1);
    for (size_t i = 0; i < ml.particles.size(); i++)
        mlOfAtom[ml.particles[i]] = static_cast<int>(i);
    network = std::make_unique<CommonENNNetwork>(cc, force.getModelPtr(), ml.species, mlOfAtom, ml.periodic, ml.chargeGroups, ml.initialFeatures, work);
    if (force.hasPolarHead()) { // (a polar head couples to the MM charges itself)
        polar = std::make_unique<ENNPolarEvaluation>(force);
        // The MM charges' structure factor in a cell on a mesh; the exact sums where the device cannot spread charges.
        auto mesh = std::make_unique<CommonENNPolarMesh>(cc, work);
        if (mesh->usable())
            polar->setStructureFactor(std::move(mesh));
        else
            polar->setStructureFactor(std::make_unique<CommonENNPolarStructureFactor>(cc, work));
        // The head's host threads: OPENMM_CPU_THREADS of them where set (the CPU platform's default too), else one per
        // core; they sleep between the head's passes.
        const char* threadsVariable = std::getenv("OPENMM_CPU_THREADS");
        const int numThreads = threadsVariable && *threadsVariable ? std::max(1, std::atoi(threadsVariable)) : 0;
        hostThreads = std::make_unique<OpenMM::ThreadPool>(numThreads);
        polar->setParallelFor([threads = hostThreads.get()](int count, const std::function<void(int)>& task) {
            runOnThreadPool(*threads, count, [&](int i, int) { task(i); });
        });
        polarForces.initialize(cc, system.getNumParticles(), 4 * realSize(cc), "ennPolarForces");
        return;
    }
    ENNCouplingParameters coupling(system, force);
    if (coupling.active())
        electrostatics = std::make_unique<CommonENNElectrostatics>(cc, std::move(coupling), system.getNumParticles(), network->getCharges(),
                                                                   ml.chargeGroups.total(), network->getStatus(), work);
    if (usesTrainedPeriodicSum(force))
        latentEwald = std::make_unique<CommonENNLatentEwald>(cc, force.getModel(), network->getPositions(), network->getCharges(), ml.particles,
                                                             system.getNumParticles(), network->getStatus(), work);
}

double CommonCalcENNForceKernel::execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) {
    if (polar)
        return executePolar(context, includeForces, includeEnergy);
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

double CommonCalcENNForceKernel::evaluatePolarHead(OpenMM::ContextImpl& context, std::vector<std::vector<double>>* gradients) {
    const std::vector<std::vector<double>> outputs = network->downloadLayerOutputs();
    std::vector<OpenMM::Vec3> positions;
    context.getPositions(positions);
    OpenMM::Vec3 box[3];
    context.getPeriodicBoxVectors(box[0], box[1], box[2]);
    std::vector<const std::vector<double>*> pointers;
    for (const std::vector<double>& layer : outputs)
        pointers.push_back(&layer);
    return polar->at(positions, ml.periodic ? box : nullptr, ml)(pointers, gradients);
}

double CommonCalcENNForceKernel::executePolar(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) {
    OpenMM::ContextSelector selector(cc);
    work.steps++;
    network->checkBox();
    network->forwardWithFittingList(false); // (the features are read on the host)
    std::vector<std::vector<double>> gradients;
    const ENNModel& m = network->getModel();
    const double energy = evaluatePolarHead(context, includeForces ? &gradients : nullptr) * m.energyToKJPerMol;
    ml.checkEnergy(energy, m);
    if (includeForces) {
        network->uploadLayerGradients(gradients);
        std::vector<OpenMM::Vec3> forces(context.getSystem().getNumParticles());
        polar->addEnvironmentForces(forces);
        const double scale = -m.energyToKJPerMol / m.lengthToNm;
        for (size_t i = 0; i < ml.particles.size(); i++)
            forces[ml.particles[i]] += polar->mlGradient()[i] * scale;
        std::vector<double> flat;
        for (const OpenMM::Vec3& f : forces)
            flat.insert(flat.end(), {f[0], f[1], f[2], 0.0});
        uploadReals(cc, polarForces, flat);
        work.transfer();
    }
    if (includeEnergy)
        network->addEnergy();
    if (includeForces)
        network->backward(nullptr, &polarForces);
    network->queueStatus();
    if (!network->finishStep()) // (the list was checked above, at these positions)
        cc.setForcesValid(false);
    return energy;
}

std::vector<OpenMM::Vec3> CommonCalcENNForceKernel::getDipoles(OpenMM::ContextImpl& context) {
    getCharges(context); // (the multipoles at the current positions)
    return polar->dipoles();
}

void CommonCalcENNForceKernel::copyParametersToContext(OpenMM::ContextImpl&, const ENNForce& force) {
    ml.update(force);
    if (polar)
        polar->update(force);
    network->setChargeGroupCharges(ml.chargeGroups);
    network->setInitialFeatures(ml.initialFeatures);
    if (electrostatics)
        electrostatics->updateCharges(force, ml.chargeGroups.total());
}

std::vector<double> CommonCalcENNForceKernel::getCharges(OpenMM::ContextImpl& context) {
    OpenMM::ContextSelector selector(cc);
    network->checkBox();
    const DeviceWork beforeCharges = work; // counted per force evaluation only
    if (polar) { // each atom's charge among its multipoles
        network->forwardWithFittingList(false);
        evaluatePolarHead(context, nullptr);
        work = beforeCharges;
        return polar->charges();
    }
    std::vector<double> charges = network->predictCharges();
    work = beforeCharges;
    return charges;
}
