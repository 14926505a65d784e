// The CPU platform against the Reference platform (the oracle), with 1 and with 2 threads
// (shared comparisons, tolerances and systems: ENNPlatformComparison.h).
// Tolerances are the issue's: energies to 1e-5 relative, forces to 1e-4 relative RMS with no
// component off by more than 1e-3 of the largest, charges likewise. The CPU network runs in float
// (epsilon 6e-8) through sums of 10^2-10^3 terms per layer, which gives ~1e-6 relative; a wrong
// sign, index or missed image gives errors of order 1. Electrostatics run in double on both.
// Results must be bitwise identical run to run; by construction they are also identical for any
// thread count (every reduction has a fixed order), which is checked too.

#include "CpuENNElectrostatics.h"
#include "CpuENNPolarMesh.h"
#include "ENNPolarMeshCase.h"
#include "ENNPeriodicGeometry.h"
#include "ENNPlatformComparison.h"
#include "ReferenceENNElectrostatics.h"

using namespace enntest;
using OpenMMENN::CpuENNElectrostatics;
using OpenMMENN::ReferenceENNElectrostatics;

namespace {

/** Reference against CPU with 1 and 2 threads; 2 threads twice (run to run) and 1 vs 2 threads bitwise.
 *  `groups` selects the ENNForce when the System has other forces (OpenMM's own CPU kernels are not
 *  deterministic across thread counts, and are not under test). */
void compareSystem(const OpenMM::System& system, const std::vector<Vec3>& pos, const std::string& label, int groups) {
    const Result ref = evaluate(system, pos, groups, referencePlatform());
    const Result one = evaluate(system, pos, groups, cpuPlatform(), cpuThreads(1));
    const Result two = evaluate(system, pos, groups, cpuPlatform(), cpuThreads(2));
    expectClose(ref, one, label + ", 1 thread");
    expectClose(ref, two, label + ", 2 threads");
    expectIdentical(two, evaluate(system, pos, groups, cpuPlatform(), cpuThreads(2)), label + ", run to run");
    expectIdentical(one, two, label + ", 1 vs 2 threads");
}

TEST(CpuPlatform, MaceFixtures) {
    if (!forEachFixtureConfig(compareSystem))
        FAIL() << "MACE reference data not found in " << fixturesDir() << " (tests/data/README.md)";
}

TEST(CpuPlatform, EveryModelInVacuumAndSmallBox) {
    forEachModelInVacuumAndSmallBox(compareSystem);
}

TEST(CpuPlatform, MaterialsBlocks) {
    // Density normalisation (a column of the radial table), the Agnesi transform (a table per element pair) and ZBL
    // (per edge in double) against Reference.
    forEachMaterialsSystem(compareSystem);
}

TEST(CpuPlatform, NonLinearBlock) {
    // MACE's non-linear block (radial tables per ordered element pair, their density column, the gate and the
    // residual linear), apply_cutoff false and the charge/spin embedding against Reference.
    forEachNonLinearSystem(compareSystem);
}

TEST(CpuPlatform, LatentCharges) {
    // MACELES: charge readouts of every layer (their gradients in each layer's backward pass), unconstrained charges,
    // the model's Coulomb constant, and the truncated reciprocal sum (CpuENNLatentEwald) against Reference.
    forEachLatentChargeSystem(compareSystem);
}

TEST(CpuPlatform, ChargeAndSpinUpdates) {
    expectChargeAndSpinUpdatesLikeANewContext(cpuPlatform(), {});
}

TEST(CpuPlatform, EveryModelInLiquidBox) {
    // About 1000 atoms of water at liquid density around the test molecule in a triclinic box of
    // several cutoffs: the cell list has many cells, and atoms sit across every face.
    TestSystem ts(10, TriclinicBox, -1);
    for (const char* name : TestModels)
        compareSystem(*mlSystem(modelPath(name), ts.z, ts.box, -1.0), ts.pos, std::string(name) + " " + std::to_string(ts.z.size()) + " atoms, triclinic", -1);
}

TEST(CpuPlatform, WideModel) {
    // The test models above have 2-8 channels, under one 32-column tile of the CPU linears; this one has 40. In
    // vacuum and in a box smaller than 2 r_c, a small molecule's nodes come in pieces of 3 (and its edges in pieces
    // of 1); around 100 waters (309 atoms) every piece has 16 nodes.
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    const Vec3 small[3] = {Vec3(0.52, 0, 0), Vec3(0.11, 0.55, 0), Vec3(-0.07, 0.12, 0.58)};
    compareSystem(*mlSystem(modelPath("wide_charge"), z, nullptr, -1.0), pos, "wide_charge vacuum", -1);
    compareSystem(*mlSystem(modelPath("wide_charge"), z, small, -1.0), pos, "wide_charge small triclinic box", -1);
    TestSystem ts(10, TriclinicBox, 100);
    compareSystem(*mlSystem(modelPath("wide_charge"), ts.z, ts.box, -1.0), ts.pos, "wide_charge " + std::to_string(ts.z.size()) + " atoms", -1);
}

TEST(CpuPlatform, EveryElectrostaticsMethod) {
    forEachElectrostaticsMethod(compareSystem);
}

namespace {

struct ElectrostaticsResult {
    double energy;
    std::vector<Vec3> forces;
    std::vector<double> potential;
};

/** The predicted-charge electrostatics of `system`'s ENNForce alone, at fixed ML charges, by the Reference class
 *  or the CPU class (given a pool). */
ElectrostaticsResult electrostatics(const OpenMM::System& system, const std::vector<Vec3>& pos, const std::vector<double>& mlCharges,
                                    OpenMM::ThreadPool* pool, CpuENNElectrostatics::PairSearch search) {
    const ENNForce* force = nullptr;
    for (int i = 0; i < system.getNumForces(); i++)
        if (auto* f = dynamic_cast<const ENNForce*>(&system.getForce(i)))
            force = f;
    Vec3 box[3];
    system.getDefaultPeriodicBoxVectors(box[0], box[1], box[2]);
    ElectrostaticsResult r{0.0, std::vector<Vec3>(pos.size()), {}};
    if (pool == nullptr)
        r.energy = ReferenceENNElectrostatics(system, *force).compute(pos, box, mlCharges, r.forces, r.potential);
    else {
        CpuENNElectrostatics cpu(system, *force);
        cpu.setPairSearch(search);
        r.energy = cpu.compute(pos, box, mlCharges, r.forces, r.potential, *pool);
    }
    return r;
}

} // namespace

// The CPU electrostatics (pair list or all pairs, one-pass PME, threaded GB) against the Reference class in double, at
// fixed charges, so that the float network does not hide an error: both sum the same terms in double in different
// orders (~1e-16 relative per term over 1e4-1e6 terms; the Reference PME subtracts two grid energies ~1e2 times the
// result), so 1e-10 of the largest value is far above rounding and far below any missing or wrong term. Bitwise
// the same for 1, 2 and 3 threads.
TEST(CpuPlatform, ElectrostaticsAsReferenceInDouble) {
    struct Case {
        std::string label;
        std::unique_ptr<OpenMM::System> system;
        std::vector<Vec3> pos;
    };
    std::vector<Case> cases;
    for (auto method : {NonbondedForce::NoCutoff, NonbondedForce::CutoffNonPeriodic, NonbondedForce::CutoffPeriodic, NonbondedForce::PME}) {
        const bool periodic = method == NonbondedForce::CutoffPeriodic || method == NonbondedForce::PME;
        // 6 ML atoms of a 10-atom ligand (bonds across the boundary give ML-MM exceptions) in water at liquid density;
        // with and without the model's own (Gaussian-damped) Coulomb term among the ML atoms.
        const std::pair<const char*, TestSystem::MLPairs> variants[] = {{"mixed_charge", TestSystem::MLPairs::ForceField},
                                                                        {"mixed_charge", TestSystem::MLPairs::Excluded},
                                                                        {"damped_charge", TestSystem::MLPairs::Ordinary}};
        // Under PME also in a box 1.5 times as wide, whose even PME grid has Nyquist planes: there the one-pass PME put
        // an odd part of the influence function into theta_ML (MM forces off by 1e-5 relative) until it was made even.
        const Vec3 wide[3] = {TriclinicBox[0] * 1.5, TriclinicBox[1] * 1.5, TriclinicBox[2] * 1.5};
        std::vector<TestSystem> ligands;
        ligands.emplace_back(6, periodic ? TriclinicBox : nullptr, -1);
        if (method == NonbondedForce::PME)
            ligands.emplace_back(6, wide, -1);
        for (const TestSystem& ts : ligands)
            for (const auto& [model, kind] : variants)
                cases.push_back({"method " + std::to_string(method) + ", " + model + ", ML pairs " + std::to_string(int(kind)) + ", " +
                                     std::to_string(ts.z.size()) + " atoms",
                                 ts.coupledToNonbonded(model, method, kind), ts.pos});
        // Pure ML liquid, every atom ML, the model's own Coulomb term, in a box 3 cutoffs wide (27 distinct cells).
        const int numAtoms = static_cast<int>(TestSystem(0, periodic ? wide : nullptr, -1).z.size());
        TestSystem all(numAtoms, periodic ? wide : nullptr, -1);
        cases.push_back({"method " + std::to_string(method) + ", pure ML " + std::to_string(all.z.size()), all.mlOnly("frozen_charges_coulomb", method),
                         all.pos});
    }
    // Generalized Born over ~190 atoms in every model and formulation (made-up neck tables and GBn2 parameters:
    // both classes read the same ones); two of them also with a 0.7 nm GB cutoff (pairs from the CPU's cell list),
    // without and with periodic boundary conditions (the solvent then fills a triclinic box).
    TestSystem solvated(6, nullptr, 60), solvatedInBox(6, TriclinicBox, 60);
    const std::pair<ENNForce::ImplicitSolventModel, ENNForce::GBFormulation> gbModels[] = {
        {ENNForce::OBC2, ENNForce::GBSAOBCForceFormulation}, {ENNForce::OBC2, ENNForce::AppCustomGBFormulation},
        {ENNForce::OBC1, ENNForce::AppCustomGBFormulation},  {ENNForce::HCT, ENNForce::AppCustomGBFormulation},
        {ENNForce::GBn, ENNForce::AppCustomGBFormulation},   {ENNForce::GBn2, ENNForce::AppCustomGBFormulation}};
    for (const auto& [gbModel, formulation] : gbModels)
        for (int cutoffKind = 0; cutoffKind < 3; cutoffKind++) { // none, non-periodic, periodic
            const bool cutoffCase = (gbModel == ENNForce::OBC2 && formulation == ENNForce::GBSAOBCForceFormulation) || gbModel == ENNForce::GBn2;
            if (cutoffKind > 0 && !cutoffCase)
                continue;
            const TestSystem& ts = cutoffKind == 2 ? solvatedInBox : solvated;
            // (a periodic force whose model has its own Coulomb term would need a periodic Coulomb method too)
            std::unique_ptr<OpenMM::System> system =
                ts.coupledToImplicitSolvent(cutoffKind == 2 ? "mixed_charge" : "damped_charge", gbModel, formulation, cutoffKind > 0 ? 0.7 : 0.0);
            cases.push_back({"GB model " + std::to_string(gbModel) + ", formulation " + std::to_string(formulation) + ", cutoff kind " +
                                 std::to_string(cutoffKind),
                             std::move(system), ts.pos});
        }
    std::mt19937 rng(5);
    std::uniform_real_distribution<double> charge(-0.8, 0.8);
    OpenMM::ThreadPool one(1), two(2), three(3);
    for (const Case& c : cases) {
        const ENNForce* force = dynamic_cast<const ENNForce*>(&c.system->getForce(c.system->getNumForces() - 1));
        std::vector<double> q(force->getNumParticles());
        for (double& qi : q)
            qi = charge(rng);
        const ElectrostaticsResult ref = electrostatics(*c.system, c.pos, q, nullptr, CpuENNElectrostatics::PairSearch::Automatic);
        const double largestForce = maxAbs(ref.forces);
        double largestPotential = 0;
        for (double p : ref.potential)
            largestPotential = std::max(largestPotential, std::abs(p));
        for (auto search : {CpuENNElectrostatics::PairSearch::AllPairs, CpuENNElectrostatics::PairSearch::CellList}) {
            const std::string label = c.label + (search == CpuENNElectrostatics::PairSearch::CellList ? ", cell list" : ", all pairs");
            const ElectrostaticsResult cpu = electrostatics(*c.system, c.pos, q, &two, search);
            EXPECT_NEAR(cpu.energy, ref.energy, 1e-10 * std::abs(ref.energy)) << label;
            EXPECT_LE(maxDifference(cpu.forces, ref.forces), 1e-10 * largestForce) << label << ": forces";
            EXPECT_LE(maxDifference(cpu.potential, ref.potential), 1e-10 * largestPotential) << label << ": potentials";
            for (OpenMM::ThreadPool* pool : {&one, &three}) {
                const ElectrostaticsResult other = electrostatics(*c.system, c.pos, q, pool, search);
                EXPECT_EQ(other.energy, cpu.energy) << label << ", threads";
                EXPECT_EQ(other.potential, cpu.potential) << label << ", threads";
                for (size_t i = 0; i < ref.forces.size(); i++)
                    ASSERT_EQ(other.forces[i], cpu.forces[i]) << label << ", threads, particle " << i;
            }
        }
    }
}

namespace {

/** The last particle of `ts` (a water hydrogen) moved onto particle 2: the CPU electrostatics of `system` must throw an
 *  OpenMMException naming both as System particles. */
void expectCoincidentParticlesNamed(const OpenMM::System& system, const TestSystem& ts, CpuENNElectrostatics::PairSearch search) {
    const ENNForce& force = dynamic_cast<const ENNForce&>(system.getForce(system.getNumForces() - 1));
    std::vector<Vec3> pos = ts.pos;
    const int mm = static_cast<int>(pos.size()) - 1;
    pos[mm] = pos[2];
    std::vector<double> q(force.getNumParticles(), 0.1);
    std::vector<Vec3> forces(pos.size());
    std::vector<double> phi;
    CpuENNElectrostatics cpu(system, force);
    cpu.setPairSearch(search);
    OpenMM::ThreadPool pool(2);
    expectOpenMMException([&] { cpu.compute(pos, ts.periodic ? ts.box : nullptr, q, forces, phi, pool); },
                          "particles 2 and " + std::to_string(mm) + " are at the same position");
}

} // namespace

// An ML atom on top of an MM atom (found by the electrostatics' cell list) is an OpenMMException naming both System
// particles; so are two GB particles found by the GB cell list (GB with a cutoff).
TEST(CpuPlatform, CoincidentMLAndMMParticlesAreNamed) {
    TestSystem ts(6, TriclinicBox, -1);
    expectCoincidentParticlesNamed(*ts.coupledToNonbonded("mixed_charge", NonbondedForce::PME), ts, CpuENNElectrostatics::PairSearch::CellList);
}

TEST(CpuPlatform, CoincidentGBParticlesAreNamed) {
    TestSystem ts(6, nullptr, 60);
    expectCoincidentParticlesNamed(*ts.coupledToImplicitSolvent("mixed_charge", ENNForce::OBC2, ENNForce::GBSAOBCForceFormulation, 0.7), ts,
                                   CpuENNElectrostatics::PairSearch::Automatic);
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
    expectBadPositionsRefused(cpuPlatform(), cpuThreads(2));
}

TEST(CpuPlatform, BadBoxAndParameterUpdates) {
    expectBadBoxAndUpdatesRefused(cpuPlatform(), cpuThreads(2));
}

TEST(CpuPlatform, AbsurdEnergyIsAnOpenMMException) {
    expectAbsurdEnergyRefused(cpuPlatform(), cpuThreads(2));
}

} // namespace

