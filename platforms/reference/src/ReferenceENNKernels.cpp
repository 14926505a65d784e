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
        polarHead = std::make_unique<ReferenceENNPolarHead>(force.getModelPtr());
    readPolarEnvironment(force);
    ml.read(force);
}

void ReferenceCalcENNForceKernel::readPolarEnvironment(const ENNForce& force) {
    mmParticles.clear();
    mmCharges.clear();
    for (int i = 0; i < force.getNumMMParticles() && force.hasPolarHead(); i++) {
        int particle;
        double charge;
        force.getMMParticleParameters(i, particle, charge);
        mmParticles.push_back(particle);
        mmCharges.push_back(charge);
    }
}

std::vector<double> ReferenceCalcENNForceKernel::polarCharges(const std::vector<double>& multipoles) const {
    const size_t perAtom = network->getModel().polar.multipoleDim(); // each atom's charge, then any dipole
    std::vector<double> charges;
    for (size_t i = 0; i < ml.species.size(); i++)
        charges.push_back(multipoles[i * perAtom]);
    return charges;
}

LayerFeatureHead ReferenceCalcENNForceKernel::polarHeadAt(OpenMM::ContextImpl& context, std::vector<Vec3>* gradient,
                                                           std::vector<Vec3>* environmentGradient, std::vector<double>* multipoles) {
    if (!polarHead)
        return {};
    return [this, &context, gradient, environmentGradient, multipoles](const std::vector<const std::vector<double>*>& outputs,
                                                                       std::vector<std::vector<double>>* gradients) {
        const double toModel = 1.0 / network->getModel().lengthToNm;
        const std::vector<Vec3>& positions = *platformData(context).positions;
        std::vector<Vec3> local;
        ml.gather(positions, toModel, local);
        Vec3 box[3];
        for (int k = 0; k < 3 && ml.periodic; k++)
            box[k] = platformData(context).periodicBoxVectors[k] * toModel;
        PolarEnvironment environment;
        for (size_t m = 0; m < mmParticles.size(); m++) {
            const Vec3& p = positions[mmParticles[m]];
            if (!std::isfinite(p[0]) || !std::isfinite(p[1]) || !std::isfinite(p[2]))
                throw OpenMM::OpenMMException("ENNForce: MM particle " + std::to_string(mmParticles[m]) + " has a non-finite position");
            environment.positions.push_back(p * toModel);
            environment.charges.push_back(mmCharges[m]);
        }
        return polarHead->compute(ml.species, local, outputs, ml.periodic ? box : nullptr, mmParticles.empty() ? nullptr : &environment,
                                  ml.chargeGroups.total(), ml.spinMultiplicity, gradients, gradients ? gradient : nullptr,
                                  gradients ? environmentGradient : nullptr, multipoles);
    };
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
    std::vector<Vec3> polarGradient, environmentGradient; // the polar head's direct dE/dx (its electrostatics), of ML and MM atoms
    std::vector<double> multipoles;
    double energy = network->compute(ml.species, edges, ml.chargeGroups, ml.initialFeatures, coupling, nullptr, includeForces ? &gradient : nullptr,
                                     polarHeadAt(context, &polarGradient, &environmentGradient, &multipoles));
    if (polarHead)
        ml.checkCharges(polarCharges(multipoles));
    if (!environmentGradient.empty()) { // forces on the MM charges, in OpenMM units
        electrostaticForces.assign(platformData(context).positions->size(), Vec3());
        for (size_t k = 0; k < mmParticles.size(); k++)
            electrostaticForces[mmParticles[k]] = environmentGradient[k] * (-m.energyToKJPerMol / m.lengthToNm);
    }
    for (size_t i = 0; i < polarGradient.size() && includeForces; i++)
        gradient[i] += polarGradient[i];
    const double total = energy * m.energyToKJPerMol + electrostaticEnergy;
    ml.checkEnergy(total, m);
    if (includeForces)
        ml.addForces(gradient, m.energyToKJPerMol / m.lengthToNm, electrostaticForces, *platformData(context).forces);
    return total;
}

void ReferenceCalcENNForceKernel::copyParametersToContext(OpenMM::ContextImpl&, const ENNForce& force) {
    ml.update(force);
    const std::vector<int> before = mmParticles;
    readPolarEnvironment(force);
    if (mmParticles != before)
        throw OpenMM::OpenMMException("ENNForce: updateParametersInContext cannot change which particles are MM charges");
    if (electrostatics)
        electrostatics->updateCharges(force);
}

std::vector<double> ReferenceCalcENNForceKernel::getCharges(OpenMM::ContextImpl& context) {
    std::vector<double> charges;
    if (polarHead) {
        std::vector<double> multipoles;
        network->compute(ml.species, buildEdges(context), ml.chargeGroups, ml.initialFeatures, {}, nullptr, nullptr, polarHeadAt(context, nullptr, nullptr, &multipoles));
        charges = polarCharges(multipoles);
        ml.checkCharges(charges);
        return charges;
    }
    network->compute(ml.species, buildEdges(context), ml.chargeGroups, ml.initialFeatures, {}, &charges, nullptr);
    ml.checkCharges(charges);
    return charges;
}
