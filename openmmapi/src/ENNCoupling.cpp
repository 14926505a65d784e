// The electrostatics coupling of ENNForce: its parameters, and the helpers that rewire a System's
// NonbondedForce and GBSAOBCForce so that every term involving predicted charges moves here.

#include "openmmenn/ENNForce.h"
#include "openmmenn/ENNModel.h"
#include "openmm/GBSAOBCForce.h"
#include "openmm/NonbondedForce.h"
#include "openmm/OpenMMException.h"
#include <map>
#include <set>

using namespace OpenMMENN;
using OpenMM::OpenMMException;

namespace {

void checkIndex(int index, size_t size, const char* what) {
    if (index < 0 || index >= static_cast<int>(size))
        throw OpenMMException(std::string("ENNForce: ") + what + " index " + std::to_string(index) + " out of range");
}

void checkForceInSystem(const OpenMM::System& system, const OpenMM::Force& force, const std::string& name) {
    for (int i = 0; i < system.getNumForces(); i++)
        if (&system.getForce(i) == &force)
            return;
    throw OpenMMException("ENNForce: the " + name + " to couple to is not in the System");
}

} // namespace

void ENNForce::setPMEParameters(double alpha, int nx, int ny, int nz) {
    if (alpha < 0 || nx < 0 || ny < 0 || nz < 0)
        throw OpenMMException("ENNForce: PME alpha and grid dimensions must not be negative");
    pmeAlpha = alpha;
    pmeGrid[0] = nx;
    pmeGrid[1] = ny;
    pmeGrid[2] = nz;
}

void ENNForce::getPMEParameters(double& alpha, int& nx, int& ny, int& nz) const {
    alpha = pmeAlpha;
    nx = pmeGrid[0];
    ny = pmeGrid[1];
    nz = pmeGrid[2];
}

int ENNForce::addMMParticle(int particle, double charge) {
    mmParticles.push_back({particle, charge});
    return getNumMMParticles() - 1;
}

void ENNForce::getMMParticleParameters(int index, int& particle, double& charge) const {
    checkIndex(index, mmParticles.size(), "MM particle");
    particle = mmParticles[index].particle;
    charge = mmParticles[index].charge;
}

void ENNForce::setMMParticleParameters(int index, int particle, double charge) {
    checkIndex(index, mmParticles.size(), "MM particle");
    mmParticles[index] = {particle, charge};
}

int ENNForce::addElectrostaticException(int particle1, int particle2, double chargeScale) {
    exceptions.push_back({particle1, particle2, chargeScale});
    return getNumElectrostaticExceptions() - 1;
}

void ENNForce::getElectrostaticExceptionParameters(int index, int& particle1, int& particle2, double& chargeScale) const {
    checkIndex(index, exceptions.size(), "exception");
    particle1 = exceptions[index].particle1;
    particle2 = exceptions[index].particle2;
    chargeScale = exceptions[index].chargeScale;
}

void ENNForce::setGBSAOBCParameters(double solute, double solvent, double surfaceArea) {
    if (!(solute > 0) || !(solvent > 0))
        throw OpenMMException("ENNForce: GB dielectrics must be positive");
    soluteDielectric = solute;
    solventDielectric = solvent;
    surfaceAreaEnergy = surfaceArea;
}

void ENNForce::getGBSAOBCParameters(double& solute, double& solvent, double& surfaceArea) const {
    solute = soluteDielectric;
    solvent = solventDielectric;
    surfaceArea = surfaceAreaEnergy;
}

int ENNForce::addGBParticle(int particle, double charge, double radius, double scaleFactor) {
    gbParticles.push_back({particle, charge, radius, scaleFactor});
    return getNumGBParticles() - 1;
}

void ENNForce::getGBParticleParameters(int index, int& particle, double& charge, double& radius, double& scaleFactor) const {
    checkIndex(index, gbParticles.size(), "GB particle");
    const GBParticle& p = gbParticles[index];
    particle = p.particle;
    charge = p.charge;
    radius = p.radius;
    scaleFactor = p.scaleFactor;
}

void ENNForce::setGBParticleParameters(int index, int particle, double charge, double radius, double scaleFactor) {
    checkIndex(index, gbParticles.size(), "GB particle");
    gbParticles[index] = {particle, charge, radius, scaleFactor};
}

