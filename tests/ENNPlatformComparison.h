#ifndef OPENMM_ENN_PLATFORM_COMPARISON_H_
#define OPENMM_ENN_PLATFORM_COMPARISON_H_

// Comparing an optimized platform with the Reference platform (the oracle): evaluation through a
// Context, tolerances, the MACE fixture configurations, and an NVE drift measurement.
// Shared by the CPU and OpenCL platform suites.

#include "ENNTestSystems.h"
#include "openmmenn/ENNModel.h"
#include "openmm/OpenMMException.h"
#include <chrono>
#include <cmath>
#include <array>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>

namespace enntest {

/** Largest relative deviations accepted from Reference. */
struct Tolerance {
    double energy, rmsForce, worstForce, charge;
};
/** Float arithmetic (CPU; GPU in single and mixed precision): float epsilon 6e-8 through sums of
 *  10^2-10^3 terms per layer gives ~1e-6; a wrong sign, index or missed image gives errors of order 1. */
const Tolerance FloatTolerance{1e-5, 1e-4, 1e-3, 1e-4};

/** Energy and forces of the force groups in `groups` (a bit mask), and the predicted charges. */
inline Result evaluate(const OpenMM::System& system, const std::vector<Vec3>& pos, int groups, OpenMM::Platform& platform,
                const std::map<std::string, std::string>& properties = {}) {
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(system, integrator, platform, properties);
    context.setPositions(pos);
    OpenMM::State state = context.getState(OpenMM::State::Energy | OpenMM::State::Forces, false, groups);
    Result r{state.getPotentialEnergy(), state.getForces(), {}};
    for (int i = 0; i < system.getNumForces(); i++)
        if (auto* force = dynamic_cast<const ENNForce*>(&system.getForce(i)))
            if (force->getModel().hasChargeHead)
                r.charges = force->getCharges(context);
    return r;
}

inline void expectClose(const Result& ref, const Result& cpu, const std::string& label, const Tolerance& tol = FloatTolerance) {
    EXPECT_NEAR(cpu.energy, ref.energy, tol.energy * std::abs(ref.energy)) << label << ": energy";
    const double largest = maxAbs(ref.forces);
    double squared = 0, squaredRef = 0, worst = 0;
    for (size_t i = 0; i < ref.forces.size(); i++)
        for (int k = 0; k < 3; k++) {
            const double d = cpu.forces[i][k] - ref.forces[i][k];
            squared += d * d;
            squaredRef += ref.forces[i][k] * ref.forces[i][k];
            worst = std::max(worst, std::abs(d));
        }
    EXPECT_GT(largest, 0.0) << label;
    EXPECT_LT(std::sqrt(squared / squaredRef), tol.rmsForce) << label << ": relative RMS force error";
    EXPECT_LT(worst, tol.worstForce * largest) << label << ": largest force component error";
    ASSERT_EQ(cpu.charges.size(), ref.charges.size()) << label;
    double largestCharge = 0, worstCharge = 0;
    for (size_t i = 0; i < ref.charges.size(); i++) {
        largestCharge = std::max(largestCharge, std::abs(ref.charges[i]));
        worstCharge = std::max(worstCharge, std::abs(cpu.charges[i] - ref.charges[i]));
    }
    EXPECT_LE(worstCharge, tol.charge * largestCharge) << label << ": charges";
    std::cout << label << ": |dE|/|E| = " << std::abs(cpu.energy - ref.energy) / std::abs(ref.energy)
              << ", relative RMS dF = " << std::sqrt(squared / squaredRef) << std::endl;
}

inline void expectIdentical(const Result& a, const Result& b, const std::string& label) {
    EXPECT_EQ(a.energy, b.energy) << label;
    for (size_t i = 0; i < a.forces.size(); i++)
        for (int k = 0; k < 3; k++)
            ASSERT_EQ(a.forces[i][k], b.forces[i][k]) << label << ": atom " << i;
    EXPECT_EQ(a.charges, b.charges) << label;
}

/** A System holding one ENNForce over all particles. */
inline std::unique_ptr<OpenMM::System> mlSystem(const std::string& model, const std::vector<int>& z, const Vec3* box, double totalCharge = 0.0,
                                                int spinMultiplicity = 1) {
    auto system = std::make_unique<OpenMM::System>();
    auto* force = new ENNForce(model);
    for (int zi : z)
        force->addParticle(system->addParticle(1.0), zi);
    if (totalCharge != 0 || !force->hasLatentCharges()) // (latent charges take none)
        force->setTotalCharge(totalCharge);
    force->setSpinMultiplicity(spinMultiplicity);
    if (box)
        makePeriodic(*force, *system, box);
    system->addForce(force);
    return system;
}

const char* const TestModels[] = {"mixed_charge", "chiral_so3", "chiral_o3", "three_layer_tanh", "frozen_charges", "frozen_charges_coulomb",
                                  "damped_charge"};

/** What a comparison visits: a System, positions, a label, and the force groups to compare (-1: all). */
typedef std::function<void(const OpenMM::System&, const std::vector<Vec3>&, const std::string&, int)> SystemVisitor;

/** Every test model on the test molecule in vacuum and in a triclinic box smaller than 2 r_c (several
 *  images of each pair; atoms see their own images). */
inline void forEachModelInVacuumAndSmallBox(const SystemVisitor& visit) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    const Vec3 small[3] = {Vec3(0.52, 0, 0), Vec3(0.11, 0.55, 0), Vec3(-0.07, 0.12, 0.58)};
    for (const char* name : TestModels) {
        visit(*mlSystem(modelPath(name), z, nullptr, -1.0), pos, std::string(name) + " vacuum", -1);
        visit(*mlSystem(modelPath(name), z, small, -1.0), pos, std::string(name) + " small triclinic box", -1);
    }
}

