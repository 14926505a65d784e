// The C API (wrappers/c): the C example's results against the C++ API on Reference and CPU, the ENNForce
// functions on a System (Debian's OpenMM has no C wrapper: the System is made in C++ and passed as the opaque
// OpenMM_System* that OpenMM's C API would pass), and every error path: a status code and a message, never a
// crash. Equal to round-off: both sides run the same kernels (1e-12 relative).

#include "OpenMMENNCWrapper.h"
#include "openmmenn/ENNForce.h"
#include "openmm/Context.h"
#include "openmm/NonbondedForce.h"
#include "openmm/Platform.h"
#include "openmm/System.h"
#include "openmm/VerletIntegrator.h"
#include <gtest/gtest.h>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

extern "C" int enn_c_example(const char* model, const char* platform, double* energy, double* forces, double* charges);

using OpenMM::Vec3;
using OpenMMENN::ENNForce;

namespace {

const std::string Model = ENN_SHIPPED_MODEL;
const std::vector<Vec3> Water = {Vec3(0, 0, 0), Vec3(0.0957, 0, 0), Vec3(-0.0240, 0.0927, 0)};

struct Result {
    double energy;
    std::vector<Vec3> forces;
    std::vector<double> charges;
};

/** OpenMM's plugins and ours (OPENMM_PLUGIN_DIR is the test plugin folder), unless the C API loaded them already. */
void ensurePlugins() {
    if (!OpenMM::Platform::getPlatformByName("Reference").supportsKernels({"CalcENNForce"}))
        OpenMM::Platform::loadPluginsFromDirectory(OpenMM::Platform::getDefaultPluginsDirectory());
}

Result cppWater(const std::string& platform) {
    ensurePlugins();
    OpenMM::System system;
    auto* force = new ENNForce(Model);
    for (int z : {8, 1, 1})
        force->addParticle(system.addParticle(1.0), z);
    system.addForce(force);
    OpenMM::VerletIntegrator integrator(0.001);
    std::map<std::string, std::string> properties;
    if (platform == "CPU")
        properties["Threads"] = "1";
    OpenMM::Context context(system, integrator, OpenMM::Platform::getPlatformByName(platform), properties);
    context.setPositions(Water);
    OpenMM::State state = context.getState(OpenMM::State::Energy | OpenMM::State::Forces);
    return {state.getPotentialEnergy(), state.getForces(), force->getCharges(context)};
}

void expectStatus(OpenMM_ENN_Status status, OpenMM_ENN_Status expected, const std::string& fragment) {
    EXPECT_EQ(status, expected) << fragment;
    const std::string message = OpenMM_ENN_getLastErrorMessage();
    EXPECT_NE(message.find(fragment), std::string::npos) << "message '" << message << "' lacks '" << fragment << "'";
}

} // namespace

TEST(CAPI, ExampleMatchesTheCppAPI) {
    for (const char* platform : {"Reference", "CPU"}) {
        double energy, forces[9], charges[3];
        ASSERT_EQ(enn_c_example(Model.c_str(), platform, &energy, forces, charges), 0) << OpenMM_ENN_getLastErrorMessage();
        const Result cpp = cppWater(platform);
        EXPECT_NEAR(energy, cpp.energy, 1e-12 * std::abs(cpp.energy)) << platform;
        double largest = 0;
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 3; k++)
                largest = std::max(largest, std::abs(cpp.forces[i][k]));
        ASSERT_GT(largest, 1.0);
        for (int i = 0; i < 3; i++) {
            for (int k = 0; k < 3; k++)
                EXPECT_NEAR(forces[3 * i + k], cpp.forces[i][k], 1e-12 * largest) << platform << " atom " << i;
            EXPECT_NEAR(charges[i], cpp.charges[i], 1e-12) << platform;
        }
    }
}

