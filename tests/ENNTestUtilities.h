#ifndef OPENMM_ENN_TEST_UTILITIES_H_
#define OPENMM_ENN_TEST_UTILITIES_H_

// Shared helpers for the C++ tests: where the test models live, and evaluating an ENNForce
// through a real OpenMM Context on the Reference platform.

#include "openmmenn/ENNForce.h"
#include "openmmenn/ENNModel.h"
#include "openmm/Context.h"
#include "openmm/HarmonicBondForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/State.h"
#include "openmm/System.h"
#include "openmm/VerletIntegrator.h"
#include <gtest/gtest.h>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

extern "C" void registerENNReferenceKernelFactories();
/** An OpenMM platform loaded from its plugin library in OpenMM's plugin folder, with our kernels
 *  registered on it once. */
inline OpenMM::Platform& platformWithENNKernels(const std::string& name, const std::string& library, void (*registerKernels)()) {
    static std::map<std::string, bool> registered;
    if (!registered[name]) {
        OpenMM::Platform::loadPluginLibrary(std::string(ENN_OPENMM_PLUGIN_DIR) + "/" + library);
        registerKernels();
        registered[name] = true;
    }
    return OpenMM::Platform::getPlatformByName(name);
}

/** Runs `action` and expects an OpenMMException whose message contains `expected`. */
inline void expectOpenMMException(const std::function<void()>& action, const std::string& expected) {
    try {
        action();
        ADD_FAILURE() << "no error; expected '" << expected << "'";
    } catch (const OpenMM::OpenMMException& e) {
        EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
}

#ifdef ENN_HAVE_CPU
extern "C" void registerENNCpuKernelFactories();
#endif
#ifdef ENN_HAVE_OPENCL
extern "C" void registerENNOpenCLKernelFactories();
#endif

namespace enntest {

using OpenMM::Vec3;

inline std::string fixturesDir() {
    const char* env = std::getenv("ENN_FIXTURES_DIR");
    return env ? env : ENN_FIXTURES_DIR;
}

inline bool fileExists(const std::string& path) {
    return std::ifstream(path).good();
}

/** Path of a model written by make_test_models.py. */
inline std::string modelPath(const std::string& name) {
    return std::string(ENN_TEST_MODELS_DIR) + "/" + name + ".enn";
}

inline OpenMM::Platform& referencePlatform() {
    static bool registered = false;
    if (!registered) {
        registerENNReferenceKernelFactories();
        registered = true;
    }
    return OpenMM::Platform::getPlatformByName("Reference");
}

#ifdef ENN_HAVE_CPU
/** OpenMM's CPU platform with our CPU kernels registered. */
inline OpenMM::Platform& cpuPlatform() {
    return platformWithENNKernels("CPU", "libOpenMMCPU.so", registerENNCpuKernelFactories);
}

/** Context properties selecting the CPU platform's thread count. */
inline std::map<std::string, std::string> cpuThreads(int threads) {
    return {{"Threads", std::to_string(threads)}};
}
#endif

#ifdef ENN_HAVE_OPENCL
/** OpenMM's OpenCL platform with our common-compute kernels registered. */
inline OpenMM::Platform& openclPlatform() {
    return platformWithENNKernels("OpenCL", "libOpenMMOpenCL.so", registerENNOpenCLKernelFactories);
}

inline std::map<std::string, std::string> precision(const std::string& mode) {
    return {{"Precision", mode}};
}
#endif

/** What a test reads back from a Context: energy (kJ/mol), forces (kJ/mol/nm), predicted charges (e; empty without a charge head). */
struct Result {
    double energy;
    std::vector<Vec3> forces;
    std::vector<double> charges;
};

/** Makes `force` periodic in `box` (also the System's default box). A model whose energy includes its own
 *  Coulomb term must say how to sum it there: PME, cutoff 0.45 of the box's smallest diagonal element. */
inline void makePeriodic(OpenMMENN::ENNForce& force, OpenMM::System& system, const Vec3* box) {
    force.setUsesPeriodicBoundaryConditions(true);
    system.setDefaultPeriodicBoxVectors(box[0], box[1], box[2]);
    // The model's own Coulomb term in the box: the periodic sum it was trained with where it declares one (MACELES),
    // else PME.
    if (force.getModel().chargeCoulombIncluded && !force.hasTrainedPeriodicSum()) {
        force.setElectrostaticsMethod(OpenMMENN::ENNForce::PME);
        force.setCutoffDistance(0.45 * std::min(box[0][0], std::min(box[1][1], box[2][2])));
    }
}

/** A System holding only an ENNForce over all its particles, with a Context (Reference by default). */
struct Simulation {
    OpenMM::System system;
    OpenMM::VerletIntegrator integrator{0.0005};
    std::unique_ptr<OpenMM::Context> context;
    OpenMMENN::ENNForce* force;

    Simulation(const std::string& model, const std::vector<int>& atomicNumbers, const std::vector<Vec3>& positions,
               const Vec3* box = nullptr, double totalCharge = 0.0, OpenMM::Platform* platform = nullptr,
               const std::map<std::string, std::string>& properties = {}) {
        force = new OpenMMENN::ENNForce(model);
        for (int z : atomicNumbers) {
            force->addParticle(system.addParticle(z == 1 ? 1.008 : 2.0 * z), z);
        }
        if (totalCharge != 0 || !force->hasLatentCharges()) // (latent charges take none)
            force->setTotalCharge(totalCharge);
        if (box != nullptr)
            makePeriodic(*force, system, box);
        system.addForce(force);
        context = std::make_unique<OpenMM::Context>(system, integrator, platform ? *platform : referencePlatform(), properties);
        context->setPositions(positions);
    }
    double energy() { return context->getState(OpenMM::State::Energy).getPotentialEnergy(); }
    std::vector<Vec3> forces() { return context->getState(OpenMM::State::Forces).getForces(); }
    void setPositions(const std::vector<Vec3>& positions) { context->setPositions(positions); }
};

/** A uniformly random rotation matrix (rows), times -1 when `reflect`. */
inline std::array<Vec3, 3> randomOrthogonal(std::mt19937& rng, bool reflect) {
    std::normal_distribution<double> normal;
    double q[4];
    double norm = 0.0;
    for (double& x : q) {
        x = normal(rng);
        norm += x * x;
    }
    norm = std::sqrt(norm);
    double a = q[0] / norm, b = q[1] / norm, c = q[2] / norm, d = q[3] / norm;
    std::array<Vec3, 3> r = {Vec3(a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)),
                             Vec3(2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)),
                             Vec3(2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d)};
    if (reflect)
        for (auto& row : r)
            row *= -1.0;
    return r;
}

