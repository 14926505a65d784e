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

static bool isFinite(const Vec3& v) {
    return std::isfinite(v[0]) && std::isfinite(v[1]) && std::isfinite(v[2]);
}

void ENNParticles::read(const ENNForce& force) {
    particles.clear();
    species.clear();
    for (int i = 0; i < force.getNumParticles(); i++) {
        int particle, z;
        force.getParticleParameters(i, particle, z);
        particles.push_back(particle);
        species.push_back(force.getModel().elementIndex(z));
    }
    chargeGroups = ENNChargeGroups(force);
    periodic = force.usesPeriodicBoundaryConditions();
}

void ENNParticles::update(const ENNForce& force) {
    if (force.getNumParticles() != static_cast<int>(particles.size()))
        throw OpenMM::OpenMMException("ENNForce: updateParametersInContext cannot change the number of particles");
    for (int i = 0; i < force.getNumParticles(); i++) {
        int particle, z;
        force.getParticleParameters(i, particle, z);
        if (particle != particles[i] || force.getModel().elementIndex(z) != species[i])
            throw OpenMM::OpenMMException("ENNForce: updateParametersInContext cannot change the particles or their elements");
    }
    ENNChargeGroups groups(force);
    if (groups.members != chargeGroups.members || groups.start != chargeGroups.start)
        throw OpenMM::OpenMMException("ENNForce: updateParametersInContext cannot change which particles form the charge groups");
    chargeGroups = groups;
}

void ENNParticles::gather(const std::vector<Vec3>& pos, double scale, std::vector<Vec3>& out) const {
    out.resize(particles.size());
    for (size_t i = 0; i < particles.size(); i++) {
        const Vec3& p = pos[particles[i]];
        if (!isFinite(p))
            throw OpenMM::OpenMMException("ENNForce: particle " + std::to_string(particles[i]) + " has a non-finite position (NaN or infinity)");
        if (std::max(std::abs(p[0]), std::max(std::abs(p[1]), std::abs(p[2]))) > ENNSanityBounds::MaxCoordinate)
            throw OpenMM::OpenMMException("ENNForce: particle " + std::to_string(particles[i]) + " is at (" + std::to_string(p[0]) + ", " +
                                          std::to_string(p[1]) + ", " + std::to_string(p[2]) + ") nm, more than 1e4 nm from the origin: " +
                                          "the simulation has blown up");
        out[i] = p * scale;
    }
}

void ENNParticles::checkCharges(const std::vector<double>& charges) const {
    for (size_t i = 0; i < charges.size(); i++)
        if (!(std::abs(charges[i]) <= ENNSanityBounds::MaxCharge))
            throw OpenMM::OpenMMException("ENNForce: the predicted charge of particle " + std::to_string(particles[i]) + " is " +
                                          shortNumber(charges[i]) + " e; the model is far outside its training data there " +
                                          "(a collapsed or exploded structure?)");
}

void ENNParticles::checkEnergy(double energy, const ENNModel& model) const {
    double reference = 0.0;
    for (int s : species)
        reference += model.e0[s] * model.energyToKJPerMol;
    if (!(std::abs(energy - reference) <= ENNSanityBounds::MaxEnergyPerAtom * std::max<size_t>(1, species.size())))
        throw OpenMM::OpenMMException("ENNForce: the energy is " + shortNumber(energy) + " kJ/mol, " +
                                      "far outside anything the model can describe (a collapsed or exploded structure?)");
}

void ENNParticles::addForces(const std::vector<Vec3>& gradient, double scale, const std::vector<Vec3>& extra,
                             std::vector<Vec3>& forces) const {
    auto refuse = [](int particle, const std::string& what) {
        throw OpenMM::OpenMMException("ENNForce: the " + what + " force on particle " + std::to_string(particle) +
                                      " is not finite (NaN or infinity): the model's weights or the structure are far outside anything it can describe");
    };
    for (size_t i = 0; i < particles.size(); i++)
        if (!isFinite(gradient[i]))
            refuse(particles[i], "network's");
    for (size_t j = 0; j < extra.size(); j++)
        if (!isFinite(extra[j]))
            refuse(static_cast<int>(j), "predicted charges' electrostatic");
    for (size_t i = 0; i < particles.size(); i++)
        forces[particles[i]] -= gradient[i] * scale;
    for (size_t j = 0; j < extra.size(); j++)
        forces[j] += extra[j];
}

void ReferenceCalcENNForceKernel::initialize(const OpenMM::System& system, const ENNForce& force) {
    network = std::make_unique<ReferenceENNNetwork>(force.getModelPtr());
    electrostatics = std::make_unique<ReferenceENNElectrostatics>(system, force);
    if (!electrostatics->active())
        electrostatics.reset();
    ml.read(force);
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
    double energy = network->compute(ml.species, edges, ml.chargeGroups, coupling, nullptr, includeForces ? &gradient : nullptr);
    const double total = energy * m.energyToKJPerMol + electrostaticEnergy;
    ml.checkEnergy(total, m);
    if (includeForces)
        ml.addForces(gradient, m.energyToKJPerMol / m.lengthToNm, electrostaticForces, *platformData(context).forces);
    return total;
}

void ReferenceCalcENNForceKernel::copyParametersToContext(OpenMM::ContextImpl&, const ENNForce& force) {
    ml.update(force);
    if (electrostatics)
        electrostatics->updateCharges(force);
}

std::vector<double> ReferenceCalcENNForceKernel::getCharges(OpenMM::ContextImpl& context) {
    std::vector<double> charges;
    network->compute(ml.species, buildEdges(context), ml.chargeGroups, {}, &charges, nullptr);
    ml.checkCharges(charges);
    return charges;
}
