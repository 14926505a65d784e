// The common-compute GPU kernels on OpenMM's OpenCL platform (PoCL on the CPU where there is no GPU)
// against the Reference platform, in each precision mode.
// Double precision must agree to 1e-9 relative: the same operations as Reference in another order,
// so only rounding differs (~1e-15 per operation); forces pass through OpenMM's fixed-point force
// buffer (2^-32 = 2.3e-10 kJ/mol/nm per component), which sets the measured ~5e-10 RMS in the
// liquid box. Single and mixed precision compute the network in
// float and get the float tolerances of the CPU platform. The electrostatics of predicted charges
// (Coulomb, reaction field, PME, GB-OBC2) runs on the device as well; every method is compared,
// with the chain rule through the device's charge head.

#include "CommonENNPolarMesh.h"
#include "CpuENNPolarMesh.h"
#include "ENNPlatformComparison.h"
#include "ENNPolarMeshCase.h"
#include "OpenCLContext.h"
#include "OpenCLPlatform.h"
#include "openmm/internal/ContextImpl.h"

using namespace enntest;

namespace {

const Tolerance DoubleTolerance{1e-9, 1e-9, 1e-9, 1e-9};
const char* const Precisions[] = {"single", "mixed", "double"};

/** Reference against OpenCL in every precision; `groups` selects the ENNForce when the System has
 *  other forces (OpenMM's own OpenCL kernels are not under test). */
void compareSystem(const OpenMM::System& system, const std::vector<Vec3>& pos, const std::string& label, int groups) {
    const Result ref = evaluate(system, pos, groups, referencePlatform());
    for (std::string mode : Precisions)
        expectClose(ref, evaluate(system, pos, groups, openclPlatform(), precision(mode)), label + ", " + mode,
                    mode == "double" ? DoubleTolerance : FloatTolerance);
}

TEST(OpenCLPlatform, MaceFixtures) {
    if (!forEachFixtureConfig(compareSystem))
        FAIL() << "MACE reference data not found in " << fixturesDir() << " (tests/data/README.md)";
}

TEST(OpenCLPlatform, EveryModelInVacuumAndSmallBox) {
    forEachModelInVacuumAndSmallBox(compareSystem);
}

TEST(OpenCLPlatform, MaterialsBlocks) {
    // Density normalisation, the Agnesi transform (a table per element pair in single and mixed precision, the exact
    // radial network in double) and ZBL against Reference, in every precision.
    forEachMaterialsSystem(compareSystem);
}

TEST(OpenCLPlatform, NonLinearBlock) {
    // MACE's non-linear block (gate, residual linear, density with alpha and beta; in double precision the exact radial
    // networks with biases, layer norms and element embeddings; tables per ordered element pair otherwise),
    // apply_cutoff false and the charge/spin embedding against Reference, in every precision.
    forEachNonLinearSystem(compareSystem);
}

TEST(OpenCLPlatform, LatentCharges) {
    // MACELES: charge readouts of every layer in the node programs, unconstrained charges, the model's Coulomb constant,
    // and the truncated reciprocal sum (CommonENNLatentEwald) against Reference, in every precision.
    forEachLatentChargeSystem(compareSystem);
}

TEST(OpenCLPlatform, ChargeAndSpinUpdates) {
    for (std::string mode : Precisions)
        expectChargeAndSpinUpdatesLikeANewContext(openclPlatform(), precision(mode));
}

TEST(OpenCLPlatform, LiquidBoxAndReproducibility) {
    // A few hundred atoms of water around the test molecule in a triclinic box of several cutoffs,
    // with atoms across every face. Results must be bitwise identical from run to run (the cell list's
    // atomic counters must not change the edge order).
    TestSystem ts(6, TriclinicBox, -1);
    for (const char* name : {"mixed_charge", "three_layer_tanh"}) {
        auto system = mlSystem(modelPath(name), ts.z, ts.box, -1.0);
        compareSystem(*system, ts.pos, std::string(name) + " " + std::to_string(ts.z.size()) + " atoms, triclinic", -1);
        expectIdentical(evaluate(*system, ts.pos, -1, openclPlatform(), precision("mixed")),
                        evaluate(*system, ts.pos, -1, openclPlatform(), precision("mixed")), std::string(name) + ", run to run");
    }
}

TEST(OpenCLPlatform, NeighbourListGrowsInARunningContext) {
    // The liquid box fits the initial neighbour capacity; compressed to 0.7 of its size it has ~3x the
    // neighbours. The overflow is found after the step is queued; the step must be recomputed with a
    // larger list and agree with Reference, and the next step must agree too.
    TestSystem ts(6, TriclinicBox, -1);
    auto system = mlSystem(modelPath("mixed_charge"), ts.z, ts.box, -1.0);
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(*system, integrator, openclPlatform(), precision("double"));
    context.setPositions(ts.pos);
    context.getState(OpenMM::State::Energy);
    std::vector<Vec3> dense(ts.pos);
    for (Vec3& p : dense)
        p *= 0.7;
    Vec3 box[3] = {ts.box[0] * 0.7, ts.box[1] * 0.7, ts.box[2] * 0.7};
    system->setDefaultPeriodicBoxVectors(box[0], box[1], box[2]);
    context.setPeriodicBoxVectors(box[0], box[1], box[2]);
    context.setPositions(dense);
    const Result reference = evaluate(*system, dense, -1, referencePlatform());
    const auto& force = dynamic_cast<const ENNForce&>(system->getForce(system->getNumForces() - 1));
    for (int repeat = 0; repeat < 2; repeat++) {
        OpenMM::State state = context.getState(OpenMM::State::Energy | OpenMM::State::Forces);
        expectClose(reference, Result{state.getPotentialEnergy(), state.getForces(), force.getCharges(context)},
                    "compressed, evaluation " + std::to_string(repeat), DoubleTolerance);
    }
}

TEST(OpenCLPlatform, EveryElectrostaticsMethod) {
    forEachElectrostaticsMethod(compareSystem);
}

TEST(OpenCLPlatform, CoulombPairsFromCellLists) {
    // With a cutoff, the device takes each site's partners from cell lists. A box 1.5 times the triclinic test box
    // (3.3-3.6 nm, three cells of the 1 nm cutoff along each direction: every neighbouring cell distinct) filled with
    // water around a ligand whose 6 ML atoms have exceptions with ML and MM partners; for each method with a cutoff,
    // the force field's ML-ML exceptions, ML pairs excluded (a model without its own Coulomb term), ordinary ML pairs
    // (a model with one); and every atom ML with the model's own point-charge Coulomb term.
    const Vec3 wide[3] = {TriclinicBox[0] * 1.5, TriclinicBox[1] * 1.5, TriclinicBox[2] * 1.5};
    for (auto method : {NonbondedForce::CutoffNonPeriodic, NonbondedForce::CutoffPeriodic, NonbondedForce::PME}) {
        const bool periodic = method != NonbondedForce::CutoffNonPeriodic;
        TestSystem ts(6, periodic ? wide : nullptr, -1);
        const std::pair<const char*, TestSystem::MLPairs> variants[] = {{"mixed_charge", TestSystem::MLPairs::ForceField},
                                                                        {"mixed_charge", TestSystem::MLPairs::Excluded},
                                                                        {"damped_charge", TestSystem::MLPairs::Ordinary}};
        for (const auto& [model, kind] : variants)
            compareSystem(*ts.coupledToNonbonded(model, method, kind, 1), ts.pos,
                          "method " + std::to_string(method) + ", " + model + ", ML pairs " + std::to_string(int(kind)) + ", " +
                              std::to_string(ts.z.size()) + " atoms",
                          1 << 1);
        TestSystem all(static_cast<int>(ts.z.size()), periodic ? wide : nullptr, -1);
        compareSystem(*all.mlOnly("frozen_charges_coulomb", method), all.pos, "method " + std::to_string(method) + ", pure ML " + std::to_string(all.z.size()),
                      -1);
    }
}

TEST(OpenCLPlatform, GBPairsFromCellLists) {
    // With a GB cutoff, the device takes each GB particle's partners from a cell list of the GB particles. Water around
    // a ligand with 6 ML atoms, GB cutoff 1 nm: without periodic boundary conditions (cells are cubes of the cutoff), and
    // in the triclinic box 1.5 times the test box (three cells along each direction, pairs by the nearest image), for
    // GBSAOBCForce's OBC2 (non-periodic) and the app's GBn2 with salt and neck (periodic).
    const Vec3 wide[3] = {TriclinicBox[0] * 1.5, TriclinicBox[1] * 1.5, TriclinicBox[2] * 1.5};
    for (bool periodic : {false, true}) {
        TestSystem ts(6, periodic ? wide : nullptr, periodic ? -1 : 300);
        const ENNForce::ImplicitSolventModel gbModel = periodic ? ENNForce::GBn2 : ENNForce::OBC2;
        const ENNForce::GBFormulation formulation = periodic ? ENNForce::AppCustomGBFormulation : ENNForce::GBSAOBCForceFormulation;
        compareSystem(*ts.coupledToImplicitSolvent("mixed_charge", gbModel, formulation, 1.0), ts.pos,
                      std::string(periodic ? "periodic" : "non-periodic") + " GB model " + std::to_string(gbModel) + ", " +
                          std::to_string(ts.z.size()) + " atoms",
                      -1);
    }
}

TEST(OpenCLPlatform, DeviceWorkPerStepIsReported) {
    // OPENMM_ENN_DEVICE_WORK makes a Context report what each step queued (CommonENNDeviceWork.h), here for a 2-layer
    // model with a charge head coupled to PME. The counts are fixed by the code path, not by timing: one status
    // download per step; launches, clears and FFT calls at most 40 (issue 18's bound). Today: OpenMM 7.7, whose PME
    // has no FFT and runs 6 DFT kernels, 34 launches and 4 clears; with OpenMM's FFT (8.6.1), 28 launches, 4 clears and 2 FFT
    // calls (docs/gpu.md). Before the network's node programs it was 81 launches and 4 clears.
    TestSystem ts(6, TriclinicBox, 40);
    std::unique_ptr<OpenMM::System> system = ts.coupledToNonbonded("damped_charge", NonbondedForce::PME);
    setenv("OPENMM_ENN_DEVICE_WORK", "1", 1);
    testing::internal::CaptureStderr();
    {
        OpenMM::VerletIntegrator integrator(0.0005);
        OpenMM::Context context(*system, integrator, openclPlatform());
        context.setPositions(ts.pos);
        integrator.step(3);
    }
    const std::string report = testing::internal::GetCapturedStderr();
    unsetenv("OPENMM_ENN_DEVICE_WORK");
    const size_t at = report.find("ENNForce device work on OpenCL: ");
    ASSERT_NE(at, std::string::npos) << report;
    double launches = 0, clears = 0, ffts = 0, transfers = 0;
    int steps = 0;
    ASSERT_EQ(std::sscanf(report.c_str() + at, "ENNForce device work on OpenCL: %d steps; per step %lf kernel launches, %lf buffer clears, %lf FFTs, %lf transfers",
                          &steps, &launches, &clears, &ffts, &transfers), 5)
        << report;
    std::cout << report.substr(at);
    EXPECT_GE(steps, 3);
    EXPECT_EQ(transfers, 1.0);
    EXPECT_GT(launches, 20.0);
    EXPECT_LE(launches + clears + ffts, 40.0);
}

TEST(OpenCLPlatform, EnergyConservationInMixedPrecision) {
    const double reference = nveDrift(referencePlatform(), "Reference");
    const double mixed = nveDrift(openclPlatform(), "OpenCL mixed", precision("mixed"));
    // As for the CPU platform: the Reference drift doubled, with a floor of 0.01 kJ/mol/ns/dof for the
    // float rounding of the network energy (~1e-6 relative), noise in the fitted slope.
    EXPECT_LT(std::abs(mixed), std::max(2 * std::abs(reference), 0.01));
}

TEST(OpenCLPlatform, EnergyConservationWithPredictedChargesInMixedPrecision) {
    // The ligand in implicit solvent, where the ENNForce computes all of GB-OBC on the device with
    // predicted charges and the chain rule (besides it only harmonic bonds; OpenMM's own OpenCL PME
    // with constraints is no usable baseline on PoCL: its mixed-precision water run blows up).
    // 0.25 fs steps keep the integration error small enough that a missing chain-rule term shows.
    // The bound is Electrostatics.EnergyConservationInImplicitSolvent's, on the RMS over the same three
    // seeds (docs/testing.md: with the chain rule at most 0.35 kJ/mol/ns/dof on Reference for seeds 1-8,
    // -0.19 on this device for seed 7; without it 37 here, 15.8 to 75 on Reference).
    const TestSystem ts(10, nullptr, 0);
    const double mixed = nveDriftAfterMinimization(*ts.ligandInImplicitSolvent("damped_charge"), ts.pos, "OpenCL mixed, GB-OBC", 0.00025,
                                                   openclPlatform(), precision("mixed"), seedsFromEnvironment({1, 2, 3}));
    EXPECT_LT(mixed, 2.0);
}

TEST(OpenCLPlatform, BadPositionsAreOpenMMExceptions) {
    expectBadPositionsRefused(openclPlatform(), precision("mixed"));
}

TEST(OpenCLPlatform, BadBoxAndParameterUpdates) {
    expectBadBoxAndUpdatesRefused(openclPlatform(), precision("mixed"));
}

TEST(OpenCLPlatform, AbsurdEnergyIsAnOpenMMException) {
    for (const char* p : {"single", "mixed", "double"}) {
        SCOPED_TRACE(p);
        expectAbsurdEnergyRefused(openclPlatform(), precision(p));
    }
}

TEST(OpenCLPlatform, CutoffOverHalfTheBoxIsAnOpenMMException) {
    TestSystem ts(6, CubicBox, 5);
    std::unique_ptr<OpenMM::System> system = ts.cutoffOverHalfTheBox();
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(*system, integrator, openclPlatform(), precision("mixed"));
    context.setPositions(ts.pos);
    expectOpenMMException([&] { context.getState(OpenMM::State::Energy); }, "larger than half the periodic box");
}

TEST(OpenCLPlatform, ChargesAndTotalChargeUpdates) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    Simulation ref(modelPath("mixed_charge"), z, pos, nullptr, -1.0);
    Simulation gpu(modelPath("mixed_charge"), z, pos, nullptr, -1.0, &openclPlatform(), precision("double"));
    for (double q : {-1.0, 0.5}) {
        for (Simulation* s : {&ref, &gpu}) {
            s->force->setTotalCharge(q);
            s->force->updateParametersInContext(*s->context);
        }
        const std::vector<double> a = ref.force->getCharges(*ref.context), b = gpu.force->getCharges(*gpu.context);
        ASSERT_EQ(a.size(), b.size());
        double sum = 0;
        for (size_t i = 0; i < a.size(); i++) {
            EXPECT_NEAR(b[i], a[i], 1e-9);
            sum += b[i];
        }
        EXPECT_NEAR(sum, q, 1e-9);
    }
}

