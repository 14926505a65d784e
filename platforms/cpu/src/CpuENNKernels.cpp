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
    ENNParticles::requireSupportedHeads(force, "CPU");
    ml.read(force);
    network = std::make_unique<CpuENNNetwork>(force.getModelPtr(), ml.species);
    electrostatics = std::make_unique<CpuENNElectrostatics>(system, force);
    if (!electrostatics->active())
        electrostatics.reset();
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
    const double energy = network->compute(local, ml.periodic ? box : nullptr, ml.chargeGroups, ml.initialFeatures, coupling, charges,
                                           includeForces ? &gradient : nullptr, pool);
    const double total = energy * m.energyToKJPerMol + electrostaticEnergy;
    ml.checkEnergy(total, m);
    static const std::vector<Vec3> none;
    if (includeForces)
        ml.addForces(gradient, m.energyToKJPerMol / m.lengthToNm, coupling ? electrostaticForces : none, *data.forces);
    return total;
}

double CpuCalcENNForceKernel::execute(OpenMM::ContextImpl& context, bool includeForces, bool) {
    return evaluate(context, nullptr, includeForces);
}

void CpuCalcENNForceKernel::copyParametersToContext(OpenMM::ContextImpl&, const ENNForce& force) {
    ml.update(force);
    if (electrostatics)
        electrostatics->updateCharges(force);
}

std::vector<double> CpuCalcENNForceKernel::getCharges(OpenMM::ContextImpl& context) {
    std::vector<double> charges;
    evaluate(context, &charges, false);
    ml.checkCharges(charges);
    return charges;
}