TEST(CAPI, ModelUnitsAndPeriodicBox) {
    // The shipped model is in eV and Angstrom: the evaluator in model units takes A and returns eV, eV/A.
    const int z[3] = {8, 1, 1};
    OpenMM_ENNEvaluator *nm = nullptr, *model = nullptr;
    ASSERT_EQ(OpenMM_ENNEvaluator_create(Model.c_str(), 3, z, 0.0, 0, "Reference", 0, nullptr, nullptr, OpenMM_ENN_OpenMMUnits, &nm), 0);
    ASSERT_EQ(OpenMM_ENNEvaluator_create(Model.c_str(), 3, z, 0.0, 0, "Reference", 0, nullptr, nullptr, OpenMM_ENN_ModelUnits, &model), 0);
    double length, energyUnit;
    ASSERT_EQ(OpenMM_ENNEvaluator_getUnits(model, &length, &energyUnit), 0);
    EXPECT_NEAR(length, 0.1, 1e-15);
    EXPECT_NEAR(energyUnit, 96.4853321233100184, 1e-9);
    double x[9], xA[9], e1, e2, f1[9], f2[9];
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) {
            x[3 * i + k] = Water[i][k];
            xA[3 * i + k] = Water[i][k] / length;
        }
    ASSERT_EQ(OpenMM_ENNEvaluator_compute(nm, x, nullptr, &e1, f1, nullptr), 0);
    ASSERT_EQ(OpenMM_ENNEvaluator_compute(model, xA, nullptr, &e2, f2, nullptr), 0);
    EXPECT_NEAR(e2 * energyUnit, e1, 1e-12 * std::abs(e1));
    for (int i = 0; i < 9; i++)
        EXPECT_NEAR(f2[i] * energyUnit / length, f1[i], 1e-9 * std::abs(f1[0]) + 1e-12);
    char* name = nullptr;
    ASSERT_EQ(OpenMM_ENNEvaluator_getPlatformName(model, &name), 0);
    EXPECT_STREQ(name, "Reference");
    OpenMM_ENN_freeString(name);
    OpenMM_ENNEvaluator_destroy(nm);
    OpenMM_ENNEvaluator_destroy(model);
    // Periodic: a water in a 2 nm box has (to the model's cutoff) the energy it has alone, plus its own PME images.
    OpenMM_ENNEvaluator* periodic = nullptr;
    ASSERT_EQ(OpenMM_ENNEvaluator_create(Model.c_str(), 3, z, 0.0, 1, "Reference", 0, nullptr, nullptr, OpenMM_ENN_OpenMMUnits, &periodic), 0);
    const double box[9] = {2, 0, 0, 0, 2, 0, 0, 0, 2};
    double e3;
    ASSERT_EQ(OpenMM_ENNEvaluator_compute(periodic, x, box, &e3, nullptr, nullptr), 0) << OpenMM_ENN_getLastErrorMessage();
    EXPECT_NEAR(e3, e1, 1e-3 * std::abs(e1)); // only the dipole-image energy differs
    expectStatus(OpenMM_ENNEvaluator_compute(periodic, x, nullptr, &e3, nullptr, nullptr), OpenMM_ENN_InvalidArgument, "box");
    OpenMM_ENNEvaluator_destroy(periodic);
}

