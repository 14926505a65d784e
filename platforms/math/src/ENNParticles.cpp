#include "ENNParticles.h"
#include "ENNSanityBounds.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cmath>
#include <string>

using namespace OpenMMENN;
using OpenMM::Vec3;

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
    spinMultiplicity = force.getSpinMultiplicity();
    initialFeatures = initialNodeFeatures(force.getModel(), chargeGroups.total(), spinMultiplicity);
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
    initialFeatures = initialNodeFeatures(force.getModel(), groups.total(), force.getSpinMultiplicity());
    chargeGroups = groups;
    spinMultiplicity = force.getSpinMultiplicity();
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
