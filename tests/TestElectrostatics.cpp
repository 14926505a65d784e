// Electrostatics with predicted charges (Reference platform, double precision).
// * Same physics as OpenMM: with charges frozen to per-element values (a model whose charge head is
//   constant), ENNForce coupled to a System reproduces OpenMM's own NonbondedForce (NoCutoff, reaction
//   field, PME in rectangular and triclinic boxes) and GBSAOBCForce, for a ligand bonded nowhere and
//   for an ML region bonded to MM atoms (1-2, 1-3 exclusions and scaled 1-4 pairs across the boundary).
// * Chain rule: with geometry-dependent charges, forces on ML and MM atoms equal finite differences.
// * PME against the plain Ewald sum as the grid is refined, with and without a net charge.
// * Bad coupling input is refused with a clear OpenMMException.

#include "ENNTestSystems.h"
#include "ReferenceENNElectrostatics.h"
#include "ReferenceENNPME.h"
#include "openmm/GBSAOBCForce.h"
#include "openmm/HarmonicBondForce.h"
#include "openmm/NonbondedForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/XmlSerializer.h"
#include <iostream>
#include <map>
#include <sstream>

using namespace enntest;
using OpenMM::NonbondedForce;
using OpenMMENN::ENNForce;

namespace {

struct Evaluation {
    double energy;
    std::vector<Vec3> forces;
};

Evaluation evaluate(const OpenMM::System& system, const std::vector<Vec3>& pos) {
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(system, integrator, referencePlatform());
    context.setPositions(pos);
    OpenMM::State state = context.getState(OpenMM::State::Energy | OpenMM::State::Forces);
    return {state.getPotentialEnergy(), state.getForces()};
}

Evaluation subtract(Evaluation a, const Evaluation& b) {
    a.energy -= b.energy;
    for (size_t i = 0; i < a.forces.size(); i++)
        a.forces[i] -= b.forces[i];
    return a;
}

/** An independent Ewald sum of point charges in a box: real space over every image within `cutoff`
 *  (boxes of at least twice the cutoff), the plain reciprocal sum, the self and neutralizing-background terms. */
double directEwaldEnergy(const std::vector<Vec3>& pos, const std::vector<double>& q, const Vec3* box, double alpha, double cutoff) {
    double total = 0;
    for (double qi : q)
        total += qi;
    double energy = OpenMMENN::ewaldReciprocal(pos, q, box, alpha, 16, nullptr, nullptr) + OpenMMENN::neutralizingBackgroundEnergy(total, box, alpha);
    for (size_t i = 0; i < q.size(); i++) {
        energy -= OpenMMENN::ONE_4PI_EPS0 * alpha / std::sqrt(M_PI) * q[i] * q[i];
        for (size_t j = 0; j < q.size(); j++)
            for (int a = -1; a <= 1; a++)
                for (int b = -1; b <= 1; b++)
                    for (int c = -1; c <= 1; c++) {
                        if (i == j && a == 0 && b == 0 && c == 0)
                            continue;
                        const Vec3 d = pos[j] - pos[i] + box[0] * a + box[1] * b + box[2] * c;
                        const double r = std::sqrt(d.dot(d));
                        if (r < cutoff)
                            energy += 0.5 * OpenMMENN::ONE_4PI_EPS0 * q[i] * q[j] * std::erfc(alpha * r) / r;
                    }
    }
    return energy;
}

/** The frozen charges of the ML atoms, in ML order. */
std::vector<double> chargesOf(const TestSystem& ts) {
    std::vector<double> q;
    for (int i : ts.ml)
        q.push_back(ts.charge(i));
    return q;
}

/** PME energy of the neutralizing background that ENNForce adds and OpenMM before 8.3 leaves out:
 *  E_bg(all charges) - E_bg(MM charges), the rest of E_bg being the NonbondedForce's. */
double missingBackground(double total, double mmTotal, const Vec3* box, double alpha) {
    int major = 0, minor = 0;
    std::sscanf(OpenMM::Platform::getOpenMMVersion().c_str(), "%d.%d", &major, &minor);
    if (major > 8 || (major == 8 && minor >= 3))
        return 0.0;
    return OpenMMENN::neutralizingBackgroundEnergy(total, box, alpha) - OpenMMENN::neutralizingBackgroundEnergy(mmTotal, box, alpha);
}


double missingBackground(const TestSystem& ts, double alpha) {
    double total = 0.0;
    for (size_t i = 0; i < ts.z.size(); i++)
        total += ts.charge(i);
    return missingBackground(total, total - ts.mlTotalCharge(), ts.box, alpha);
}

/** Coupled ENNForce + rewired NonbondedForce, minus the ENNForce alone and the ML-ML LJ, must equal the
 *  classical System in which ML-ML pairs get what the model declares: excluded (frozen_charges, no
 *  Coulomb term of its own) or ordinary pairs of the method (frozen_charges_coulomb, point charges). The
 *  ENNForce alone holds the model's own vacuum Coulomb term, so the difference is what coupling adds. */
void compareWithNonbonded(const TestSystem& ts, NonbondedForce::NonbondedMethod method, double relativeTolerance, const std::string& label,
                          const std::string& model) {
    const auto mlPairs = model == "frozen_charges" ? TestSystem::MLPairs::Excluded : TestSystem::MLPairs::Ordinary;
    std::unique_ptr<OpenMM::System> classical(ts.classical(method, 1.0, mlPairs));
    std::unique_ptr<OpenMM::System> ljOnly(ts.mlLennardJones(method, mlPairs));
    Evaluation expected = subtract(evaluate(*classical, ts.pos), evaluate(*ljOnly, ts.pos));
    if (method == NonbondedForce::PME)
        expected.energy += missingBackground(ts, 3.2);

    std::unique_ptr<OpenMM::System> coupled(ts.classical(method));
    ENNForce* force = ts.ennForce(model);
    coupled->addForce(force);
    force->coupleToNonbondedForce(*coupled, dynamic_cast<NonbondedForce&>(coupled->getForce(0)));
    // The ENNForce alone, not periodic: the network and, for frozen_charges_coulomb, its vacuum Coulomb sum.
    OpenMM::System alone;
    for (size_t i = 0; i < ts.z.size(); i++)
        alone.addParticle(1.0);
    ENNForce* bare = ts.ennForce(model);
    bare->setUsesPeriodicBoundaryConditions(false);
    alone.addForce(bare);
    Evaluation actual = subtract(evaluate(*coupled, ts.pos), evaluate(alone, ts.pos));
    if (mlPairs == TestSystem::MLPairs::Ordinary) {
        // Put back the model's vacuum term, which the expected side holds as ordinary pairs.
        const std::vector<double> q = chargesOf(ts);
        for (size_t a = 0; a < ts.ml.size(); a++)
            for (size_t b = a + 1; b < ts.ml.size(); b++) {
                const Vec3 d = ts.pos[ts.ml[b]] - ts.pos[ts.ml[a]];
                const double r = std::sqrt(d.dot(d)), e = OpenMMENN::ONE_4PI_EPS0 * q[a] * q[b] / r;
                actual.energy += e;
                actual.forces[ts.ml[b]] += d * (e / (r * r));
                actual.forces[ts.ml[a]] -= d * (e / (r * r));
            }
    }

    double scale = 0, worst = 0;
    for (size_t i = 0; i < ts.pos.size(); i++)
        for (int k = 0; k < 3; k++) {
            scale = std::max(scale, std::abs(expected.forces[i][k]));
            worst = std::max(worst, std::abs(expected.forces[i][k] - actual.forces[i][k]));
        }
    std::cout << label << ": E " << expected.energy << " vs " << actual.energy << " kJ/mol, max force error " << worst << " of "
              << scale << std::endl;
    EXPECT_NEAR(actual.energy, expected.energy, relativeTolerance * std::abs(expected.energy)) << label;
    EXPECT_LT(worst, relativeTolerance * scale) << label;
}



const char* const FrozenModels[] = {"frozen_charges", "frozen_charges_coulomb"};

TEST(Electrostatics, SameAsNonbondedForceNoCutoff) {
    for (const char* model : FrozenModels)
        for (int numML : {10, 6})
            compareWithNonbonded(TestSystem(numML, nullptr, 40), NonbondedForce::NoCutoff, 1e-10,
                                 std::string(model) + " NoCutoff, " + std::to_string(numML) + " ML atoms", model);
}

TEST(Electrostatics, SameAsNonbondedForceReactionField) {
    for (const char* model : FrozenModels)
        for (int numML : {10, 6}) {
            compareWithNonbonded(TestSystem(numML, nullptr, 40), NonbondedForce::CutoffNonPeriodic, 1e-10,
                                 std::string(model) + " CutoffNonPeriodic, " + std::to_string(numML) + " ML atoms", model);
            compareWithNonbonded(TestSystem(numML, TriclinicBox, 40), NonbondedForce::CutoffPeriodic, 1e-10,
                                 std::string(model) + " CutoffPeriodic triclinic, " + std::to_string(numML) + " ML atoms", model);
        }
}

// PME: same alpha and grid as OpenMM. Both are order-5 smooth PME of the same charges, so they agree
// to round-off in principle; the bound is 1e-5 relative.
TEST(Electrostatics, SameAsNonbondedForcePME) {
    for (const char* model : FrozenModels)
        for (int numML : {10, 6}) {
            compareWithNonbonded(TestSystem(numML, CubicBox, 40), NonbondedForce::PME, 1e-5,
                                 std::string(model) + " PME cubic, " + std::to_string(numML) + " ML atoms", model);
            compareWithNonbonded(TestSystem(numML, TriclinicBox, 40), NonbondedForce::PME, 1e-5,
                                 std::string(model) + " PME triclinic, " + std::to_string(numML) + " ML atoms", model);
        }
}

/** The ligand alone (all 10 atoms ML) with `model`, as an ENNForce by itself or coupled to a NonbondedForce
 *  of `method` that holds nothing but the ligand's own atoms (charges, LJ, exceptions from bonds). */
std::unique_ptr<OpenMM::System> isolatedLigand(const TestSystem& ts, const std::string& model, NonbondedForce::NonbondedMethod method,
                                               bool coupled, double cutoff, const Vec3* box = nullptr) {
    std::unique_ptr<OpenMM::System> system(ts.classical(method, cutoff));
    ENNForce* force = ts.ennForce(model);
    force->setUsesPeriodicBoundaryConditions(false);
    system->addForce(force);
    if (box)
        system->setDefaultPeriodicBoxVectors(box[0], box[1], box[2]);
    auto& nb = dynamic_cast<NonbondedForce&>(system->getForce(0));
    nb.setPMEParameters(2.0, 64, 64, 64);
    if (coupled)
        force->coupleToNonbondedForce(*system, nb);
    else
        system->removeForce(0);
    return system;
}

/** Energy, forces and predicted charges of a System whose last force is the ENNForce. */
Evaluation evaluateWithCharges(const OpenMM::System& system, const std::vector<Vec3>& pos, std::vector<double>& charges) {
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(system, integrator, referencePlatform());
    context.setPositions(pos);
    OpenMM::State state = context.getState(OpenMM::State::Energy | OpenMM::State::Forces);
    charges = dynamic_cast<const ENNForce&>(system.getForce(system.getNumForces() - 1)).getCharges(context);
    return {state.getPotentialEnergy(), state.getForces()};
}

// The bookkeeping invariant: coupling a molecule to an environment that holds nothing else must not change
// its energy. Models without their own Coulomb term (frozen_charges, mixed_charge) and with one (point
// charges: frozen_charges_coulomb; Gaussian-damped with self energies: damped_charge).
// * NoCutoff: the same energy and forces to round-off (1e-12 relative; measured 0 to 1e-15).
// * Reaction field, cutoff 3 nm around a 0.5 nm molecule: coupling adds exactly the reaction-field terms
//   k q_i q_j (k_rf r^2 - c_rf) of ML-ML pairs for models with their own Coulomb term, nothing otherwise.
// * PME in a 4 nm box: coupling adds the periodic-image terms E_Ewald - sum_{i<j} k q_i q_j / r (the same for
//   both kinds: excluded pairs still see each other's images), checked against a direct Ewald sum; bound
//   1e-5 of the reciprocal energy (PME at alpha 2 nm^-1 and 0.0625 nm spacing: measured 2e-6 of it; 1.8e-5 at 0.1 nm).
TEST(Electrostatics, CouplingToAnEmptyEnvironmentKeepsTheEnergy) {
    const Vec3 box[3] = {Vec3(4, 0, 0), Vec3(0, 4, 0), Vec3(0, 0, 4)};
    const TestSystem ts(10, nullptr, 0);
    for (const std::string model : {"frozen_charges", "mixed_charge", "frozen_charges_coulomb", "damped_charge", "latent_charges"}) {
        const bool ownCoulomb = model != "frozen_charges" && model != "mixed_charge";
        // The model's own Coulomb constant (MACE-LES-OFF's, for latent_charges) acts in every term among its charges,
        // which here are the only ones.
        const double k = OpenMMENN::ONE_4PI_EPS0 * ENNForce(modelPath(model)).getModel().coulombConstantRatio();
        std::vector<double> q, qCoupled;
        const Evaluation alone = evaluateWithCharges(*isolatedLigand(ts, model, NonbondedForce::NoCutoff, false, 1.0), ts.pos, q);

        const Evaluation noCutoff = evaluateWithCharges(*isolatedLigand(ts, model, NonbondedForce::NoCutoff, true, 1.0), ts.pos, qCoupled);
        EXPECT_NEAR(noCutoff.energy, alone.energy, 1e-12 * std::abs(alone.energy)) << model;
        double worst = 0;
        for (size_t i = 0; i < ts.pos.size(); i++)
            worst = std::max(worst, std::sqrt((noCutoff.forces[i] - alone.forces[i]).dot(noCutoff.forces[i] - alone.forces[i])));
        EXPECT_LE(worst, 1e-12 * maxAbs(alone.forces)) << model;

        const double cutoff = 3.0, eps = 78.3;
        const double krf = std::pow(cutoff, -3.0) * (eps - 1) / (2 * eps + 1), crf = 3 * eps / ((2 * eps + 1) * cutoff);
        double rfTerms = 0, images = 0;
        for (size_t a = 0; a < q.size(); a++)
            for (size_t b = a + 1; b < q.size(); b++) {
                const Vec3 d = ts.pos[b] - ts.pos[a];
                const double r2 = d.dot(d);
                rfTerms += k * q[a] * q[b] * (krf * r2 - crf);
                images -= k * q[a] * q[b] / std::sqrt(r2);
            }
        const double rf = evaluateWithCharges(*isolatedLigand(ts, model, NonbondedForce::CutoffNonPeriodic, true, cutoff), ts.pos, qCoupled).energy;
        EXPECT_NEAR(rf - alone.energy, ownCoulomb ? rfTerms : 0.0, 1e-10 * std::abs(alone.energy)) << model;

        const double alpha = 2.0, pmeCutoff = 1.6;
        const double pme = evaluateWithCharges(*isolatedLigand(ts, model, NonbondedForce::PME, true, pmeCutoff, box), ts.pos, qCoupled).energy;
        const double reciprocal = OpenMMENN::ewaldReciprocal(ts.pos, q, box, alpha, 16, nullptr, nullptr);
        images += directEwaldEnergy(ts.pos, q, box, alpha, pmeCutoff) * k / OpenMMENN::ONE_4PI_EPS0;
        std::cout << model << ": reciprocal " << reciprocal << "; coupled - alone: NoCutoff " << noCutoff.energy - alone.energy
                  << ", reaction field " << rf - alone.energy
                  << " (terms " << rfTerms << "), PME " << pme - alone.energy << " (direct Ewald images " << images << ") kJ/mol" << std::endl;
        EXPECT_NEAR(pme - alone.energy, images, 1e-5 * std::abs(reciprocal)) << model;
    }
}

// GB-OBC of the ML atoms' predicted charges (a model whose charges are fixed, so OpenMM's GBSAOBCForce with those
// charges is the oracle), in every nonbonded method of GBSAOBCForce: NoCutoff; CutoffNonPeriodic at 0.9 nm, which cuts
// pairs of this 2.4 nm wide system out of the Born radii and the energy; CutoffPeriodic at 0.9 nm in a 2.4 nm box,
// where pairs also take the nearest image. Bound 1e-6 relative (both in double; measured 1e-13 to 1e-11).
TEST(Electrostatics, SameAsGBSAOBCForce) {
    const Vec3 box[3] = {Vec3(2.4, 0, 0), Vec3(0, 2.4, 0), Vec3(0, 0, 2.4)};
    for (auto method : {OpenMM::GBSAOBCForce::NoCutoff, OpenMM::GBSAOBCForce::CutoffNonPeriodic, OpenMM::GBSAOBCForce::CutoffPeriodic})
        for (int numML : {10, 6}) {
            const bool periodic = method == OpenMM::GBSAOBCForce::CutoffPeriodic;
            TestSystem ts(numML, nullptr, 8);
            auto gbsa = [&]() {
                auto* gb = new OpenMM::GBSAOBCForce();
                for (size_t i = 0; i < ts.z.size(); i++) {
                    const double radius = ts.z[i] == 1 ? 0.12 : ts.z[i] == 6 ? 0.17 : ts.z[i] == 7 ? 0.155 : 0.15;
                    gb->addParticle(ts.charge(i), radius, ts.z[i] == 1 ? 0.85 : 0.72);
                }
                gb->setNonbondedMethod(method);
                gb->setCutoffDistance(0.9);
                return gb;
            };
            auto newSystem = [&]() {
                auto* system = new OpenMM::System();
                for (size_t i = 0; i < ts.z.size(); i++)
                    system->addParticle(1.0);
                system->setDefaultPeriodicBoxVectors(box[0], box[1], box[2]);
                return std::unique_ptr<OpenMM::System>(system);
            };
            auto classical = newSystem();
            classical->addForce(gbsa());
            Evaluation expected = evaluate(*classical, ts.pos);

            auto coupled = newSystem(), networkOnly = newSystem();
            auto* gb = gbsa();
            coupled->addForce(gb);
            ENNForce* force = ts.ennForce("frozen_charges");
            coupled->addForce(force);
            force->coupleToGBSAOBCForce(*coupled, *gb);
            ASSERT_EQ(coupled->getNumForces(), 1) << "the GBSAOBCForce must have been removed";
            EXPECT_EQ(force->getImplicitSolventCutoff(), method == OpenMM::GBSAOBCForce::NoCutoff ? 0.0 : 0.9);
            EXPECT_EQ(force->usesPeriodicBoundaryConditions(), periodic);
            ENNForce* alone = ts.ennForce("frozen_charges");
            alone->setUsesPeriodicBoundaryConditions(periodic);
            networkOnly->addForce(alone);
            Evaluation actual = subtract(evaluate(*coupled, ts.pos), evaluate(*networkOnly, ts.pos));
            double scale = maxAbs(expected.forces), worst = 0;
            for (size_t i = 0; i < ts.pos.size(); i++)
                for (int k = 0; k < 3; k++)
                    worst = std::max(worst, std::abs(expected.forces[i][k] - actual.forces[i][k]));
            std::cout << "GB-OBC, method " << method << ", " << numML << " ML atoms: E " << expected.energy << " vs " << actual.energy
                      << ", max force error " << worst << " of " << scale << std::endl;
            EXPECT_NEAR(actual.energy, expected.energy, 1e-6 * std::abs(expected.energy)) << method;
            EXPECT_LT(worst, 1e-6 * scale) << method;
        }
}

/** Forces of a coupled system with geometry-dependent charges against 4th-order finite differences.
 *  With a cutoff, coordinates whose stencil moves a pair across it are skipped: OpenMM's reaction
 *  field (which we reproduce) has a force discontinuity at the cutoff, so no derivative exists there. */
void checkChainRule(OpenMM::System& system, const std::vector<Vec3>& pos, const std::vector<int>& atoms, const std::string& label,
                    double cutoff = 0.0) {
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(system, integrator, referencePlatform());
    context.setPositions(pos);
    std::vector<Vec3> forces = context.getState(OpenMM::State::Forces).getForces();
    const double scale = maxAbs(forces), h = 1e-4;
    int checked = 0;
    for (int i : atoms)
        for (int k = 0; k < 3; k++) {
            bool straddles = false;
            for (size_t j = 0; j < pos.size() && cutoff > 0; j++) {
                const Vec3 d = pos[j] - pos[i];
                straddles = straddles || std::abs(std::sqrt(d.dot(d)) - cutoff) < 3 * h;
            }
            if (straddles)
                continue;
            checked++;
            auto energy = [&](double delta) {
                std::vector<Vec3> p = pos;
                p[i][k] += delta;
                context.setPositions(p);
                return context.getState(OpenMM::State::Energy).getPotentialEnergy();
            };
            const double fd = -(8 * (energy(h) - energy(-h)) - (energy(2 * h) - energy(-2 * h))) / (12 * h);
            EXPECT_NEAR(forces[i][k], fd, 1e-6 * scale) << label << " atom " << i << " axis " << k;
        }
    EXPECT_GT(checked, static_cast<int>(2 * atoms.size())) << label;
}

TEST(Electrostatics, ChainRuleForEveryMethod) {
    const std::vector<int> atoms = {0, 3, 5, 7, 12, 20};
    for (auto method : {NonbondedForce::NoCutoff, NonbondedForce::CutoffNonPeriodic, NonbondedForce::CutoffPeriodic, NonbondedForce::PME}) {
        const bool periodic = method == NonbondedForce::CutoffPeriodic || method == NonbondedForce::PME;
        TestSystem ts(6, periodic ? TriclinicBox : nullptr, 20);
        for (const std::string model : {"damped_charge", "latent_charges"})
            checkChainRule(*ts.coupledToNonbonded(model, method), ts.pos, atoms, model + ", NonbondedForce method " + std::to_string(method),
                           method == NonbondedForce::NoCutoff ? 0.0 : 1.0);
    }
    TestSystem ts(6, nullptr, 6);
    for (const std::string model : {"damped_charge", "latent_charges"})
        checkChainRule(*ts.coupledToImplicitSolvent(model), ts.pos, atoms, model + ", GB-OBC");
}

TEST(Electrostatics, CoupledSystemSerializesAndUpdatesCharges) {
    TestSystem ts(6, TriclinicBox, 20);
    std::unique_ptr<OpenMM::System> system(ts.classical(NonbondedForce::PME));
    ENNForce* force = ts.ennForce("damped_charge");
    system->addForce(force);
    force->coupleToNonbondedForce(*system, dynamic_cast<NonbondedForce&>(system->getForce(0)));
    std::stringstream xml;
    OpenMM::XmlSerializer::serialize<OpenMM::System>(system.get(), "System", xml);
    std::unique_ptr<OpenMM::System> copy(OpenMM::XmlSerializer::deserialize<OpenMM::System>(xml));
    Evaluation a = evaluate(*system, ts.pos), b = evaluate(*copy, ts.pos);
    EXPECT_EQ(a.energy, b.energy);
    for (size_t i = 0; i < ts.pos.size(); i++)
        for (int k = 0; k < 3; k++)
            EXPECT_EQ(a.forces[i][k], b.forces[i][k]);
    // updateParametersInContext: new MM charges must give what a freshly built Context gives.
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(*system, integrator, referencePlatform());
    context.setPositions(ts.pos);
    for (int i = 0; i < force->getNumMMParticles(); i++) {
        int particle;
        double q;
        force->getMMParticleParameters(i, particle, q);
        force->setMMParticleParameters(i, particle, 1.1 * q);
    }
    force->setTotalCharge(force->getTotalCharge() + 0.3);
    force->updateParametersInContext(context);
    const double updated = context.getState(OpenMM::State::Energy).getPotentialEnergy();
    EXPECT_NE(updated, a.energy);
    EXPECT_NEAR(updated, evaluate(*system, ts.pos).energy, 1e-9 * std::abs(updated));
}

// Energy conservation with predicted charges in implicit solvent (GB-OBC) and in explicit water (PME), on
// Reference. The bounds are fixed, not relative to one noisy all-MM sample (whose drift ranges over a factor of
// 16 between seeds), and bound the RMS over several velocity seeds; they come from runs over more seeds with
// and without the chain-rule term (dE/dq through the charge head), docs/testing.md.
TEST(Electrostatics, EnergyConservationInImplicitSolvent) {
    // 0.25 fs steps: at 1 fs the integration error of this small stiff system hides a missing chain-rule term.
    // Measured, seeds 1-8: at most 0.35 kJ/mol/ns/dof with the term, at least 15.8 without it; the bound lies
    // a factor of 5.7 and 7.9 from those.
    const TestSystem ts(10, nullptr, 0);
    const double drift = nveDriftAfterMinimization(*ts.ligandInImplicitSolvent("damped_charge"), ts.pos,
                                                   "ML ligand with predicted charges, GB-OBC", 0.00025, referencePlatform(), {},
                                                   seedsFromEnvironment({1, 2, 3}));
    EXPECT_LT(drift, 2.0);
}

TEST(Electrostatics, EnergyConservationInWaterWithPME) {
    // Stability of NVE in water, not a check of the chain rule: here the missing term's drift (-0.34 to 2.7
    // kJ/mol/ns/dof at 1 fs and 0.5 fs, seeds 1-2) is no larger than the integration noise (-0.13 to -1.6),
    // so this test does not fail without it; Electrostatics.ChainRuleForEveryMethod does (finite differences,
    // PME included). Measured at 1 fs: -0.58, -0.45, -0.13 (seeds 1, 2, 7); bound 5 times the largest.
    const TestSystem ts(10, CubicWaterBox, -1);
    const double drift = nveDriftAfterMinimization(*ts.ligandInWaterWithPME("damped_charge"), ts.pos,
                                                   "ML ligand with predicted charges in water, PME", 0.001, referencePlatform(), {},
                                                   seedsFromEnvironment({1, 2}));
    EXPECT_LT(drift, 3.0);
}

TEST(Electrostatics, LatentChargeEnergyConservation) {
    // MACELES's latent charges (every layer's readout in the chain rule, no constraint), as the two tests above: GB-OBC
    // at 0.25 fs, measured -0.002, -0.07, 0.24, -0.03, -0.17, -0.05 kJ/mol/ns/dof (seeds 1-6), bound as above; water
    // with PME at 0.5 fs (the latent charges' random-weight network is stiffer than damped_charge's: at 1 fs, and with
    // twice the charges at 0.5 fs, some seeds blow up), a stability check as above: measured -2.4, 0.93, 2.1, 2.4,
    // -1.9, -4.0 (seeds 1-6), bound 2.5 times the largest.
    const TestSystem gb(10, nullptr, 0);
    const double gbDrift = nveDriftAfterMinimization(*gb.ligandInImplicitSolvent("latent_charges"), gb.pos,
                                                     "ML ligand with latent charges, GB-OBC", 0.00025, referencePlatform(), {},
                                                     seedsFromEnvironment({1, 2, 3}));
    EXPECT_LT(gbDrift, 2.0);
    const TestSystem water(10, CubicWaterBox, -1);
    const double pmeDrift = nveDriftAfterMinimization(*water.ligandInWaterWithPME("latent_charges"), water.pos,
                                                      "ML ligand with latent charges in water, PME", 0.0005, referencePlatform(), {},
                                                      seedsFromEnvironment({1, 2}));
    EXPECT_LT(pmeDrift, 10.0);
}

TEST(Electrostatics, PMEConvergesToEwald) {
    std::mt19937 rng(5);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    std::vector<Vec3> pos;
    std::vector<double> neutral, charged;
    for (int i = 0; i < 30; i++) {
        pos.push_back(TriclinicBox[0] * uniform(rng) + TriclinicBox[1] * uniform(rng) + TriclinicBox[2] * uniform(rng));
        neutral.push_back(i % 2 ? 0.5 : -0.5);
        charged.push_back(uniform(rng) - 0.2);
    }
    const double alpha = 3.0;
    for (const auto* q : {&neutral, &charged}) {
        std::vector<Vec3> fEwald(pos.size());
        std::vector<double> phiEwald(pos.size());
        const double eEwald = OpenMMENN::ewaldReciprocal(pos, *q, TriclinicBox, alpha, 14, &fEwald, &phiEwald);
        double previous = 1e300;
        for (int n : {12, 18, 27, 40}) {
            const int grid[3] = {n, n, n};
            std::vector<Vec3> f(pos.size());
            std::vector<double> phi(pos.size());
            const double e = OpenMMENN::pmeReciprocal(pos, *q, TriclinicBox, alpha, grid, &f, &phi);
            double error = std::abs(e - eEwald) / std::abs(eEwald);
            for (size_t i = 0; i < pos.size(); i++)
                error = std::max(error, std::abs(phi[i] - phiEwald[i]) / std::abs(eEwald));
            std::cout << (q == &neutral ? "neutral" : "charged") << " grid " << n << ": relative error " << error << std::endl;
            EXPECT_LT(error, previous) << "PME error must fall as the grid is refined";
            previous = error;
        }
        EXPECT_LT(previous, 3e-6); // order-5 splines at a 0.06 nm grid spacing (measured 1.1e-6)
        // The plain Ewald forces are the gradient of its energy (checked on one coordinate).
        std::vector<Vec3> p = pos;
        p[3][1] += 1e-5;
        const double plus = OpenMMENN::ewaldReciprocal(p, *q, TriclinicBox, alpha, 14, nullptr, nullptr);
        p[3][1] -= 2e-5;
        const double minus = OpenMMENN::ewaldReciprocal(p, *q, TriclinicBox, alpha, 14, nullptr, nullptr);
        EXPECT_NEAR(fEwald[3][1], -(plus - minus) / 2e-5, 1e-5 * maxAbs(fEwald));
    }
}

TEST(Electrostatics, NetChargeUsesNeutralizingBackground) {
    // A charged ML region alone in a box: ENNForce's PME energy against an independent Ewald sum
    // (direct erfc sum over images + plain reciprocal sum + self + background).
    TestSystem ts(6, CubicBox, 0); // the first 6 ligand atoms carry -0.83 e
    OpenMM::System system;
    for (size_t i = 0; i < ts.z.size(); i++)
        system.addParticle(1.0);
    system.setDefaultPeriodicBoxVectors(CubicBox[0], CubicBox[1], CubicBox[2]);
    ENNForce* force = ts.ennForce("frozen_charges_coulomb"); // its own Coulomb term, summed with PME
    force->setElectrostaticsMethod(ENNForce::PME);
    force->setCutoffDistance(1.0);
    // Both sides use the same real-space cutoff, so a soft alpha costs nothing here and makes the
    // PME interpolation error (about 1e-6 of the reciprocal energy at alpha 3.5) negligible.
    const double alpha = 2.5;
    force->setPMEParameters(alpha, 40, 40, 40);
    system.addForce(force);
    OpenMM::System bare;
    for (size_t i = 0; i < ts.z.size(); i++)
        bare.addParticle(1.0);
    bare.setDefaultPeriodicBoxVectors(CubicBox[0], CubicBox[1], CubicBox[2]);
    ENNForce* bareForce = ts.ennForce("frozen_charges"); // the same network, without a Coulomb term
    bareForce->setUsesPeriodicBoundaryConditions(true);
    bare.addForce(bareForce);
    const double actual = evaluate(system, ts.pos).energy - evaluate(bare, ts.pos).energy;

    const std::vector<double> q = chargesOf(ts);
    std::vector<Vec3> mlPos;
    for (int i : ts.ml)
        mlPos.push_back(ts.pos[i]);
    ASSERT_GT(std::abs(ts.mlTotalCharge()), 0.1);
    const double expected = directEwaldEnergy(mlPos, q, CubicBox, alpha, 1.0); // the same real-space cutoff
    // The molecule's intramolecular pairs are all within the cutoff and not excluded here.
    std::cout << "net charge " << ts.mlTotalCharge() << ": ENNForce " << actual << ", Ewald " << expected << std::endl;
    EXPECT_NEAR(actual, expected, 1e-6 * std::abs(expected));
}

TEST(Electrostatics, BadCouplingInput) {
    TestSystem ts(6, CubicBox, 5);
    std::unique_ptr<OpenMM::System> system(ts.classical(NonbondedForce::PME));
    // A force that is not in the System.
    NonbondedForce stranger;
    std::unique_ptr<ENNForce> force(ts.ennForce("frozen_charges"));
    expectOpenMMException([&] { force->coupleToNonbondedForce(*system, stranger); }, "not in the System");
    // An ML atom missing from the NonbondedForce, and mismatched particle counts.
    auto* shortForce = new NonbondedForce();
    shortForce->addParticle(0.0, 0.3, 0.0);
    system->addForce(shortForce);
    expectOpenMMException([&] { force->coupleToNonbondedForce(*system, *shortForce); }, "ML particle 1 is missing from the NonbondedForce");
    auto* longForce = new NonbondedForce();
    for (int i = 0; i <= system->getNumParticles(); i++)
        longForce->addParticle(0.0, 0.3, 0.0);
    system->addForce(longForce);
    expectOpenMMException([&] { force->coupleToNonbondedForce(*system, *longForce); }, "particles but the System has");
    OpenMM::GBSAOBCForce* shortGB = new OpenMM::GBSAOBCForce();
    shortGB->addParticle(0.0, 0.15, 0.8);
    system->addForce(shortGB);
    expectOpenMMException([&] { force->coupleToGBSAOBCForce(*system, *shortGB); }, "particles but the System has");
    // A model without a charge head.
    if (fileExists(modelPath("public_A"))) {
        ENNForce noCharges(modelPath("public_A"));
        noCharges.addParticle(0, 6);
        expectOpenMMException([&] { noCharges.coupleToNonbondedForce(*system, dynamic_cast<NonbondedForce&>(system->getForce(0))); }, "charge head");
    }
    // A cutoff larger than half the box for PME.
    std::unique_ptr<OpenMM::System> small = ts.cutoffOverHalfTheBox();
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(*small, integrator, referencePlatform());
    context.setPositions(ts.pos);
    expectOpenMMException([&] { context.getState(OpenMM::State::Energy); }, "larger than half the periodic box");
    // GB with a cutoff: over half the periodic box; non-periodic coupled into a periodic force, and the reverse order.
    {
        std::unique_ptr<OpenMM::System> gbSystem = ts.coupledToImplicitSolvent("frozen_charges", ENNForce::OBC2, ENNForce::GBSAOBCForceFormulation,
                                                                              0.75 * CubicBox[0][0]);
        OpenMM::VerletIntegrator gbIntegrator(0.001);
        OpenMM::Context c(*gbSystem, gbIntegrator, referencePlatform());
        c.setPositions(ts.pos);
        expectOpenMMException([&] { c.getState(OpenMM::State::Energy); }, "implicit-solvent cutoff");
        auto addNonPeriodicGB = [&](OpenMM::System& system) {
            auto* gb = new OpenMM::GBSAOBCForce();
            for (size_t i = 0; i < ts.z.size(); i++)
                gb->addParticle(0.0, 0.15, 0.8);
            gb->setNonbondedMethod(OpenMM::GBSAOBCForce::CutoffNonPeriodic);
            system.addForce(gb);
            return gb;
        };
        std::unique_ptr<OpenMM::System> pme(ts.classical(NonbondedForce::PME));
        OpenMM::GBSAOBCForce* gb = addNonPeriodicGB(*pme);
        ENNForce* f = ts.ennForce("frozen_charges");
        pme->addForce(f);
        f->coupleToNonbondedForce(*pme, dynamic_cast<NonbondedForce&>(pme->getForce(0)));
        expectOpenMMException([&] { f->coupleToGBSAOBCForce(*pme, *gb); }, "CutoffNonPeriodic but this force is periodic");
        std::unique_ptr<OpenMM::System> reverse(ts.classical(NonbondedForce::PME));
        OpenMM::GBSAOBCForce* gb2 = addNonPeriodicGB(*reverse);
        ENNForce* f2 = ts.ennForce("frozen_charges");
        f2->setUsesPeriodicBoundaryConditions(false);
        reverse->addForce(f2);
        f2->coupleToGBSAOBCForce(*reverse, *gb2);
        expectOpenMMException([&] { f2->coupleToNonbondedForce(*reverse, dynamic_cast<NonbondedForce&>(reverse->getForce(0))); },
                              "non-periodic cutoff");
        expectOpenMMException([&] { f2->setImplicitSolventCutoff(std::nan("")); }, "implicit-solvent cutoff must be zero");
    }
    // Coupling the same force twice would duplicate MM charges and exceptions.
    std::unique_ptr<OpenMM::System> twice(ts.classical(NonbondedForce::NoCutoff));
    ENNForce* once = ts.ennForce("frozen_charges");
    twice->addForce(once);
    auto& nbTwice = dynamic_cast<NonbondedForce&>(twice->getForce(0));
    once->coupleToNonbondedForce(*twice, nbTwice);
    expectOpenMMException([&] { once->coupleToNonbondedForce(*twice, nbTwice); }, "couple to a NonbondedForce only once");
    // Non-physical reaction field, and an MM particle listed twice.
    {
        std::unique_ptr<OpenMM::System> rf(ts.classical(NonbondedForce::CutoffNonPeriodic));
        ENNForce* f = ts.ennForce("frozen_charges");
        rf->addForce(f);
        f->coupleToNonbondedForce(*rf, dynamic_cast<NonbondedForce&>(rf->getForce(0)));
        f->setReactionFieldDielectric(-1.0);
        expectOpenMMException([&] { OpenMM::Context c(*rf, integrator, referencePlatform()); }, "reaction-field dielectric must be positive");
        f->setReactionFieldDielectric(78.3);
        int particle;
        double charge;
        f->getMMParticleParameters(0, particle, charge);
        f->addMMParticle(particle, charge);
        expectOpenMMException([&] { OpenMM::Context c(*rf, integrator, referencePlatform()); }, "listed twice as an MM particle");
    }
    // Exceptions and MM particles must refer to particles of the System.
    std::unique_ptr<OpenMM::System> plain(ts.classical(NonbondedForce::NoCutoff));
    ENNForce* bad = ts.ennForce("frozen_charges");
    bad->setElectrostaticsMethod(ENNForce::NoCutoff);
    bad->addMMParticle(1000, 0.5);
    plain->addForce(bad);
    expectOpenMMException([&] { OpenMM::Context c(*plain, integrator, referencePlatform()); }, "MM particle index 1000 is out of range");
}

} // namespace