/** New MM and GB charges and a new total charge through updateParametersInContext give what the
 *  Reference platform gives for the changed System. */
TEST(OpenCLPlatform, CouplingChargeUpdates) {
    TestSystem periodic(6, TriclinicBox, 20), isolated(6, nullptr, 10);
    std::unique_ptr<OpenMM::System> systems[2] = {periodic.coupledToNonbonded("damped_charge", NonbondedForce::PME),
                                                  isolated.coupledToImplicitSolvent("damped_charge")};
    const std::vector<Vec3>* positions[2] = {&periodic.pos, &isolated.pos};
    for (int k = 0; k < 2; k++) {
        OpenMM::System& system = *systems[k];
        auto& force = dynamic_cast<ENNForce&>(system.getForce(system.getNumForces() - 1));
        force.setForceGroup(1);
        OpenMM::VerletIntegrator integrator(0.001);
        OpenMM::Context context(system, integrator, openclPlatform(), precision("double"));
        context.setPositions(*positions[k]);
        for (int i = 0; i < force.getNumMMParticles(); i++) {
            int particle;
            double q;
            force.getMMParticleParameters(i, particle, q);
            force.setMMParticleParameters(i, particle, 1.1 * q + 0.01);
        }
        for (int i = 0; i < force.getNumGBParticles(); i++) {
            int particle;
            double q, radius, scale;
            force.getGBParticleParameters(i, particle, q, radius, scale);
            force.setGBParticleParameters(i, particle, 1.1 * q + 0.01, radius, scale);
        }
        force.setTotalCharge(force.getTotalCharge() + 0.3);
        force.updateParametersInContext(context);
        OpenMM::State state = context.getState(OpenMM::State::Energy | OpenMM::State::Forces, false, 1 << 1);
        const Result updated{state.getPotentialEnergy(), state.getForces(), force.getCharges(context)};
        expectClose(evaluate(system, *positions[k], 1 << 1, referencePlatform()), updated, k == 0 ? "PME" : "GB-OBC", DoubleTolerance);
    }
}

} // namespace

