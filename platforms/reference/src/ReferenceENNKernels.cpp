#include "ReferenceENNKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "ReferencePlatform.h"
#include <algorithm>
#include <cmath>

using namespace OpenMMENN;
using OpenMM::Vec3;

static OpenMM::ReferencePlatform::PlatformData& platformData(OpenMM::ContextImpl& context) {
    return *reinterpret_cast<OpenMM::ReferencePlatform::PlatformData*>(context.getPlatformData());
}

void ReferenceCalcENNForceKernel::initialize(const OpenMM::System& system, const ENNForce& force) {
    network = std::make_unique<ReferenceENNNetwork>(force.getModelPtr());
    if (!force.hasPolarHead()) { // (a polar head couples to the MM charges itself)
        electrostatics = std::make_unique<ReferenceENNElectrostatics>(system, force);
        if (!electrostatics->active())
            electrostatics.reset();
    }
    if (usesTrainedPeriodicSum(force))
        latentEwald = std::make_unique<ReferenceENNLatentEwald>(force.getModel());
    if (force.hasPolarHead())
        polar = std::make_unique<ENNPolarEvaluation>(force);
    ml.read(force);
}

LayerFeatureHead ReferenceCalcENNForceKernel::polarHeadAt(OpenMM::ContextImpl& context) {
    if (!polar)
        return {};
    return polar->at(*platformData(context).positions, ml.periodic ? platformData(context).periodicBoxVectors : nullptr, ml);
}

std::vector<ENNEdge> ReferenceCalcENNForceKernel::buildEdges(OpenMM::ContextImpl& context) {
    const ENNModel& m = network->getModel();
    const double toModel = 1.0 / m.lengthToNm;
    std::vector<Vec3> local;
    ml.gather(*platformData(context).positions, toModel, local);
    Vec3 box[3];
    if (ml.periodic) {
        const Vec3* b = platformData(context).periodicBoxVectors;
        checkPeriodicBox(b, m.rMax * m.lengthToNm);
        for (int k = 0; k < 3; k++)
            box[k] = b[k] * toModel;
    }
    return buildReferenceEdges(local, m.rMax, ml.periodic ? box : nullptr);
}
double ReferenceCalcENNForceKernel::execute(OpenMM::ContextImpl& context, bool includeForces, bool) {
    const ENNModel& m = network->getModel();
    std::vector<ENNEdge> edges = buildEdges(context);
    std::vector<Vec3> gradient, electrostaticForces;
    double electrostaticEnergy = 0.0;
    ChargeCoupling coupling;
    if (electrostatics) {
        // Electrostatics in OpenMM units with the predicted charges; phi goes back to model units.
        coupling = [&](const std::vector<double>& charges, std::vector<double>& phi) {
            ml.checkCharges(charges);
            const std::vector<Vec3>& pos = *platformData(context).positions;
            electrostaticForces.assign(pos.size(), Vec3());
            electrostaticEnergy = electrostatics->compute(pos, platformData(context).periodicBoxVectors, charges, electrostaticForces, phi);
            for (double& p : phi)
                p /= m.energyToKJPerMol;
        };
    }
    if (latentEwald) {
        // In the model's units, as it was trained; the forces at fixed charges into electrostaticForces (OpenMM units).
        coupling = [&](const std::vector<double>& charges, std::vector<double>& phi) {
            ml.checkCharges(charges);
            const double toModel = 1.0 / m.lengthToNm;
            std::vector<Vec3> local, gradient(charges.size());
            ml.gather(*platformData(context).positions, toModel, local);
            Vec3 box[3];
            for (int k = 0; k < 3; k++)
                box[k] = platformData(context).periodicBoxVectors[k] * toModel;
            phi.assign(charges.size(), 0.0);
            electrostaticEnergy = latentEwald->compute(local, box, charges, phi, gradient) * m.energyToKJPerMol;
            electrostaticForces.assign(platformData(context).positions->size(), Vec3());
            for (size_t i = 0; i < charges.size(); i++)
                electrostaticForces[ml.particles[i]] = gradient[i] * (-m.energyToKJPerMol / m.lengthToNm);
        };
    }
    double energy = network->compute(ml.species, edges, ml.chargeGroups, ml.initialFeatures, coupling, nullptr, includeForces ? &gradient : nullptr,
                                     polarHeadAt(context));
    if (polar && includeForces) { // the head's direct gradient (its electrostatics), and the forces on its MM charges
        for (size_t i = 0; i < gradient.size(); i++)
            gradient[i] += polar->mlGradient()[i];
        electrostaticForces.assign(platformData(context).positions->size(), Vec3());
        polar->addEnvironmentForces(electrostaticForces);
    }
    const double total = energy * m.energyToKJPerMol + electrostaticEnergy;
    ml.checkEnergy(total, m);
    if (includeForces)
        ml.addForces(gradient, m.energyToKJPerMol / m.lengthToNm, electrostaticForces, *platformData(context).forces);
    return total;
}

void ReferenceCalcENNForceKernel::copyParametersToContext(OpenMM::ContextImpl&, const ENNForce& force) {
    ml.update(force);
    if (polar)
        polar->update(force);
    if (electrostatics)
        electrostatics->updateCharges(force);
}

std::vector<Vec3> ReferenceCalcENNForceKernel::getDipoles(OpenMM::ContextImpl& context) {
    getCharges(context); // (the multipoles at the current positions)
    return polar->dipoles();
}

std::vector<double> ReferenceCalcENNForceKernel::getCharges(OpenMM::ContextImpl& context) {
    std::vector<double> charges;
    if (polar) { // each atom's charge among its multipoles
        network->compute(ml.species, buildEdges(context), ml.chargeGroups, ml.initialFeatures, {}, nullptr, nullptr, polarHeadAt(context));
        return polar->charges();
    }
    network->compute(ml.species, buildEdges(context), ml.chargeGroups, ml.initialFeatures, {}, &charges, nullptr);
    ml.checkCharges(charges);
    return charges;
}