// CpuENNPolarMesh (a PolarMACE region's MM structure factor in a cell) against the exact sums, within the interpolation
// bounds of ENNPolarMeshCase.h; 1 and 2 threads bitwise the same.
TEST(CpuPlatform, PolarMeshAsExactStructureFactor) {
    const PolarMeshCase test;
    OpenMM::ThreadPool pool(2);
    std::vector<double> re[2], im[2];
    std::vector<Vec3> gradient[2];
    int grid[3];
    for (int run = 0; run < 2; run++) {
        OpenMMENN::CpuENNPolarMesh mesh;
        mesh.setThreads(run == 0 ? nullptr : &pool);
        test.run(mesh, re[run], im[run], gradient[run]);
        std::copy(mesh.gridSize(), mesh.gridSize() + 3, grid);
    }
    EXPECT_TRUE(grid[0] != grid[1] && grid[1] != grid[2] && grid[0] != grid[2]);
    EXPECT_EQ(re[0], re[1]);
    EXPECT_EQ(im[0], im[1]);
    for (size_t m = 0; m < test.x.size(); m++)
        for (int a = 0; a < 3; a++)
            EXPECT_EQ(gradient[0][m][a], gradient[1][m][a]);
    double worstS, worstGradient;
    test.errors(re[0], im[0], gradient[0], worstS, worstGradient);
    EXPECT_LT(worstS, test.interpolation);
    EXPECT_LT(worstGradient, 9 * test.interpolation);
    std::cout << "PolarMesh: |dS| " << worstS << " of sum |q|, gradient " << worstGradient << " of |q| |k|max sum |g| ("
              << test.k.size() << " k vectors, grid " << grid[0] << " x " << grid[1] << " x " << grid[2] << ")" << std::endl;
}
