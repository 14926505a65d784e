// The CPU platform against the Reference platform (the oracle), with 1 and with 2 threads
// (shared comparisons, tolerances and systems: ENNPlatformComparison.h).
// Tolerances are the issue's: energies to 1e-5 relative, forces to 1e-4 relative RMS with no
// component off by more than 1e-3 of the largest, charges likewise. The CPU network runs in float
// (epsilon 6e-8) through sums of 10^2-10^3 terms per layer, which gives ~1e-6 relative; a wrong
// sign, index or missed image gives errors of order 1. Electrostatics run in double on both.
// Results must be bitwise identical run to run; by construction they are also identical for any
// thread count (every reduction has a fixed order), which is checked too.

#include "ENNPlatformComparison.h"

using namespace enntest;

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

TEST(CpuPlatform, EveryModelInLiquidBox) {
    // About 1000 atoms of water at liquid density around the test molecule in a triclinic box of
    // several cutoffs: the cell list has many cells, and atoms sit across every face.
    TestSystem ts(10, TriclinicBox, -1);
    for (const char* name : TestModels)
        compareSystem(*mlSystem(modelPath(name), ts.z, ts.box, -1.0), ts.pos, std::string(name) + " " + std::to_string(ts.z.size()) + " atoms, triclinic", -1);
}

TEST(CpuPlatform, EveryElectrostaticsMethod) {
    forEachElectrostaticsMethod(compareSystem);
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