void ENNForce::coupleToNonbondedForce(OpenMM::System& system, OpenMM::NonbondedForce& nonbonded) {
    checkForceInSystem(system, nonbonded, "NonbondedForce");
    if (electrostaticsMethod != NoElectrostatics || !mmParticles.empty() || !exceptions.empty())
        throw OpenMMException("ENNForce: electrostatics are already set up; couple to a NonbondedForce only once, on a fresh force");
    if (particles.empty())
        throw OpenMMException("ENNForce: add the ML particles before coupling to a NonbondedForce");
    if (!model->hasChargeHead)
        throw OpenMMException("ENNForce: electrostatic coupling needs a model with a charge head");
    std::set<int> ml;
    for (const Particle& p : particles) {
        if (p.particle >= nonbonded.getNumParticles())
            throw OpenMMException("ENNForce: ML particle " + std::to_string(p.particle) + " is missing from the NonbondedForce");
        ml.insert(p.particle);
    }
    if (nonbonded.getNumParticles() != system.getNumParticles())
        throw OpenMMException("ENNForce: the NonbondedForce has " + std::to_string(nonbonded.getNumParticles()) +
                              " particles but the System has " + std::to_string(system.getNumParticles()));
    switch (nonbonded.getNonbondedMethod()) {
    case OpenMM::NonbondedForce::NoCutoff: electrostaticsMethod = NoCutoff; break;
    case OpenMM::NonbondedForce::CutoffNonPeriodic: electrostaticsMethod = CutoffNonPeriodic; break;
    case OpenMM::NonbondedForce::CutoffPeriodic: electrostaticsMethod = CutoffPeriodic; break;
    case OpenMM::NonbondedForce::PME:
    case OpenMM::NonbondedForce::LJPME: electrostaticsMethod = PME; break;
    default: throw OpenMMException("ENNForce: NonbondedForce method Ewald is not supported; use PME");
    }
    cutoffDistance = nonbonded.getCutoffDistance();
    reactionFieldDielectric = nonbonded.getReactionFieldDielectric();
    ewaldErrorTolerance = nonbonded.getEwaldErrorTolerance();
    double alpha;
    int nx, ny, nz;
    nonbonded.getPMEParameters(alpha, nx, ny, nz);
    setPMEParameters(alpha, nx, ny, nz);

    std::vector<double> originalCharge(nonbonded.getNumParticles());
    for (int i = 0; i < nonbonded.getNumParticles(); i++) {
        double q, sigma, epsilon;
        nonbonded.getParticleParameters(i, q, sigma, epsilon);
        originalCharge[i] = q;
        if (ml.count(i))
            nonbonded.setParticleParameters(i, 0.0, sigma, epsilon);
        else
            mmParticles.push_back({i, q});
    }
    std::set<std::pair<int, int>> excepted;
    for (int e = 0; e < nonbonded.getNumExceptions(); e++) {
        int p1, p2;
        double chargeProd, sigma, epsilon;
        nonbonded.getExceptionParameters(e, p1, p2, chargeProd, sigma, epsilon);
        const bool ml1 = ml.count(p1) > 0, ml2 = ml.count(p2) > 0;
        if (!ml1 && !ml2)
            continue;
        excepted.insert({std::min(p1, p2), std::max(p1, p2)});
        if (ml1 && ml2) {
            // ML-ML electrostatics are the model's (its own Coulomb term, or none): nothing to copy.
            nonbonded.setExceptionParameters(e, p1, p2, 0.0, sigma, 0.0);
            continue;
        }
        const double product = originalCharge[p1] * originalCharge[p2];
        double scale = 0.0;
        if (chargeProd != 0.0) {
            if (product == 0.0)
                throw OpenMMException("ENNForce: exception " + std::to_string(p1) + "-" + std::to_string(p2) +
                                      " has a charge product but its particles have no charge, so its Coulomb scale is unknown");
            scale = chargeProd / product;
        }
        exceptions.push_back({p1, p2, scale});
        nonbonded.setExceptionParameters(e, p1, p2, 0.0, sigma, epsilon);
    }
    // Every other ML-ML pair: excluded in the NonbondedForce (the model owns short-range ML-ML physics).
    for (auto a = ml.begin(); a != ml.end(); ++a)
        for (auto b = std::next(a); b != ml.end(); ++b)
            if (!excepted.count({*a, *b}))
                nonbonded.addException(*a, *b, 0.0, 1.0, 0.0);
}

void ENNForce::coupleToGBSAOBCForce(OpenMM::System& system, OpenMM::GBSAOBCForce& gbsa) {
    checkForceInSystem(system, gbsa, "GBSAOBCForce");
    if (implicitSolvent || !gbParticles.empty())
        throw OpenMMException("ENNForce: implicit solvent is already set up; couple to a GBSAOBCForce only once");
    if (gbsa.getNumParticles() != system.getNumParticles())
        throw OpenMMException("ENNForce: the GBSAOBCForce has " + std::to_string(gbsa.getNumParticles()) +
                              " particles but the System has " + std::to_string(system.getNumParticles()));
    if (!model->hasChargeHead)
        throw OpenMMException("ENNForce: electrostatic coupling needs a model with a charge head");
    if (gbsa.getNonbondedMethod() != OpenMM::GBSAOBCForce::NoCutoff)
        throw OpenMMException("ENNForce: only GBSAOBCForce with NoCutoff can be coupled");
    setGBSAOBCParameters(gbsa.getSoluteDielectric(), gbsa.getSolventDielectric(), gbsa.getSurfaceAreaEnergy());
    for (int i = 0; i < gbsa.getNumParticles(); i++) {
        double charge, radius, scale;
        gbsa.getParticleParameters(i, charge, radius, scale);
        gbParticles.push_back({i, charge, radius, scale});
    }
    implicitSolvent = true;
    for (int i = 0; i < system.getNumForces(); i++)
        if (&system.getForce(i) == &gbsa) {
            system.removeForce(i);
            break;
        }
}
