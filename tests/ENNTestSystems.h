#ifndef OPENMM_ENN_TEST_SYSTEMS_H_
#define OPENMM_ENN_TEST_SYSTEMS_H_

// A ligand among TIP3P-like waters, as classical Systems and as ENNForce ML regions: the
// electrostatics tests (Reference against OpenMM's own forces) and the platform comparisons share it.

#include "ENNTestUtilities.h"
#include "openmm/GBSAOBCForce.h"
#include "openmm/HarmonicBondForce.h"
#include "openmm/LocalEnergyMinimizer.h"
#include "openmm/NonbondedForce.h"
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>

namespace enntest {

using OpenMM::NonbondedForce;
using OpenMMENN::ENNForce;

const Vec3 CubicBox[3] = {Vec3(2.4, 0, 0), Vec3(0, 2.4, 0), Vec3(0, 0, 2.4)};
const Vec3 TriclinicBox[3] = {Vec3(2.4, 0, 0), Vec3(0.4, 2.3, 0), Vec3(-0.5, 0.6, 2.2)};

/** A cubic box of water around the ligand for NVE runs with PME (cutoff 0.9 nm < half the box). */
const Vec3 CubicWaterBox[3] = {Vec3(2.1, 0, 0), Vec3(0, 2.1, 0), Vec3(0, 0, 2.1)};

const std::map<int, double> FrozenCharge = {{1, 0.21}, {6, -0.13}, {7, -0.47}, {8, -0.52}};

/** A ligand (the small test molecule) among TIP3P-like waters. The first `numML` ligand atoms form the ML region. */
struct TestSystem {
    std::vector<int> z;      // atomic number of every particle
    std::vector<Vec3> pos;
    std::vector<int> ml;     // ML particles
    int ligandSize = 0;      // the ligand is particles [0, ligandSize), then come the waters
    std::vector<std::pair<int, int>> bonds;
    bool periodic = false;
    Vec3 box[3];

    /** numWaters < 0: fill the box with waters on a 0.31 nm lattice (a liquid-density solvent). */
    TestSystem(int numML, const Vec3* boxVectors, int numWaters) {
        smallMolecule(z, pos);
        ligandSize = static_cast<int>(z.size());
        for (int i = 0; i < numML; i++)
            ml.push_back(i);
        Vec3 center(1.2, 1.2, 1.2);
        for (Vec3& p : pos)
            p += center;
        for (size_t i = 0; i < pos.size(); i++)
            for (size_t j = 0; j < i; j++)
                if (std::sqrt((pos[i] - pos[j]).dot(pos[i] - pos[j])) < 0.16)
                    bonds.push_back({(int) j, (int) i});
        if (boxVectors) {
            periodic = true;
            for (int k = 0; k < 3; k++)
                box[k] = boxVectors[k];
        }
        std::mt19937 rng(11);
        std::uniform_real_distribution<double> uniform(0.0, 1.0);
        int added = 0;
        const Vec3 cell[3] = {boxVectors ? boxVectors[0] : Vec3(2.4, 0, 0), boxVectors ? boxVectors[1] : Vec3(0, 2.4, 0),
                              boxVectors ? boxVectors[2] : Vec3(0, 0, 2.4)};
        std::vector<Vec3> lattice;
        if (numWaters < 0) {
            const int n = static_cast<int>(cell[0][0] / 0.31);
            for (int a = 0; a < n; a++)
                for (int b = 0; b < n; b++)
                    for (int c = 0; c < n; c++)
                        lattice.push_back(cell[0] * ((a + 0.5) / n) + cell[1] * ((b + 0.5) / n) + cell[2] * ((c + 0.5) / n));
            numWaters = static_cast<int>(lattice.size());
        }
        for (size_t site = 0; added < numWaters; site++) {
            Vec3 o = lattice.empty() ? cell[0] * uniform(rng) + cell[1] * uniform(rng) + cell[2] * uniform(rng) : lattice[site];
            bool clash = false;
            for (const Vec3& p : pos) {
                Vec3 d = p - o;
                if (boxVectors) // nearest image
                    for (int k = 2; k >= 0; k--)
                        d -= cell[k] * std::round(d[k] / cell[k][k]);
                clash = clash || std::sqrt(d.dot(d)) < 0.3;
            }
            if (clash) {
                if (!lattice.empty())
                    numWaters--;
                continue;
            }
            auto rot = randomOrthogonal(rng, false);
            Vec3 h1 = o + rotate(rot, Vec3(0.09572, 0, 0)), h2 = o + rotate(rot, Vec3(-0.024, 0.0927, 0));
            const int first = static_cast<int>(z.size());
            z.insert(z.end(), {8, 1, 1});
            pos.insert(pos.end(), {o, h1, h2});
            bonds.push_back({first, first + 1});
            bonds.push_back({first, first + 2});
            added++;
        }
    }

