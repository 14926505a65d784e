// Several Contexts with ENNForce evaluated at once in several threads, on Reference, CPU and OpenCL: each
// Context's ENNForce (its own force group) gives bitwise the result it gives alone, and the whole System's
// energy and forces agree within the platform's precision (OpenMM's own CPU and OpenCL nonbonded forces on
// MM particles are not bitwise reproducible across Contexts: their last bits depend on a Context's neighbour
// list order). The model's data are shared read-only: every Context's kernel holds the force's one ENNModel.

#include "ENNPlatformComparison.h"
#include <atomic>
#include <thread>

using namespace enntest;

namespace {

struct Evaluation { // the ENNForce's group and the whole System
    double ennEnergy, totalEnergy;
    std::vector<Vec3> ennForces, totalForces;
};

const int ENNGroup = 1;

/** Energy and forces of the ENNForce and of the whole System at positions moved by `seed` (so that each
 *  thread computes something else). */
Evaluation evaluateAt(OpenMM::Context& context, const std::vector<Vec3>& pos, int seed) {
    std::vector<Vec3> moved = pos;
    for (size_t i = 0; i < moved.size(); i++)
        moved[i] += Vec3(0.003 * std::sin(seed + 1.3 * i), 0.003 * std::cos(seed * 0.7 + i), 0.002 * std::sin(2.1 * seed - i));
    context.setPositions(moved);
    OpenMM::State enn = context.getState(OpenMM::State::Energy | OpenMM::State::Forces, false, 1 << ENNGroup);
    OpenMM::State total = context.getState(OpenMM::State::Energy | OpenMM::State::Forces);
    return {enn.getPotentialEnergy(), total.getPotentialEnergy(), enn.getForces(), total.getForces()};
}

/** `relativeTolerance`: of OpenMM's own forces across Contexts, relative to the largest force component (the platform's
 *  precision: 0 on Reference, which is bitwise reproducible). */
void expectConcurrentContextsAgree(OpenMM::Platform& platform, const std::map<std::string, std::string>& properties, int numThreads,
                                   double relativeTolerance) {
    // The ML peptide-sized region coupled to PME, so that the electrostatics run concurrently too.
    TestSystem ts(9, CubicBox, 20);
    std::unique_ptr<OpenMM::System> system = ts.coupledToNonbonded("mixed_charge", OpenMM::NonbondedForce::PME);
    const OpenMMENN::ENNForce* force = nullptr;
    for (int i = 0; i < system->getNumForces(); i++)
        if (auto* f = dynamic_cast<OpenMMENN::ENNForce*>(&system->getForce(i))) {
            f->setForceGroup(ENNGroup);
            force = f;
        }
    ASSERT_NE(force, nullptr);
    // Each Context gets the same calls alone and in a thread.
    auto run = [&](OpenMM::Context& context, int t) {
        Evaluation result;
        for (int repeat = 0; repeat < 3; repeat++)
            result = evaluateAt(context, ts.pos, t);
        return result;
    };
    std::vector<Evaluation> alone;
    for (int t = 0; t < numThreads; t++) {
        OpenMM::VerletIntegrator integrator(0.001);
        OpenMM::Context context(*system, integrator, platform, properties);
        alone.push_back(run(context, t));
    }
    const long sharedBefore = force->getModelPtr().use_count();
    std::vector<std::unique_ptr<OpenMM::VerletIntegrator>> integrators;
    std::vector<std::unique_ptr<OpenMM::Context>> contexts;
    for (int t = 0; t < numThreads; t++) {
        integrators.push_back(std::make_unique<OpenMM::VerletIntegrator>(0.001));
        contexts.push_back(std::make_unique<OpenMM::Context>(*system, *integrators.back(), platform, properties));
    }
    // One model in memory: each Context's kernel holds a reference to the force's model.
    EXPECT_GE(force->getModelPtr().use_count(), sharedBefore + numThreads);
    std::vector<Evaluation> together(numThreads);
    std::atomic<int> ready(0);
    std::vector<std::thread> threads;
    std::vector<std::string> errors(numThreads);
    for (int t = 0; t < numThreads; t++)
        threads.emplace_back([&, t] {
            ready++;
            while (ready < numThreads) {
            }
            try {
                together[t] = run(*contexts[t], t);
            } catch (const std::exception& e) {
                errors[t] = e.what();
            }
        });
    for (std::thread& thread : threads)
        thread.join();
    for (int t = 0; t < numThreads; t++) {
        EXPECT_EQ(errors[t], "");
        EXPECT_EQ(together[t].ennEnergy, alone[t].ennEnergy) << "thread " << t;
        const double largest = maxAbs(alone[t].totalForces);
        EXPECT_NEAR(together[t].totalEnergy, alone[t].totalEnergy, relativeTolerance * std::fabs(alone[t].totalEnergy)) << "thread " << t;
        for (size_t i = 0; i < alone[t].ennForces.size(); i++) {
            EXPECT_EQ(together[t].ennForces[i], alone[t].ennForces[i]) << "thread " << t << ", particle " << i;
            const Vec3 d = together[t].totalForces[i] - alone[t].totalForces[i];
            EXPECT_LE(std::sqrt(d.dot(d)), relativeTolerance * largest) << "thread " << t << ", particle " << i;
        }
        if (t > 0)
            EXPECT_NE(alone[t].ennEnergy, alone[0].ennEnergy) << "the threads must compute different things";
    }
}

TEST(Concurrency, ReferenceContextsInThreads) {
    expectConcurrentContextsAgree(referencePlatform(), {}, 4, 0.0);
}

#ifdef ENN_HAVE_CPU
TEST(Concurrency, CpuContextsInThreads) {
    expectConcurrentContextsAgree(cpuPlatform(), cpuThreads(2), 3, 1e-5); // single-precision nonbonded
}
#endif

#ifdef ENN_HAVE_OPENCL
TEST(Concurrency, OpenCLContextsInThreads) {
    expectConcurrentContextsAgree(openclPlatform(), precision("mixed"), 2, 1e-5); // single-precision forces
}
#endif

} // namespace