inline Vec3 rotate(const std::array<Vec3, 3>& r, const Vec3& v) {
    return Vec3(r[0].dot(v), r[1].dot(v), r[2].dot(v));
}

/** A small organic-looking molecule (nm): C, N, O and H at bonded distances, no symmetry. */
inline void smallMolecule(std::vector<int>& z, std::vector<Vec3>& pos) {
    z = {6, 6, 8, 7, 1, 1, 1, 1, 1, 1};
    pos = {Vec3(0.000, 0.010, -0.005), Vec3(0.151, -0.004, 0.012), Vec3(0.212, 0.101, 0.003), Vec3(0.208, -0.125, 0.021),
           Vec3(-0.038, 0.112, 0.004), Vec3(-0.036, -0.045, 0.083), Vec3(-0.041, -0.036, -0.096), Vec3(0.305, -0.131, 0.037),
           Vec3(0.160, -0.210, 0.018), Vec3(0.302, 0.092, -0.010)};
}

/** Springs between all pairs at their current lengths (holds an untrained molecule together).
 *  Not periodic: a minimum-image spring longer than half the box would flip discontinuously. */
inline OpenMM::HarmonicBondForce* elasticNetwork(const std::vector<Vec3>& pos, double k) {
    auto* springs = new OpenMM::HarmonicBondForce();
    for (size_t i = 0; i < pos.size(); i++)
        for (size_t j = 0; j < i; j++)
            springs->addBond(i, j, std::sqrt((pos[i] - pos[j]).dot(pos[i] - pos[j])), k);
    springs->setUsesPeriodicBoundaryConditions(false);
    return springs;
}

/** Slope of a least-squares line through (time ps, total energy kJ/mol), per ns per degree of freedom. */
inline double driftPerNsPerDof(const std::vector<double>& t, const std::vector<double>& e, int dof) {
    double tMean = 0, eMean = 0;
    for (size_t i = 0; i < t.size(); i++) {
        tMean += t[i] / t.size();
        eMean += e[i] / e.size();
    }
    double sxy = 0, sxx = 0;
    for (size_t i = 0; i < t.size(); i++) {
        sxy += (t[i] - tMean) * (e[i] - eMean);
        sxx += (t[i] - tMean) * (t[i] - tMean);
    }
    return sxy / sxx * 1000.0 / dof;
}

inline double maxAbs(const std::vector<Vec3>& a) {
    double m = 0.0;
    for (const Vec3& v : a)
        for (int k = 0; k < 3; k++)
            m = std::max(m, std::abs(v[k]));
    return m;
}

/** The largest |a_i - b_i|. */
inline double maxDifference(const std::vector<double>& a, const std::vector<double>& b) {
    double m = 0.0;
    for (size_t i = 0; i < a.size(); i++)
        m = std::max(m, std::abs(a[i] - b[i]));
    return m;
}

/** The largest |a_i[k] - b_i[k]|. */
inline double maxDifference(const std::vector<Vec3>& a, const std::vector<Vec3>& b) {
    double m = 0.0;
    for (size_t i = 0; i < a.size(); i++)
        for (int k = 0; k < 3; k++)
            m = std::max(m, std::abs(a[i][k] - b[i][k]));
    return m;
}

} // namespace enntest

#endif