    bool isML(int i) const { return std::find(ml.begin(), ml.end(), i) != ml.end(); }
    bool isWater(int i) const { return i >= 10; }

    double charge(int i) const {
        if (!isWater(i))
            return FrozenCharge.at(z[i]);
        return z[i] == 8 ? -0.834 : 0.417;
    }

    /** What the classical System does with the Coulomb energy of ML-ML pairs: the force field's own
     *  (exceptions from bonds), that of a model with its own point-charge Coulomb term (every ML-ML pair
     *  an ordinary pair of the method, no exceptions), or that of a model without one (all excluded). */
    enum class MLPairs { ForceField, Ordinary, Excluded };

    /** The classical System: all charges, LJ on heavy atoms, exceptions from bonds (AMBER 1-4 scales). */
    OpenMM::System* classical(NonbondedForce::NonbondedMethod method, double cutoff = 1.0, MLPairs mlPairs = MLPairs::ForceField) const {
        auto* system = new OpenMM::System();
        auto* nb = new NonbondedForce();
        for (size_t i = 0; i < z.size(); i++) {
            system->addParticle(z[i] == 1 ? 1.008 : 2.0 * z[i]);
            nb->addParticle(charge(i), z[i] == 1 ? 0.1 : 0.315, z[i] == 1 ? 0.0 : 0.6);
        }
        NonbondedForce fromBonds;
        for (size_t i = 0; i < z.size(); i++) {
            double q, sigma, eps;
            nb->getParticleParameters(i, q, sigma, eps);
            fromBonds.addParticle(q, sigma, eps);
        }
        fromBonds.createExceptionsFromBonds(bonds, 0.8333, 0.5);
        std::set<std::pair<int, int>> excepted;
        for (int e = 0; e < fromBonds.getNumExceptions(); e++) {
            int a, b;
            double qq, sigma, eps;
            fromBonds.getExceptionParameters(e, a, b, qq, sigma, eps);
            const bool mlPair = isML(a) && isML(b);
            if (mlPair && mlPairs == MLPairs::Ordinary)
                continue;
            nb->addException(a, b, mlPair && mlPairs == MLPairs::Excluded ? 0.0 : qq, sigma, eps);
            excepted.insert({std::min(a, b), std::max(a, b)});
        }
        if (mlPairs == MLPairs::Excluded) // the other ML-ML pairs: Coulomb excluded, Lennard-Jones as before
            for (int a : ml)
                for (int b : ml) {
                    if (a >= b || excepted.count({a, b}))
                        continue;
                    double qa, sa, ea, qb, sb, eb;
                    nb->getParticleParameters(a, qa, sa, ea);
                    nb->getParticleParameters(b, qb, sb, eb);
                    nb->addException(a, b, 0.0, 0.5 * (sa + sb), std::sqrt(ea * eb));
                }
        nb->setNonbondedMethod(method);
        nb->setCutoffDistance(cutoff);
        nb->setReactionFieldDielectric(78.3);
        nb->setUseDispersionCorrection(false);
        nb->setPMEParameters(3.2, 28, 28, 28);
        if (periodic)
            system->setDefaultPeriodicBoxVectors(box[0], box[1], box[2]);
        system->addForce(nb);
        return system;
    }

