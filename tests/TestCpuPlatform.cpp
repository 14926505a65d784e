// The CPU platform against the Reference platform (the oracle), with 1 and with 2 threads.
// Tolerances are the issue's: energies to 1e-5 relative, forces to 1e-4 relative RMS with no
// component off by more than 1e-3 of the largest, charges likewise. The CPU network runs in float
// (epsilon 6e-8) through sums of 10^2-10^3 terms per layer, which gives ~1e-6 relative; a wrong
// sign, index or missed image gives errors of order 1. Electrostatics run in double on both.
// Results must be bitwise identical run to run; by construction they are also identical for any
// thread count (every reduction has a fixed order), which is checked too.

#include "ENNTestSystems.h"
#include "openmmenn/ENNModel.h"
#include "openmm/OpenMMException.h"
#include <cmath>
#include <nlohmann/json.hpp>
#include <iostream>

using namespace enntest;

namespace {

/** Energy and forces of the force groups in `groups` (a bit mask), and the predicted charges. */
Result evaluate(const OpenMM::System& system, const std::vector<Vec3>& pos, int groups, OpenMM::Platform& platform,
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

void expectClose(const Result& ref, const Result& cpu, const std::string& label) {
    EXPECT_NEAR(cpu.energy, ref.energy, 1e-5 * std::abs(ref.energy)) << label << ": energy";
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
    EXPECT_LT(std::sqrt(squared / squaredRef), 1e-4) << label << ": relative RMS force error";
    EXPECT_LT(worst, 1e-3 * largest) << label << ": largest force component error";
    ASSERT_EQ(cpu.charges.size(), ref.charges.size()) << label;
    double largestCharge = 0, worstCharge = 0;
    for (size_t i = 0; i < ref.charges.size(); i++) {
        largestCharge = std::max(largestCharge, std::abs(ref.charges[i]));
        worstCharge = std::max(worstCharge, std::abs(cpu.charges[i] - ref.charges[i]));
    }
    EXPECT_LE(worstCharge, 1e-4 * largestCharge) << label << ": charges";
    std::cout << label << ": |dE|/|E| = " << std::abs(cpu.energy - ref.energy) / std::abs(ref.energy)
              << ", relative RMS dF = " << std::sqrt(squared / squaredRef) << std::endl;
}

void expectIdentical(const Result& a, const Result& b, const std::string& label) {
    EXPECT_EQ(a.energy, b.energy) << label;
    for (size_t i = 0; i < a.forces.size(); i++)
        for (int k = 0; k < 3; k++)
            ASSERT_EQ(a.forces[i][k], b.forces[i][k]) << label << ": atom " << i;
    EXPECT_EQ(a.charges, b.charges) << label;
}

/** Reference against CPU with 1 and 2 threads; 2 threads twice (run to run) and 1 vs 2 threads bitwise.
 *  `groups` selects the ENNForce when the System has other forces (OpenMM's own CPU kernels are not
 *  deterministic across thread counts, and are not under test). */
void compareSystem(const OpenMM::System& system, const std::vector<Vec3>& pos, const std::string& label, int groups = -1) {
    const Result ref = evaluate(system, pos, groups, referencePlatform());
    const Result one = evaluate(system, pos, groups, cpuPlatform(), cpuThreads(1));
    const Result two = evaluate(system, pos, groups, cpuPlatform(), cpuThreads(2));
    expectClose(ref, one, label + ", 1 thread");
    expectClose(ref, two, label + ", 2 threads");
    expectIdentical(two, evaluate(system, pos, groups, cpuPlatform(), cpuThreads(2)), label + ", run to run");
    expectIdentical(one, two, label + ", 1 vs 2 threads");
}

/** A System holding one ENNForce over all particles. */
std::unique_ptr<OpenMM::System> mlSystem(const std::string& model, const std::vector<int>& z, const Vec3* box, double totalCharge = 0.0) {
    auto system = std::make_unique<OpenMM::System>();
    auto* force = new ENNForce(model);
    for (int zi : z)
        force->addParticle(system->addParticle(1.0), zi);
    force->setTotalCharge(totalCharge);
    if (box) {
        force->setUsesPeriodicBoundaryConditions(true);
        system->setDefaultPeriodicBoxVectors(box[0], box[1], box[2]);
    }
    system->addForce(force);
    return system;
}

const char* const TestModels[] = {"mixed_charge", "chiral_so3", "chiral_o3", "three_layer_tanh", "frozen_charges", "damped_charge"};

TEST(CpuPlatform, MaceFixtures) {
    for (std::string name : {"public_A", "public_B"}) {
        const std::string refs = fixturesDir() + "/mace/" + name + "/references.json";
        if (!fileExists(refs) || !fileExists(modelPath(name)))
            GTEST_SKIP() << "MACE fixture " << refs << " not found";
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
            compareSystem(*mlSystem(modelPath(name), z, config["pbc"][0].get<bool>() ? box : nullptr), pos,
                          name + " " + config["name"].get<std::string>());
        }
    }
}

TEST(CpuPlatform, EveryModelInVacuumAndSmallBox) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    // A triclinic box smaller than 2 r_c: several images of each pair, and atoms see their own images.
    const Vec3 small[3] = {Vec3(0.52, 0, 0), Vec3(0.11, 0.55, 0), Vec3(-0.07, 0.12, 0.58)};
    for (const char* name : TestModels) {
        compareSystem(*mlSystem(modelPath(name), z, nullptr, -1.0), pos, std::string(name) + " vacuum");
        compareSystem(*mlSystem(modelPath(name), z, small, -1.0), pos, std::string(name) + " small triclinic box");
    }
}

