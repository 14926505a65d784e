// The electrostatics coupling of ENNForce: its parameters, and the helpers that rewire a System's
// NonbondedForce and GBSAOBCForce so that every term involving predicted charges moves here.

#include "openmmenn/ENNForce.h"
#include "openmmenn/ENNModel.h"
#include "openmm/CustomGBForce.h"
#include "openmm/GBSAOBCForce.h"
#include "openmm/TabulatedFunction.h"
#include "openmm/NonbondedForce.h"
#include "openmm/OpenMMException.h"
#include <cmath>
#include <map>
#include <regex>
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

void removeForceFromSystem(OpenMM::System& system, const OpenMM::Force& force) {
    for (int i = 0; i < system.getNumForces(); i++)
        if (&system.getForce(i) == &force) {
            system.removeForce(i);
            return;
        }
}

/** The value of `name=<number>` in one of openmm.app's GB expressions, or NaN where it is absent. */
double expressionConstant(const std::string& expression, const std::string& name) {
    std::smatch match;
    if (std::regex_search(expression, match, std::regex("(^|[;\\s])" + name + "=([-+0-9.eE]+)")))
        return std::stod(match[2]);
    return std::nan("");
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

void ENNForce::setImplicitSolventModel(ImplicitSolventModel model) {
    if (model < OBC2 || model > GBn2)
        throw OpenMMException("ENNForce: unknown implicit-solvent model " + std::to_string(int(model)));
    implicitSolventModel = model;
}

void ENNForce::setGBFormulation(GBFormulation formulation) {
    if (formulation != GBSAOBCForceFormulation && formulation != AppCustomGBFormulation)
        throw OpenMMException("ENNForce: unknown GB formulation " + std::to_string(int(formulation)));
    gbFormulation = formulation;
}

void ENNForce::setImplicitSolventKappa(double kappa) {
    if (!(kappa >= 0) || !std::isfinite(kappa))
        throw OpenMMException("ENNForce: the implicit-solvent kappa must be zero or positive (1/nm)");
    implicitSolventKappa = kappa;
}

void ENNForce::setImplicitSolventCutoff(double distance) {
    if (!(distance >= 0) || !std::isfinite(distance))
        throw OpenMMException("ENNForce: the implicit-solvent cutoff must be zero (none) or a positive distance (nm)");
    implicitSolventCutoff = distance;
}

void ENNForce::adoptGBCutoff(bool cutoff, bool periodic, double distance, const std::string& forceName) {
    if (!cutoff) {
        setImplicitSolventCutoff(0.0);
        return;
    }
    if (!(distance > 0))
        throw OpenMMException("ENNForce: the " + forceName + " has a cutoff method but no positive cutoff distance");
    if (!periodic && usesPeriodicBoundaryConditions())
        throw OpenMMException("ENNForce: the " + forceName + " is CutoffNonPeriodic but this force is periodic; couple forces of one kind, "
                              "periodic or not");
    setImplicitSolventCutoff(distance);
    if (periodic)
        usePeriodic = true;
}

void ENNForce::setGBParticleBornParameters(int index, double alpha, double beta, double gamma, int neckIndex) {
    checkIndex(index, gbParticles.size(), "GB particle");
    GBParticle& p = gbParticles[index];
    p.alpha = alpha;
    p.beta = beta;
    p.gamma = gamma;
    p.neckIndex = neckIndex;
}

void ENNForce::getGBParticleBornParameters(int index, double& alpha, double& beta, double& gamma, int& neckIndex) const {
    checkIndex(index, gbParticles.size(), "GB particle");
    const GBParticle& p = gbParticles[index];
    alpha = p.alpha;
    beta = p.beta;
    gamma = p.gamma;
    neckIndex = p.neckIndex;
}

void ENNForce::setGBNeckTables(int size, const std::vector<double>& m0, const std::vector<double>& d0) {
    if (size < 0 || m0.size() != size_t(size) * size || d0.size() != size_t(size) * size)
        throw OpenMMException("ENNForce: the GB neck tables must each hold size x size values");
    neckTableSize = size;
    neckM0 = m0;
    neckD0 = d0;
}

void ENNForce::getGBNeckTables(int& size, std::vector<double>& m0, std::vector<double>& d0) const {
    size = neckTableSize;
    m0 = neckM0;
    d0 = neckD0;
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
    GBParticle& p = gbParticles[index];
    p.particle = particle;
    p.charge = charge;
    p.radius = radius;
    p.scaleFactor = scaleFactor;
}

void ENNForce::coupleToNonbondedForce(OpenMM::System& system, OpenMM::NonbondedForce& nonbonded) {
    checkForceInSystem(system, nonbonded, "NonbondedForce");
    if (electrostaticsMethod != NoElectrostatics || !mmParticles.empty() || !exceptions.empty())
        throw OpenMMException("ENNForce: electrostatics are already set up; couple to a NonbondedForce only once, on a fresh force");
    if (particles.empty())
        throw OpenMMException("ENNForce: add the ML particles before coupling to a NonbondedForce");
    if (!model->hasChargeHead && !model->hasPolarHead)
        throw OpenMMException("ENNForce: electrostatic coupling needs a model with a charge head (or a polar head)");
    std::set<int> ml;
    for (const Particle& p : particles) {
        if (p.particle >= nonbonded.getNumParticles())
            throw OpenMMException("ENNForce: ML particle " + std::to_string(p.particle) + " is missing from the NonbondedForce");
        ml.insert(p.particle);
    }
    if (nonbonded.getNumParticles() != system.getNumParticles())
        throw OpenMMException("ENNForce: the NonbondedForce has " + std::to_string(nonbonded.getNumParticles()) +
                              " particles but the System has " + std::to_string(system.getNumParticles()));
    const bool wasPeriodic = usesPeriodicBoundaryConditions();
    switch (nonbonded.getNonbondedMethod()) {
    case OpenMM::NonbondedForce::NoCutoff: electrostaticsMethod = NoCutoff; break;
    case OpenMM::NonbondedForce::CutoffNonPeriodic: electrostaticsMethod = CutoffNonPeriodic; break;
    case OpenMM::NonbondedForce::CutoffPeriodic: electrostaticsMethod = CutoffPeriodic; break;
    case OpenMM::NonbondedForce::PME:
    case OpenMM::NonbondedForce::LJPME: electrostaticsMethod = PME; break;
    default: throw OpenMMException("ENNForce: NonbondedForce method Ewald is not supported; use PME");
    }
    if (implicitSolventCutoff > 0 && usesPeriodicBoundaryConditions() != wasPeriodic)
        throw OpenMMException("ENNForce: the NonbondedForce is periodic but the implicit-solvent force coupled before has a "
                              "non-periodic cutoff; couple forces of one kind, periodic or not");
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
    adoptGBCutoff(gbsa.getNonbondedMethod() != OpenMM::GBSAOBCForce::NoCutoff, gbsa.getNonbondedMethod() == OpenMM::GBSAOBCForce::CutoffPeriodic,
                  gbsa.getCutoffDistance(), "GBSAOBCForce");
    setGBSAOBCParameters(gbsa.getSoluteDielectric(), gbsa.getSolventDielectric(), gbsa.getSurfaceAreaEnergy());
    for (int i = 0; i < gbsa.getNumParticles(); i++) {
        double charge, radius, scale;
        gbsa.getParticleParameters(i, charge, radius, scale);
        gbParticles.push_back({i, charge, radius, scale});
    }
    implicitSolventModel = OBC2;
    gbFormulation = GBSAOBCForceFormulation;
    implicitSolventKappa = 0.0;
    implicitSolvent = true;
    removeForceFromSystem(system, gbsa);
}

void ENNForce::coupleToCustomGBForce(OpenMM::System& system, OpenMM::CustomGBForce& gb) {
    checkForceInSystem(system, gb, "CustomGBForce");
    if (implicitSolvent || !gbParticles.empty())
        throw OpenMMException("ENNForce: implicit solvent is already set up; couple to one GB force only, once");
    if (!model->hasChargeHead)
        throw OpenMMException("ENNForce: electrostatic coupling needs a model with a charge head");
    if (gb.getNumParticles() != system.getNumParticles())
        throw OpenMMException("ENNForce: the CustomGBForce has " + std::to_string(gb.getNumParticles()) + " particles but the System has " +
                              std::to_string(system.getNumParticles()));
    const std::string unknown = "ENNForce: this CustomGBForce is not one of openmm.app's implicit-solvent models (HCT, OBC1, OBC2, GBn, "
                                "GBn2, as ForceField's implicit/*.xml files or createSystem(implicitSolvent=...) make them): ";
    // The Born radii: the computed value B, whose expression names the model.
    std::string born;
    for (int i = 0; i < gb.getNumComputedValues(); i++) {
        std::string name, expression;
        OpenMM::CustomGBForce::ComputationType type;
        gb.getComputedValueParameters(i, name, expression, type);
        if (name == "B")
            born = expression;
    }
    struct Known {
        const char* signature;
        ImplicitSolventModel model;
        double offset;
    };
    const Known known[] = {{"1/(1/or-I)", HCT, 0.009},
                           {"tanh(0.8*psi+2.909125*psi^3)", OBC1, 0.009},
                           {"tanh(psi-0.8*psi^2+4.85*psi^3)", OBC2, 0.009},
                           {"tanh(1.09511284*psi-1.907992938*psi^2+2.50798245*psi^3)", GBn, 0.009},
                           {"tanh(alpha*psi-beta*psi^2+gamma*psi^3)", GBn2, 0.0195141}};
    const Known* found = nullptr;
    for (const Known& k : known)
        if (born.find(k.signature) != std::string::npos)
            found = &k;
    if (found == nullptr)
        throw OpenMMException(unknown + "its Born radius (computed value B) is '" + born + "'. Build the System with one of those, or with a GBSAOBCForce");
    const bool withCutoff = gb.getNonbondedMethod() != OpenMM::CustomGBForce::NoCutoff;
    // Dielectrics, kappa and the offset are written into the energy terms; the ACE term is present or not.
    double solute = std::nan(""), solvent = std::nan(""), kappa = std::nan(""), offset = std::nan("");
    bool ace = false;
    for (int i = 0; i < gb.getNumEnergyTerms(); i++) {
        std::string expression;
        OpenMM::CustomGBForce::ComputationType type;
        gb.getEnergyTermParameters(i, expression, type);
        if (expression.find("(radius/B)^6") != std::string::npos) {
            if (expression.find("28.3919551*(radius+0.14)^2") == std::string::npos)
                throw OpenMMException(unknown + "its surface term is '" + expression + "'");
            ace = true;
            continue;
        }
        if (expression.find("138.935485*(1/soluteDielectric-") == std::string::npos)
            throw OpenMMException(unknown + "its energy term is '" + expression + "'");
        // With a cutoff, openmm.app states it and shifts each pair term by its value there: "*(1/f-<1/cutoff>)".
        const double stated = expressionConstant(expression, "cutoff");
        if (withCutoff != !std::isnan(stated) || (withCutoff && std::abs(stated - gb.getCutoffDistance()) > 1e-9 * stated))
            throw OpenMMException(unknown + "its energy term '" + expression + "' does not state the force's cutoff (" +
                                  (withCutoff ? std::to_string(gb.getCutoffDistance()) + " nm" : std::string("none")) + ")");
        if (type == OpenMM::CustomGBForce::ParticlePairNoExclusions) {
            std::smatch shift;
            const bool shifted = std::regex_search(expression, shift, std::regex("\\*\\(1/f-([-+0-9.eE]+)\\)"));
            if (shifted != withCutoff || (shifted && std::abs(std::stod(shift[1]) * gb.getCutoffDistance() - 1) > 1e-9))
                throw OpenMMException(unknown + "its pair term '" + expression + "' is not shifted to zero at the cutoff as openmm.app writes it");
        }
        solute = expressionConstant(expression, "soluteDielectric");
        solvent = expressionConstant(expression, "solventDielectric");
        kappa = expressionConstant(expression, "kappa");
        offset = expressionConstant(expression, "offset");
    }
    if (std::isnan(solute) || std::isnan(solvent) || std::isnan(kappa) || offset != found->offset)
        throw OpenMMException(unknown + "its energy terms do not state the dielectrics, kappa and offset as openmm.app writes them");
    // Per-particle parameters by name: charge, or (radius - offset), sr (scaled or), [alpha, beta, gamma], [radindex].
    std::map<std::string, int> column;
    for (int i = 0; i < gb.getNumPerParticleParameters(); i++)
        column[gb.getPerParticleParameterName(i)] = i;
    const bool neck = found->model == GBn || found->model == GBn2;
    std::vector<std::string> needed = {"charge", "or", "sr"};
    if (found->model == GBn2)
        needed.insert(needed.end(), {"alpha", "beta", "gamma"});
    if (neck)
        needed.push_back("radindex");
    for (const std::string& name : needed)
        if (!column.count(name))
            throw OpenMMException(unknown + "it has no per-particle parameter '" + name + "'");
    std::vector<double> m0, d0;
    int tableSize = 0;
    if (neck) {
        auto table = [&](const std::string& name, std::vector<double>& values) {
            for (int i = 0; i < gb.getNumTabulatedFunctions(); i++)
                if (gb.getTabulatedFunctionName(i) == name) {
                    auto* f = dynamic_cast<const OpenMM::Discrete2DFunction*>(&gb.getTabulatedFunction(i));
                    int xsize, ysize;
                    if (f != nullptr) {
                        f->getFunctionParameters(xsize, ysize, values);
                        if (xsize == ysize)
                            return xsize;
                    }
                }
            throw OpenMMException(unknown + "it has no square Discrete2DFunction '" + name + "'");
        };
        tableSize = table("getm0", m0);
        if (table("getd0", d0) != tableSize)
            throw OpenMMException(unknown + "its neck tables differ in size");
    }
    adoptGBCutoff(withCutoff, gb.getNonbondedMethod() == OpenMM::CustomGBForce::CutoffPeriodic, gb.getCutoffDistance(), "CustomGBForce");
    setGBSAOBCParameters(solute, solvent, ace ? 28.3919551 / (4 * M_PI) : 0.0);
    setImplicitSolventKappa(kappa);
    std::vector<double> p;
    for (int i = 0; i < gb.getNumParticles(); i++) {
        gb.getParticleParameters(i, p);
        const double offsetRadius = p[column["or"]];
        if (!(offsetRadius > 0))
            throw OpenMMException("ENNForce: the CustomGBForce gives particle " + std::to_string(i) + " no positive radius");
        const int index = addGBParticle(i, p[column["charge"]], offsetRadius + offset, p[column["sr"]] / offsetRadius);
        if (found->model == GBn2)
            setGBParticleBornParameters(index, p[column["alpha"]], p[column["beta"]], p[column["gamma"]], 0);
        if (neck) {
            const double radiusIndex = p[column["radindex"]];
            if (radiusIndex < 0 || radiusIndex >= tableSize || radiusIndex != std::floor(radiusIndex))
                throw OpenMMException("ENNForce: the CustomGBForce gives particle " + std::to_string(i) + " a neck index outside its tables");
            gbParticles[index].neckIndex = static_cast<int>(radiusIndex);
        }
    }
    setGBNeckTables(tableSize, m0, d0);
    implicitSolventModel = found->model;
    gbFormulation = AppCustomGBFormulation;
    implicitSolvent = true;
    removeForceFromSystem(system, gb);
}