    /** Lennard-Jones between ML atoms only (the rewired NonbondedForce excludes it: it is the model's job). */
    OpenMM::System* mlLennardJones(NonbondedForce::NonbondedMethod method, MLPairs mlPairs = MLPairs::ForceField) const {
        OpenMM::System* system = classical(method, 1.0, mlPairs);
        auto& nb = dynamic_cast<NonbondedForce&>(system->getForce(0));
        for (int i = 0; i < nb.getNumParticles(); i++) {
            double q, sigma, eps;
            nb.getParticleParameters(i, q, sigma, eps);
            nb.setParticleParameters(i, 0.0, sigma, isML(i) ? eps : 0.0);
        }
        for (int e = 0; e < nb.getNumExceptions(); e++) {
            int a, b;
            double qq, sigma, eps;
            nb.getExceptionParameters(e, a, b, qq, sigma, eps);
            nb.setExceptionParameters(e, a, b, 0.0, sigma, isML(a) && isML(b) ? eps : 0.0);
        }
        return system;
    }

    double mlTotalCharge() const {
        double q = 0;
        for (int i : ml)
            q += charge(i);
        return q;
    }

    /** Predicted charges coupled to NonbondedForce `method` (the ENNForce in force group `group`); ML-ML pairs as in classical. */
    std::unique_ptr<OpenMM::System> coupledToNonbonded(const std::string& model, NonbondedForce::NonbondedMethod method,
                                                       MLPairs mlPairs = MLPairs::ForceField, int group = 0) const {
        std::unique_ptr<OpenMM::System> system(classical(method, 1.0, mlPairs));
        ENNForce* force = ennForce(model);
        force->setForceGroup(group);
        system->addForce(force);
        force->coupleToNonbondedForce(*system, dynamic_cast<NonbondedForce&>(system->getForce(0)));
        return system;
    }

    /** Only an ENNForce of `model` (a model with its own Coulomb term) over the ML particles, that term summed by the
     *  ENNForce method matching NonbondedForce `method`, cutoff 1 nm. */
    std::unique_ptr<OpenMM::System> mlOnly(const std::string& model, NonbondedForce::NonbondedMethod method) const {
        auto system = std::make_unique<OpenMM::System>();
        for (size_t i = 0; i < z.size(); i++)
            system->addParticle(1.0);
        if (periodic)
            system->setDefaultPeriodicBoxVectors(box[0], box[1], box[2]);
        ENNForce* force = ennForce(model);
        force->setElectrostaticsMethod(method == NonbondedForce::PME                 ? ENNForce::PME
                                       : method == NonbondedForce::CutoffPeriodic    ? ENNForce::CutoffPeriodic
                                       : method == NonbondedForce::CutoffNonPeriodic ? ENNForce::CutoffNonPeriodic
                                                                                     : ENNForce::NoCutoff);
        force->setCutoffDistance(1.0);
        system->addForce(force);
        return system;
    }

    /** Predicted charges coupled to a GBSAOBCForce over all particles (no other force). */
    std::unique_ptr<OpenMM::System> coupledToImplicitSolvent(const std::string& model) const {
        auto system = std::make_unique<OpenMM::System>();
        auto* gb = new OpenMM::GBSAOBCForce();
        for (size_t i = 0; i < z.size(); i++) {
            system->addParticle(1.0);
            gb->addParticle(charge(i), z[i] == 1 ? 0.12 : 0.16, 0.8);
        }
        system->addForce(gb);
        ENNForce* force = ennForce(model);
        system->addForce(force);
        force->coupleToGBSAOBCForce(*system, *gb);
        return system;
    }