/** One model on the test molecule in vacuum and in a triclinic box smaller than 2 r_c, and around water at liquid
 *  density in a box of several cells, so that edges join every pair of its elements (H, C, N, O) and atoms sit within
 *  the ZBL range of each other; each placement with its (total charge, spin multiplicity). */
inline void forEachPlacement(const std::string& name, const SystemVisitor& visit, const std::array<std::pair<double, int>, 3>& states) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    const Vec3 small[3] = {Vec3(0.52, 0, 0), Vec3(0.11, 0.55, 0), Vec3(-0.07, 0.12, 0.58)};
    TestSystem ts(6, TriclinicBox, -1);
    auto label = [&](const std::string& where, int k) {
        return name + " " + where + ", charge " + std::to_string(states[k].first) + ", multiplicity " + std::to_string(states[k].second);
    };
    const std::string path = modelPath(name);
    visit(*mlSystem(path, z, nullptr, states[0].first, states[0].second), pos, label("vacuum", 0), -1);
    visit(*mlSystem(path, z, small, states[1].first, states[1].second), pos, label("small triclinic box", 1), -1);
    visit(*mlSystem(path, ts.z, ts.box, states[2].first, states[2].second), ts.pos, label(std::to_string(ts.z.size()) + " atoms, triclinic", 2), -1);
}

/** The models of MACE's materials blocks (density normalisation, Agnesi, ZBL: "materials"; classic blocks with ZBL
 *  and the Soft transform: "materials_soft"), each placed as forEachPlacement says. */
inline void forEachMaterialsSystem(const SystemVisitor& visit) {
    for (const std::string name : {"materials", "materials_soft"})
        forEachPlacement(name, visit, {{{-1.0, 1}, {-1.0, 1}, {-1.0, 1}}});
}

/** MACE's non-linear block family ("nonlinear": non-linear blocks with element-embedded radial networks, apply_cutoff
 *  false, the charge and spin embedding, Agnesi and ZBL), placed as forEachPlacement says: an anion doublet, a neutral
 *  singlet and a cation triplet. */
inline void forEachNonLinearSystem(const SystemVisitor& visit) {
    forEachPlacement("nonlinear", visit, {{{-1.0, 2}, {0.0, 1}, {1.0, 3}}});
}

/** MACELES's latent charges ("latent_charges": a charge readout of every layer, unconstrained, its Gaussian Coulomb term
 *  with its own constant), placed as forEachPlacement says (in vacuum the pair sum; in the boxes the les library's
 *  truncated reciprocal sum, as trained), and in the liquid box with PME (the converged sum). */