namespace {

/** A Context's ContextImpl (Force may reach it: Context's friend). */
class ContextAccess : public OpenMM::Force {
public:
    static OpenMM::ContextImpl& implOf(OpenMM::Context& context) {
        ContextAccess access;
        return access.getContextImpl(context);
    }

protected:
    OpenMM::ForceImpl* createImpl() const override {
        return nullptr;
    }
};

} // namespace

TEST(OpenCLPlatform, PolarMeshAsExactStructureFactor) {
    // CommonENNPolarMesh (a PolarMACE region's MM structure factor in a cell on the device: fixed-point spreading, the
    // pruned DFT) on the case of CpuENNPolarMesh's test (ENNPolarMeshCase.h), in every precision. Double: the same grid
    // and interpolation as the CPU's mesh, so within round-off of it (1e-10 of sum |q| and of the gradient's scale;
    // the 2^-40 e fixed-point grid and a DFT against an FFT) and within the interpolation bounds of the exact sums.
    // Single and mixed: those bounds plus float round-off of the three DFT stages' sums (each of at most 48 terms:
    // 48 x 6e-8 = 3e-6 of sum |q| a stage, 1e-5 for the three).
    const PolarMeshCase test;
    std::vector<double> cpuRe, cpuIm;
    std::vector<Vec3> cpuGradient;
    OpenMMENN::CpuENNPolarMesh cpuMesh;
    test.run(cpuMesh, cpuRe, cpuIm, cpuGradient);
    for (std::string mode : Precisions) {
        OpenMM::System system;
        system.addParticle(1.0);
        OpenMM::VerletIntegrator integrator(0.001);
        OpenMM::Context context(system, integrator, openclPlatform(), precision(mode));
        auto* data = static_cast<OpenMM::OpenCLPlatform::PlatformData*>(ContextAccess::implOf(context).getPlatformData());
        OpenMMENN::DeviceWork work;
        OpenMMENN::CommonENNPolarMesh mesh(*data->contexts[0], work);
        if (!mesh.usable())
            GTEST_SKIP() << "the OpenCL device has no 64-bit atomic adds";
        std::vector<double> re, im;
        std::vector<Vec3> gradient;
        test.run(mesh, re, im, gradient);
        for (int a = 0; a < 3; a++)
            EXPECT_EQ(mesh.gridSize()[a], cpuMesh.gridSize()[a]);
        double worstS, worstGradient;
        test.errors(re, im, gradient, worstS, worstGradient);
        const double roundOff = mode == "double" ? 1e-10 : 1e-5;
        EXPECT_LT(worstS, test.interpolation + roundOff) << mode;
        EXPECT_LT(worstGradient, 9 * test.interpolation + roundOff) << mode;
        double fromCpuS = 0.0, fromCpuGradient = 0.0;
        for (size_t i = 0; i < test.k.size(); i++)
            fromCpuS = std::max({fromCpuS, std::abs(re[i] - cpuRe[i]), std::abs(im[i] - cpuIm[i])}) ;
        for (size_t m = 0; m < test.x.size(); m++)
            for (int a = 0; a < 3; a++)
                fromCpuGradient = std::max(fromCpuGradient, std::abs(gradient[m][a] - cpuGradient[m][a]) /
                                                                (std::abs(test.q[m]) * test.kMax * test.weights));
        fromCpuS /= test.chargeSum;
        EXPECT_LT(fromCpuS, roundOff) << mode;
        EXPECT_LT(fromCpuGradient, roundOff) << mode;
        std::cout << "PolarMesh " << mode << ": |dS| " << worstS << " of sum |q| (" << fromCpuS << " from the CPU mesh), gradient "
                  << worstGradient << " of |q| |k|max sum |g| (" << fromCpuGradient << ")" << std::endl;
    }
}