    /** coupledToImplicitSolvent, then switched to another GB model and formulation (GBn2: kappa 0.7 / nm; GBn and GBn2:
     *  made-up neck tables and Born parameters, which every platform reads alike), with a GB cutoff (nm, 0: none) and
     *  periodic boundary conditions (the System's default box is this system's box). */
    std::unique_ptr<OpenMM::System> coupledToImplicitSolvent(const std::string& model, ENNForce::ImplicitSolventModel gbModel,
                                                             ENNForce::GBFormulation formulation, double cutoff) const {
        std::unique_ptr<OpenMM::System> system = coupledToImplicitSolvent(model);
        if (periodic)
            system->setDefaultPeriodicBoxVectors(box[0], box[1], box[2]);
        auto& force = dynamic_cast<ENNForce&>(system->getForce(system->getNumForces() - 1));
        force.setGBFormulation(formulation);
        force.setImplicitSolventModel(gbModel);
        force.setImplicitSolventKappa(gbModel == ENNForce::GBn2 ? 0.7 : 0.0);
        force.setGBNeckTables(2, {0.030, 0.025, 0.028, 0.021}, {0.28, 0.31, 0.30, 0.34});
        for (int i = 0; i < force.getNumGBParticles(); i++)
            force.setGBParticleBornParameters(i, 1.0 + 0.01 * (i % 3), 0.8, 4.85 - 0.1 * (i % 2), i % 2);
        force.setImplicitSolventCutoff(cutoff);
        force.setUsesPeriodicBoundaryConditions(periodic);
        return system;
    }

    /** An elastic network holding the (untrained) ligand together, and rigid waters. */
    void restrain(OpenMM::System& system) const {
        auto* springs = new OpenMM::HarmonicBondForce();
        for (int i = 0; i < ligandSize; i++)
            for (int j = 0; j < i; j++)
                springs->addBond(i, j, std::sqrt((pos[i] - pos[j]).dot(pos[i] - pos[j])), 2e4);
        system.addForce(springs);
        for (size_t i = ligandSize; i < z.size(); i += 3) {
            system.addConstraint(i, i + 1, 0.09572);
            system.addConstraint(i, i + 2, 0.09572);
            system.addConstraint(i + 1, i + 2, 0.15139);
        }
    }

    /** The ligand in rigid water with PME (cutoff 0.9 nm, parameters from the default tolerance), held
     *  together by an elastic network; with a model, an ENNForce predicts the ligand's charges. */
    std::unique_ptr<OpenMM::System> ligandInWaterWithPME(const std::string& model) const {
        std::unique_ptr<OpenMM::System> system(classical(NonbondedForce::PME, 0.9));
        auto& nb = dynamic_cast<NonbondedForce&>(system->getForce(0));
        nb.setPMEParameters(0, 0, 0, 0);
        restrain(*system);
        if (!model.empty()) {
            ENNForce* force = ennForce(model);
            system->addForce(force);
            force->coupleToNonbondedForce(*system, nb);
        }
        return system;
    }

    /** The system in implicit solvent (GB-OBC over every particle), the ligand held by an elastic
     *  network; with a model, an ENNForce predicts the ligand's charges and takes over the GB force. */
    std::unique_ptr<OpenMM::System> ligandInImplicitSolvent(const std::string& model) const {
        auto system = std::make_unique<OpenMM::System>();
        auto* gb = new OpenMM::GBSAOBCForce();
        for (size_t i = 0; i < z.size(); i++) {
            system->addParticle(z[i] == 1 ? 1.008 : 2.0 * z[i]);
            gb->addParticle(charge(i), z[i] == 1 ? 0.12 : 0.16, 0.8);
        }
        system->addForce(gb);
        restrain(*system);
        if (!model.empty()) {
            ENNForce* force = ennForce(model);
            system->addForce(force);
            force->coupleToGBSAOBCForce(*system, *gb);
        }
        return system;
    }