inline void forEachLatentChargeSystem(const SystemVisitor& visit) {
    forEachPlacement("latent_charges", visit, {{{0.0, 1}, {0.0, 1}, {0.0, 1}}});
    TestSystem ts(6, TriclinicBox, -1);
    std::unique_ptr<OpenMM::System> system = mlSystem(modelPath("latent_charges"), ts.z, ts.box);
    auto& force = dynamic_cast<ENNForce&>(system->getForce(0));
    force.setElectrostaticsMethod(ENNForce::PME);
    force.setCutoffDistance(0.45 * std::min(ts.box[0][0], std::min(ts.box[1][1], ts.box[2][2])));
    visit(*system, ts.pos, "latent_charges " + std::to_string(ts.z.size()) + " atoms, triclinic, PME (converged)", -1);
}

/** A new total charge and multiplicity set with updateParametersInContext give what a new Context gives with them (the
 *  model "nonlinear", whose joint embedding reads both), and change the energy. */
inline void expectChargeAndSpinUpdatesLikeANewContext(OpenMM::Platform& platform, const std::map<std::string, std::string>& properties) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    std::unique_ptr<OpenMM::System> system = mlSystem(modelPath("nonlinear"), z, nullptr, 0.0, 1);
    auto& force = dynamic_cast<ENNForce&>(system->getForce(0));
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(*system, integrator, platform, properties);
    context.setPositions(pos);
    double previous = context.getState(OpenMM::State::Energy).getPotentialEnergy();
    for (const auto& [charge, multiplicity] : std::vector<std::pair<double, int>>{{1.0, 2}, {-2.0, 3}, {0.0, 1}}) {
        force.setTotalCharge(charge);
        force.setSpinMultiplicity(multiplicity);
        force.updateParametersInContext(context);
        const std::string label = "charge " + std::to_string(charge) + ", multiplicity " + std::to_string(multiplicity);
        const Result updated = evaluate(*system, pos, -1, platform, properties);
        OpenMM::State state = context.getState(OpenMM::State::Energy | OpenMM::State::Forces);
        EXPECT_EQ(state.getPotentialEnergy(), updated.energy) << label;
        for (size_t i = 0; i < pos.size(); i++)
            for (int k = 0; k < 3; k++)
                EXPECT_EQ(state.getForces()[i][k], updated.forces[i][k]) << label;
        EXPECT_GT(std::abs(state.getPotentialEnergy() - previous), 1e-3) << label << ": the inputs must matter";
        previous = state.getPotentialEnergy();
    }
}

/** Predicted charges coupled by every electrostatics method (NonbondedForce NoCutoff, reaction field
 *  non-periodic and periodic, PME in a triclinic box; GB-OBC). The ENNForce is in force group 1 where
 *  the System has OpenMM's own forces too, which are not under test. */
inline void forEachElectrostaticsMethod(const SystemVisitor& visit) {
    for (auto method : {NonbondedForce::NoCutoff, NonbondedForce::CutoffNonPeriodic, NonbondedForce::CutoffPeriodic, NonbondedForce::PME}) {
        const bool periodic = method == NonbondedForce::CutoffPeriodic || method == NonbondedForce::PME;
        TestSystem ts(6, periodic ? TriclinicBox : nullptr, 40);
        std::unique_ptr<OpenMM::System> system = ts.coupledToNonbonded("damped_charge", method);
        system->getForce(system->getNumForces() - 1).setForceGroup(1);
        visit(*system, ts.pos, "NonbondedForce method " + std::to_string(method), 1 << 1);
    }
    TestSystem ts(6, nullptr, 10);
    visit(*ts.coupledToImplicitSolvent("damped_charge"), ts.pos, "GB-OBC", -1);
}

/** Calls visit for every configuration of both MACE fixtures; false if they are absent (a test failure). */
inline bool forEachFixtureConfig(const SystemVisitor& visit) {
    for (std::string name : {"public_A", "public_B"}) {
        const std::string refs = fixturesDir() + "/mace/" + name + "/references.json";
        if (!fileExists(refs) || !fileExists(modelPath(name)))
            return false;
        std::ifstream in(refs);
        nlohmann::json data = nlohmann::json::parse(in);
        for (const auto& config : data["configs"]) {
            std::vector<int> z = config["numbers"].get<std::vector<int>>();
            std::vector<Vec3> pos;
            for (const auto& p : config["positions"])
                pos.push_back(Vec3(p[0].get<double>(), p[1].get<double>(), p[2].get<double>()) * 0.1);
            Vec3 box[3];
            for (int k = 0; k < 3; k++)
                box[k] = Vec3(config["cell"][k][0].get<double>(), config["cell"][k][1].get<double>(), config["cell"][k][2].get<double>()) * 0.1;
            visit(*mlSystem(modelPath(name), z, config["pbc"][0].get<bool>() ? box : nullptr), pos, name + " " + config["name"].get<std::string>(), -1);
        }
    }
    return true;
}