TEST(CpuPlatform, EveryModelInLiquidBox) {
    // About 1000 atoms of water at liquid density around the test molecule in a triclinic box of
    // several cutoffs: the cell list has many cells, and atoms sit across every face.
    TestSystem ts(10, TriclinicBox, -1);
    for (const char* name : TestModels)
        compareSystem(*mlSystem(modelPath(name), ts.z, ts.box, -1.0), ts.pos, std::string(name) + " " + std::to_string(ts.z.size()) + " atoms, triclinic");
}

TEST(CpuPlatform, EveryElectrostaticsMethod) {
    for (auto method : {NonbondedForce::NoCutoff, NonbondedForce::CutoffNonPeriodic, NonbondedForce::CutoffPeriodic, NonbondedForce::PME}) {
        const bool periodic = method == NonbondedForce::CutoffPeriodic || method == NonbondedForce::PME;
        TestSystem ts(6, periodic ? TriclinicBox : nullptr, 40);
        std::unique_ptr<OpenMM::System> system = ts.coupledToNonbonded("damped_charge", method);
        system->getForce(system->getNumForces() - 1).setForceGroup(1);
        compareSystem(*system, ts.pos, "NonbondedForce method " + std::to_string(method), 1 << 1);
    }
    TestSystem ts(6, nullptr, 10);
    compareSystem(*ts.coupledToImplicitSolvent("damped_charge"), ts.pos, "GB-OBC");
}

/** NVE drift (kJ/mol/ns/dof) of the test molecule held by an elastic network, as in TestDynamics. */
double nveDrift(OpenMM::Platform& platform, const std::string& label) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    const Vec3 box[3] = {Vec3(0.6, 0, 0), Vec3(0, 0.6, 0), Vec3(0, 0, 0.6)};
    Simulation sim(modelPath("mixed_charge"), z, pos, box, 0.0, &platform);
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

TEST(CpuPlatform, EnergyConservationComparableToReference) {
    const double reference = nveDrift(referencePlatform(), "Reference");
    const double cpu = nveDrift(cpuPlatform(), "CPU");
    // The bound, plus a floor of 0.01 kJ/mol/ns/dof for the float rounding of the energy
    // itself (~1e-6 relative), which is noise in the fitted slope when the reference drift is tiny.
    EXPECT_LT(std::abs(cpu), std::max(2 * std::abs(reference), 0.01));
}

// Errors found inside worker threads (two atoms at one position, found by the cell list) must
// reach the caller as OpenMMExceptions, as on Reference, and leave the Context usable.
TEST(CpuPlatform, BadPositionsAreOpenMMExceptions) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    Simulation sim(modelPath("mixed_charge"), z, pos, nullptr, 0.0, &cpuPlatform(), cpuThreads(2));
    const double energy = sim.energy();
    std::vector<Vec3> bad = pos;
    bad[3] = Vec3(NAN, 0, 0);
    sim.setPositions(bad);
    EXPECT_THROW(sim.energy(), OpenMM::OpenMMException);
    bad = pos;
    bad[7] = bad[2];
    sim.setPositions(bad);
    try {
        sim.energy();
        ADD_FAILURE() << "coincident atoms were accepted";
    } catch (const OpenMM::OpenMMException& e) {
        EXPECT_NE(std::string(e.what()).find("same position"), std::string::npos) << e.what();
    }
    sim.setPositions(pos);
    EXPECT_EQ(sim.energy(), energy);
}

} // namespace