TEST(CAPI, ForceOnASystemAndSerialization) {
    // A water next to an MM ion, coupled to its NonbondedForce through the C API, against the same in C++.
    auto build = [](bool throughC) {
        auto* system = new OpenMM::System();
        auto* nonbonded = new OpenMM::NonbondedForce();
        for (int i = 0; i < 4; i++) {
            system->addParticle(1.0);
            nonbonded->addParticle(i == 3 ? 1.0 : 0.0, 0.3, 0.5);
        }
        system->addForce(nonbonded);
        if (throughC) {
            OpenMM_ENNForce* force = nullptr;
            EXPECT_EQ(OpenMM_ENNForce_create(Model.c_str(), &force), 0);
            const int z[3] = {8, 1, 1};
            for (int i = 0; i < 3; i++) {
                int index = -1;
                EXPECT_EQ(OpenMM_ENNForce_addParticle(force, i, z[i], &index), 0);
                EXPECT_EQ(index, i);
            }
            EXPECT_EQ(OpenMM_ENNForce_setForceGroup(force, 2), 0);
            EXPECT_EQ(OpenMM_ENNForce_coupleToNonbondedForce(force, reinterpret_cast<OpenMM_System*>(system),
                                                             reinterpret_cast<OpenMM_NonbondedForce*>(nonbonded)), 0)
                << OpenMM_ENN_getLastErrorMessage();
            system->addForce(reinterpret_cast<OpenMM::Force*>(force)); // an OpenMM_ENNForce* is an OpenMM::Force*
        } else {
            auto* force = new ENNForce(Model);
            for (int z : {8, 1, 1})
                force->addParticle(force->getNumParticles(), z);
            force->setForceGroup(2);
            force->coupleToNonbondedForce(*system, *nonbonded);
            system->addForce(force);
        }
        return system;
    };
    ensurePlugins();
    std::vector<Vec3> pos = Water;
    pos.push_back(Vec3(0.35, 0.1, 0.05));
    double energies[2];
    for (int c = 0; c < 2; c++) {
        std::unique_ptr<OpenMM::System> system(build(c == 1));
        OpenMM::VerletIntegrator integrator(0.001);
        OpenMM::Context context(*system, integrator, OpenMM::Platform::getPlatformByName("Reference"));
        context.setPositions(pos);
        energies[c] = context.getState(OpenMM::State::Energy).getPotentialEnergy();
        if (c == 1) {
            auto* force = reinterpret_cast<OpenMM_ENNForce*>(&system->getForce(1));
            double q[3];
            ASSERT_EQ(OpenMM_ENNForce_getCharges(force, reinterpret_cast<OpenMM_Context*>(&context), q, 3), 0);
            EXPECT_NEAR(q[0] + q[1] + q[2], 0.0, 1e-12);
            expectStatus(OpenMM_ENNForce_getCharges(force, reinterpret_cast<OpenMM_Context*>(&context), q, 2), OpenMM_ENN_InvalidArgument,
                         "capacity 2");
            int polar = -1;
            ASSERT_EQ(OpenMM_ENNForce_hasPolarHead(force, &polar), 0);
            EXPECT_EQ(polar, 0);
            double dipoles[9];
            expectStatus(OpenMM_ENNForce_getDipoles(force, reinterpret_cast<OpenMM_Context*>(&context), dipoles, 3), OpenMM_ENN_Error,
                         "predicts no dipoles");
            expectStatus(OpenMM_ENNForce_getDipoles(force, reinterpret_cast<OpenMM_Context*>(&context), dipoles, 2), OpenMM_ENN_InvalidArgument,
                         "capacity 2");
            ASSERT_EQ(OpenMM_ENNForce_setTotalCharge(force, 0.0), 0);
            ASSERT_EQ(OpenMM_ENNForce_setSpinMultiplicity(force, 2), 0);
            expectStatus(OpenMM_ENNForce_setSpinMultiplicity(force, 0), OpenMM_ENN_Error, "at least 1");
            ASSERT_EQ(OpenMM_ENNForce_updateParametersInContext(force, reinterpret_cast<OpenMM_Context*>(&context)), 0);
            int group;
            ASSERT_EQ(OpenMM_ENNForce_getForceGroup(force, &group), 0);
            EXPECT_EQ(group, 2);
            char* xml = nullptr;
            ASSERT_EQ(OpenMM_ENNForce_serialize(force, &xml), 0);
            OpenMM_ENNForce* copy = nullptr;
            ASSERT_EQ(OpenMM_ENNForce_deserialize(xml, &copy), 0) << OpenMM_ENN_getLastErrorMessage();
            OpenMM_ENN_freeString(xml);
            int n, periodic, head, multiplicity;
            ASSERT_EQ(OpenMM_ENNForce_getSpinMultiplicity(copy, &multiplicity), 0);
            EXPECT_EQ(multiplicity, 2);
            ASSERT_EQ(OpenMM_ENNForce_getNumParticles(copy, &n), 0);
            ASSERT_EQ(OpenMM_ENNForce_usesPeriodicBoundaryConditions(copy, &periodic), 0);
            ASSERT_EQ(OpenMM_ENNForce_hasChargeHead(copy, &head), 0);
            EXPECT_EQ(n, 3);
            EXPECT_EQ(periodic, 0);
            EXPECT_EQ(head, 1);
            EXPECT_EQ(OpenMM_ENNForce_destroy(copy), 0);
        }
    }
    EXPECT_NEAR(energies[1], energies[0], 1e-12 * std::abs(energies[0]));
}