/** A non-finite position and two atoms at one point are OpenMMExceptions, as on Reference, and the
 *  Context stays usable (its energy afterwards is unchanged). */
inline void expectBadPositionsRefused(OpenMM::Platform& platform, const std::map<std::string, std::string>& properties) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    Simulation sim(modelPath("mixed_charge"), z, pos, nullptr, 0.0, &platform, properties);
    const double energy = sim.energy();
    std::vector<Vec3> bad = pos;
    bad[3] = Vec3(NAN, 0, 0);
    sim.setPositions(bad);
    EXPECT_THROW(sim.energy(), OpenMM::OpenMMException);
    bad = pos;
    bad[7] = bad[2];
    sim.setPositions(bad);
    expectOpenMMException([&] { sim.energy(); }, "same position");
    // A blown-up simulation: an atom 1e6 nm away is refused at once, naming it; atoms spread over
    // thousands of nm (inside the bound) are evaluated with memory that follows the number of atoms.
    bad = pos;
    bad[5] = Vec3(1e6, 0, 0);
    sim.setPositions(bad);
    const auto start = std::chrono::steady_clock::now();
    expectOpenMMException([&] { sim.energy(); }, "particle 5 is");
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 1.0) << "the issue's bound";
    for (size_t i = 0; i < bad.size(); i++)
        bad[i] = Vec3(9e3 * std::cos(1.7 * i), -9e3 * std::sin(2.3 * i), 4e3 * i / bad.size());
    sim.setPositions(bad);
    EXPECT_TRUE(std::isfinite(sim.energy()));
    sim.setPositions(pos);
    EXPECT_EQ(sim.energy(), energy);
    // Predicted charges far outside anything trained on (here forced by a total charge of 20 e per atom)
    // are refused, naming the particle, when they enter the energy (a model with its own Coulomb term).
    Simulation charged(modelPath("damped_charge"), z, pos, nullptr, 20.0 * z.size(), &platform, properties);
    expectOpenMMException([&] { charged.energy(); }, "the predicted charge of particle");
}

/** An energy far beyond anything physical (a network with 1e9 eV per unit readout) is an OpenMMException,
 *  and so are weights that overflow double precision: a NaN energy, NaN or 1e300 charges (make_test_models.py),
 *  whether the charges are asked for or enter the energy (a model with its own Coulomb term), with and without
 *  forces. The GPU platforms check the energy and forces on the device and report them in the step's status. */
inline void expectAbsurdEnergyRefused(OpenMM::Platform& platform, const std::map<std::string, std::string>& properties) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    Simulation sim(modelPath("absurd_energy"), z, pos, nullptr, 0.0, &platform, properties);
    expectOpenMMException([&] { sim.energy(); }, "far outside anything the model can describe");
    Simulation overflowing(modelPath("overflowing_energy"), z, pos, nullptr, 0.0, &platform, properties);
    expectOpenMMException([&] { overflowing.energy(); }, "far outside anything the model can describe");
    expectOpenMMException([&] { overflowing.context->getState(OpenMM::State::Forces | OpenMM::State::Energy); }, "far outside");
    Simulation charges(modelPath("overflowing_charges"), z, pos, nullptr, 0.0, &platform, properties);
    expectOpenMMException([&] { charges.energy(); }, "the predicted charge of particle");
    expectOpenMMException([&] { charges.context->getState(OpenMM::State::Forces); }, "the predicted charge of particle");
    expectOpenMMException([&] { charges.force->getCharges(*charges.context); }, "the predicted charge of particle");
}

/**
 * Bad box vectors and parameter updates through the public API on a running Context, each an OpenMMException
 * naming the problem, after which the Context gives its earlier energy again once the input is sound:
 * NaN, infinite, huge (1e30 nm) and vanishing box vectors for a periodic model; a box that shrinks (as under
 * a barostat) until the PME cutoff exceeds half of it; updateParametersInContext with a particle added, an
 * element changed, or a charge group changed.
 */
