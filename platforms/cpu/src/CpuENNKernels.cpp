#include "CpuENNKernels.h"
#include "CpuENNParallel.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "CpuPlatform.h"
#include "openmm/reference/ReferencePlatform.h" // OpenMM's: the CPU platform keeps positions and forces there

using namespace OpenMMENN;
using OpenMM::Vec3;

static OpenMM::ReferencePlatform::PlatformData& referenceData(OpenMM::ContextImpl& context) {
    return *reinterpret_cast<OpenMM::ReferencePlatform::PlatformData*>(context.getPlatformData());
}

void CpuCalcENNForceKernel::initialize(const OpenMM::System& system, const ENNForce& force) {
    ml.read(force);
    network = std::make_unique<CpuENNNetwork>(force.getModelPtr(), ml.species);
    if (force.hasPolarHead()) { // (a polar head couples to the MM charges itself; in a cell through the mesh)
        polar = std::make_unique<ENNPolarEvaluation>(force);
        auto mesh = std::make_unique<CpuENNPolarMesh>();
        polarMesh = mesh.get();
        polar->setStructureFactor(std::move(mesh));
    } else {
        electrostatics = std::make_unique<CpuENNElectrostatics>(system, force);
        if (!electrostatics->active())
            electrostatics.reset();
    }
    if (usesTrainedPeriodicSum(force))
        latentEwald = std::make_unique<CpuENNLatentEwald>(force.getModel());
}

double CpuCalcENNForceKernel::evaluate(OpenMM::ContextImpl& context, std::vector<double>* charges, bool includeForces) {
    const ENNModel& m = network->getModel();
    OpenMM::ReferencePlatform::PlatformData& data = referenceData(context);
    OpenMM::ThreadPool& pool = OpenMM::CpuPlatform::getPlatformData(context).threads;
    ParallelSession session(pool); // the pool's threads, held for the whole evaluation
    const double toModel = 1.0 / m.lengthToNm;
    ml.gather(*data.positions, toModel, local);
    Vec3 box[3];
    if (ml.periodic)
        checkPeriodicBox(data.periodicBoxVectors, m.rMax * m.lengthToNm);
    if (ml.periodic)
        for (int k = 0; k < 3; k++)
            box[k] = data.periodicBoxVectors[k] * toModel;
    double electrostaticEnergy = 0.0;
    ChargeCoupling coupling;
    if (electrostatics && !charges) {
        // Electrostatics in OpenMM units with the predicted charges; phi goes back to model units.
        coupling = [&](const std::vector<double>& q, std::vector<double>& phi) {
            ml.checkCharges(q);
            electrostaticForces.assign(data.positions->size(), Vec3());
            electrostaticEnergy = electrostatics->compute(*data.positions, data.periodicBoxVectors, q, electrostaticForces, phi, pool);
            for (double& p : phi)
                p /= m.energyToKJPerMol;
        };
    }
    if (latentEwald && !charges) {
        // In the model's units, as it was trained; the forces at fixed charges into electrostaticForces (OpenMM units).
        coupling = [&](const std::vector<double>& q, std::vector<double>& phi) {
            ml.checkCharges(q);
            std::vector<Vec3> latentGradient(q.size());
            phi.assign(q.size(), 0.0);
            electrostaticEnergy = latentEwald->compute(local, box, q, phi, latentGradient, pool) * m.energyToKJPerMol;
            electrostaticForces.assign(data.positions->size(), Vec3());
            for (size_t i = 0; i < q.size(); i++)
                electrostaticForces[ml.particles[i]] = latentGradient[i] * (-m.energyToKJPerMol / m.lengthToNm);
        };
    }
    LayerFeatureHead head;
    if (polar) {
        polarMesh->setThreads(&pool);
        polar->setParallelFor([&pool](int count, const std::function<void(int)>& task) { parallelFor(pool, count, [&](int i, int) { task(i); }); });
        head = polar->at(*data.positions, ml.periodic ? data.periodicBoxVectors : nullptr, ml);
    }
    const double energy = network->compute(local, ml.periodic ? box : nullptr, ml.chargeGroups, ml.initialFeatures, coupling,
                                           polar ? nullptr : charges, includeForces ? &gradient : nullptr, pool, head);
    if (polar && charges)
        *charges = polar->charges();
    if (polar && includeForces) { // the head's direct gradient (its electrostatics), and the forces on its MM charges
        for (size_t i = 0; i < gradient.size(); i++)
            gradient[i] += polar->mlGradient()[i];
        electrostaticForces.assign(data.positions->size(), Vec3());
        polar->addEnvironmentForces(electrostaticForces);
    }
    const double total = energy * m.energyToKJPerMol + electrostaticEnergy;
    ml.checkEnergy(total, m);
    static const std::vector<Vec3> none;
    if (includeForces)
        ml.addForces(gradient, m.energyToKJPerMol / m.lengthToNm, coupling || polar ? electrostaticForces : none, *data.forces);
    return total;
}

double CpuCalcENNForceKernel::execute(OpenMM::ContextImpl& context, bool includeForces, bool) {
    return evaluate(context, nullptr, includeForces);
}

void CpuCalcENNForceKernel::copyParametersToContext(OpenMM::ContextImpl&, const ENNForce& force) {
    ml.update(force);
    if (polar)
        polar->update(force);
    if (electrostatics)
        electrostatics->updateCharges(force);
}

std::vector<Vec3> CpuCalcENNForceKernel::getDipoles(OpenMM::ContextImpl& context) {
    getCharges(context); // (the multipoles at the current positions)
    return polar->dipoles();
}

std::vector<double> CpuCalcENNForceKernel::getCharges(OpenMM::ContextImpl& context) {
    std::vector<double> charges;
    evaluate(context, &charges, false);
    ml.checkCharges(charges);
    return charges;
}