TEST(CAPI, EveryErrorPathGivesAStatusAndAMessage) {
    const int z[3] = {8, 1, 1}, uranium[3] = {92, 1, 1};
    const double x[9] = {0, 0, 0, 0.0957, 0, 0, -0.024, 0.0927, 0};
    double energy;
    OpenMM_ENNEvaluator* e = nullptr;
    OpenMM_ENNForce* force = nullptr;
    expectStatus(OpenMM_ENNForce_create(nullptr, &force), OpenMM_ENN_InvalidArgument, "modelFile is NULL");
    expectStatus(OpenMM_ENNForce_create(Model.c_str(), nullptr), OpenMM_ENN_InvalidArgument, "force is NULL");
    expectStatus(OpenMM_ENNForce_create("/nonexistent.enn", &force), OpenMM_ENN_Error, "/nonexistent.enn");
    EXPECT_EQ(force, nullptr);
    expectStatus(OpenMM_ENNForce_create(ENN_C_API_NOT_A_MODEL, &force), OpenMM_ENN_Error, "");
    EXPECT_GT(std::string(OpenMM_ENN_getLastErrorMessage()).size(), 10u);
    expectStatus(OpenMM_ENNForce_createFromBytes("garbage", 7, &force), OpenMM_ENN_Error, "");
    expectStatus(OpenMM_ENNForce_createFromBytes(nullptr, 7, &force), OpenMM_ENN_InvalidArgument, "data is NULL");
    ASSERT_EQ(OpenMM_ENNForce_create(Model.c_str(), &force), 0);
    EXPECT_STREQ(OpenMM_ENN_getLastErrorMessage(), "");
    expectStatus(OpenMM_ENNForce_addParticle(force, 0, 92, nullptr), OpenMM_ENN_Error, "92");
    expectStatus(OpenMM_ENNForce_addParticle(force, -1, 8, nullptr), OpenMM_ENN_InvalidArgument, "negative");
    expectStatus(OpenMM_ENNForce_addParticle(nullptr, 0, 8, nullptr), OpenMM_ENN_InvalidArgument, "force is NULL");
    expectStatus(OpenMM_ENNForce_setForceGroup(force, 32), OpenMM_ENN_InvalidArgument, "0..31");
    expectStatus(OpenMM_ENNForce_getNumParticles(force, nullptr), OpenMM_ENN_InvalidArgument, "count is NULL");
    expectStatus(OpenMM_ENNForce_coupleToNonbondedForce(force, nullptr, nullptr), OpenMM_ENN_InvalidArgument, "is NULL");
    expectStatus(OpenMM_ENNForce_getCharges(force, nullptr, &energy, 1), OpenMM_ENN_InvalidArgument, "");
    expectStatus(OpenMM_ENNForce_getDipoles(force, nullptr, &energy, 1), OpenMM_ENN_InvalidArgument, "");
    expectStatus(OpenMM_ENNForce_hasPolarHead(force, nullptr), OpenMM_ENN_InvalidArgument, "hasPolarHead is NULL");
    OpenMM_ENNForce* deserialized = force;
    expectStatus(OpenMM_ENNForce_deserialize("<Force type=\"HarmonicBondForce\" version=\"2\"><Bonds/></Force>", &deserialized),
                 OpenMM_ENN_Error, "");
    expectStatus(OpenMM_ENNForce_deserialize("not xml", &deserialized), OpenMM_ENN_Error, "");
    EXPECT_EQ(deserialized, nullptr);
    expectStatus(OpenMM_ENNEvaluator_create(Model.c_str(), -1, z, 0, 0, "Reference", 0, nullptr, nullptr, OpenMM_ENN_OpenMMUnits, &e),
                 OpenMM_ENN_InvalidArgument, "numAtoms must be positive");
    expectStatus(OpenMM_ENNEvaluator_create(Model.c_str(), 3, nullptr, 0, 0, "Reference", 0, nullptr, nullptr, OpenMM_ENN_OpenMMUnits, &e),
                 OpenMM_ENN_InvalidArgument, "atomicNumbers is NULL");
    expectStatus(OpenMM_ENNEvaluator_create(Model.c_str(), 3, uranium, 0, 0, "Reference", 0, nullptr, nullptr, OpenMM_ENN_OpenMMUnits, &e),
                 OpenMM_ENN_Error, "92");
    expectStatus(OpenMM_ENNEvaluator_create(Model.c_str(), 3, z, 0, 0, "NoSuchPlatform", 0, nullptr, nullptr, OpenMM_ENN_OpenMMUnits, &e),
                 OpenMM_ENN_Error, "NoSuchPlatform");
    expectStatus(OpenMM_ENNEvaluator_create(Model.c_str(), 3, z, 0, 0, "Reference", -2, nullptr, nullptr, OpenMM_ENN_OpenMMUnits, &e),
                 OpenMM_ENN_InvalidArgument, "numProperties");
    expectStatus(OpenMM_ENNEvaluator_create(Model.c_str(), 3, z, 0, 0, "Reference", 1, nullptr, nullptr, OpenMM_ENN_OpenMMUnits, &e),
                 OpenMM_ENN_InvalidArgument, "propertyNames is NULL");
    expectStatus(OpenMM_ENNEvaluator_create(Model.c_str(), 3, z, 0, 0, "Reference", 0, nullptr, nullptr, static_cast<OpenMM_ENN_Units>(7), &e),
                 OpenMM_ENN_InvalidArgument, "unknown units");
    EXPECT_EQ(e, nullptr);
    ASSERT_EQ(OpenMM_ENNEvaluator_create(Model.c_str(), 3, z, 0, 0, "Reference", 0, nullptr, nullptr, OpenMM_ENN_OpenMMUnits, &e), 0);
    expectStatus(OpenMM_ENNEvaluator_compute(e, nullptr, nullptr, &energy, nullptr, nullptr), OpenMM_ENN_InvalidArgument, "positions is NULL");
    expectStatus(OpenMM_ENNEvaluator_compute(e, x, nullptr, nullptr, nullptr, nullptr), OpenMM_ENN_InvalidArgument, "energy is NULL");
    const double box[9] = {2, 0, 0, 0, 2, 0, 0, 0, 2};
    expectStatus(OpenMM_ENNEvaluator_compute(e, x, box, &energy, nullptr, nullptr), OpenMM_ENN_InvalidArgument, "not periodic");
    const double nan[9] = {NAN, 0, 0, 0.0957, 0, 0, -0.024, 0.0927, 0};
    expectStatus(OpenMM_ENNEvaluator_compute(e, nan, nullptr, &energy, nullptr, nullptr), OpenMM_ENN_Error, "non-finite");
    EXPECT_EQ(OpenMM_ENNEvaluator_compute(e, x, nullptr, &energy, nullptr, nullptr), 0); // still usable
    expectStatus(OpenMM_ENNEvaluator_getUnits(nullptr, &energy, &energy), OpenMM_ENN_InvalidArgument, "evaluator is NULL");
    expectStatus(OpenMM_ENNEvaluator_destroy(nullptr), OpenMM_ENN_InvalidArgument, "evaluator is NULL");
    EXPECT_EQ(OpenMM_ENNEvaluator_destroy(e), 0);
    EXPECT_EQ(OpenMM_ENNForce_destroy(force), 0);
    // The message is per thread: another thread's error leaves this thread's (none, after a success) alone.
    std::string other;
    std::thread([&] {
        OpenMM_ENNForce* f = nullptr;
        OpenMM_ENNForce_create(nullptr, &f);
        other = OpenMM_ENN_getLastErrorMessage();
    }).join();
    EXPECT_NE(other.find("modelFile is NULL"), std::string::npos);
    EXPECT_STREQ(OpenMM_ENN_getLastErrorMessage(), "");
}