inline void expectBadBoxAndUpdatesRefused(OpenMM::Platform& platform, const std::map<std::string, std::string>& properties) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    const Vec3 box[3] = {Vec3(1.0, 0, 0), Vec3(0, 1.0, 0), Vec3(0, 0, 1.0)};
    Simulation sim(modelPath("mixed_charge"), z, pos, box, 0.0, &platform, properties);
    const double energy = sim.energy();
    for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(), 1e30, 1e-30, 1e-3}) {
        SCOPED_TRACE(bad);
        sim.context->setPeriodicBoxVectors(Vec3(bad, 0, 0), box[1], box[2]);
        expectOpenMMException([&] { sim.energy(); }, "periodic box");
        expectOpenMMException([&] { sim.force->getCharges(*sim.context); }, "periodic box");
        sim.context->setPeriodicBoxVectors(box[0], box[1], box[2]);
        EXPECT_EQ(sim.energy(), energy);
    }

    TestSystem ts(6, CubicBox, 5);
    std::unique_ptr<OpenMM::System> coupled = ts.cutoffOverHalfTheBox();
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(*coupled, integrator, platform, properties);
    context.setPeriodicBoxVectors(CubicBox[0], CubicBox[1], CubicBox[2]);
    context.setPositions(ts.pos);
    const double coupledEnergy = context.getState(OpenMM::State::Energy).getPotentialEnergy();
    context.setPeriodicBoxVectors(CubicBox[0] * 0.8, CubicBox[1] * 0.8, CubicBox[2] * 0.8); // 1.92 nm: cutoff 1 nm > half
    expectOpenMMException([&] { context.getState(OpenMM::State::Energy); }, "larger than half the periodic box");
    context.setPeriodicBoxVectors(CubicBox[0], CubicBox[1], CubicBox[2]);
    EXPECT_EQ(context.getState(OpenMM::State::Energy).getPotentialEnergy(), coupledEnergy);

    // Each change is undone before the next, and the Context still gives its energy.
    OpenMMENN::ENNForce& force = *sim.force;
    force.setParticleParameters(4, 4, 6);
    expectOpenMMException([&] { force.updateParametersInContext(*sim.context); }, "cannot change the particles or their elements");
    force.setParticleParameters(4, 4, z[4]);
    force.addChargeGroup({0, 1, 2}, 0.0);
    expectOpenMMException([&] { force.updateParametersInContext(*sim.context); }, "charge group");
    force.setChargeGroupParameters(0, {}, 0.0);
    force.addParticle(0, 8); // (a System particle added under a live Context would corrupt OpenMM's own arrays)
    expectOpenMMException([&] { force.updateParametersInContext(*sim.context); }, "cannot change the number of particles");
    EXPECT_EQ(sim.energy(), energy);
}

/** NVE drift (kJ/mol/ns/dof) of the test molecule held by an elastic network, as in TestDynamics. */
inline double nveDrift(OpenMM::Platform& platform, const std::string& label, const std::map<std::string, std::string>& properties = {}) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    const Vec3 box[3] = {Vec3(0.6, 0, 0), Vec3(0, 0.6, 0), Vec3(0, 0, 0.6)};
    Simulation sim(modelPath("mixed_charge"), z, pos, box, 0.0, &platform, properties);
    sim.system.addForce(elasticNetwork(pos, 1e3));
    sim.context->reinitialize(true);
    sim.integrator.setStepSize(0.00025);
    sim.context->setVelocitiesToTemperature(300.0, 2024);
    std::vector<double> t, e;
    for (int sample = 0; sample <= 50; sample++) {
        OpenMM::State s = sim.context->getState(OpenMM::State::Energy);
        t.push_back(s.getTime());
        e.push_back(s.getPotentialEnergy() + s.getKineticEnergy());
        sim.integrator.step(16);
    }
    const double drift = driftPerNsPerDof(t, e, 3 * static_cast<int>(z.size()));
    std::cout << label << ": drift " << drift << " kJ/mol/ns/dof over 0.2 ps at 0.25 fs" << std::endl;
    return drift;
}

} // namespace enntest

#endif