    /** PME with a 1 nm cutoff in a 1.5 nm cubic box, coupled to a frozen-charge model; the NonbondedForce
     *  (which would refuse the box first) is removed, so that the ENNForce must refuse it. */
    std::unique_ptr<OpenMM::System> cutoffOverHalfTheBox() const {
        std::unique_ptr<OpenMM::System> system(classical(NonbondedForce::PME, 1.0));
        const Vec3 small[3] = {Vec3(1.5, 0, 0), Vec3(0, 1.5, 0), Vec3(0, 0, 1.5)};
        system->setDefaultPeriodicBoxVectors(small[0], small[1], small[2]);
        ENNForce* force = ennForce("frozen_charges");
        system->addForce(force);
        force->coupleToNonbondedForce(*system, dynamic_cast<NonbondedForce&>(system->getForce(0)));
        system->removeForce(0);
        return system;
    }

    ENNForce* ennForce(const std::string& model) const {
        auto* force = new ENNForce(modelPath(model));
        for (int i : ml)
            force->addParticle(i, z[i]);
        if (!force->hasLatentCharges()) // (latent charges take no total)
            force->setTotalCharge(mlTotalCharge());
        force->setUsesPeriodicBoundaryConditions(periodic);
        return force;
    }
};

/** Velocity seeds for the drift tests: `defaults`, or ENN_DRIFT_SEEDS (comma-separated) to measure more of them. */
inline std::vector<int> seedsFromEnvironment(const std::vector<int>& defaults) {
    const char* text = std::getenv("ENN_DRIFT_SEEDS");
    if (text == nullptr || *text == '\0')
        return defaults;
    std::vector<int> seeds;
    std::stringstream list(text);
    for (std::string item; std::getline(list, item, ',');)
        seeds.push_back(std::stoi(item));
    return seeds;
}

/** NVE drift (kJ/mol/ns/dof) after minimization and a warm-up of 50 steps, fitted over 400 steps; with several
 * velocity seeds (300 K), each run starts from the same minimized structure and the RMS over the seeds is returned. */
inline double nveDriftAfterMinimization(const OpenMM::System& system, const std::vector<Vec3>& pos, const std::string& label,
                                        double stepSize = 0.001, OpenMM::Platform& platform = referencePlatform(),
                                        const std::map<std::string, std::string>& properties = {},
                                        const std::vector<int>& seeds = {7}) {
    // Minimized on Reference, whatever the platform under test: OpenMM 8.5+'s on-device minimizer crashes on
    // PoCL 3.1 (its getScale kernel, for any System), and every platform then starts from the same structure.
    std::vector<Vec3> minimized;
    {
        OpenMM::VerletIntegrator unused(stepSize);
        OpenMM::Context reference(system, unused, referencePlatform());
        reference.setPositions(pos);
        OpenMM::LocalEnergyMinimizer::minimize(reference, 10.0, 200);
        minimized = reference.getState(OpenMM::State::Positions).getPositions();
    }
    OpenMM::VerletIntegrator integrator(stepSize);
    OpenMM::Context context(system, integrator, platform, properties);
    double sumSquares = 0.0;
    for (int seed : seeds) {
        context.setPositions(minimized);
        context.setVelocitiesToTemperature(300.0, seed);
        integrator.step(50);
        std::vector<double> t, e;
        for (int sample = 0; sample <= 40; sample++) {
            OpenMM::State s = context.getState(OpenMM::State::Energy);
            t.push_back(s.getTime());
            e.push_back(s.getPotentialEnergy() + s.getKineticEnergy());
            integrator.step(10);
        }
        const double drift = driftPerNsPerDof(t, e, 3 * system.getNumParticles() - system.getNumConstraints());
        std::cout << label << ": " << system.getNumParticles() << " particles, seed " << seed << ", drift " << drift
                  << " kJ/mol/ns/dof" << std::endl;
        sumSquares += drift * drift;
    }
    return std::sqrt(sumSquares / seeds.size());
}

} // namespace enntest

#endif
