// Forces are the exact gradient: they equal central finite differences of the energy (through an
// OpenMM Context), the internal forces sum to zero, and with a charge head the chain-rule term
// sum_i phi_i dq_i/dx is exact (checked on the network, with a random potential phi).
// Derivatives use the fourth-order central stencil with h = 1e-4 nm: its truncation error
// ~h^4 |E^(5)| and round-off ~1e-16 |E| / h are both far below 1e-6 of the largest force. (The
// second-order stencil is not enough: a rough random tanh model shows its h^2 error at 1e-5.)

#include "ENNTestUtilities.h"
#include "ENNModelMath.h"
#include "ReferenceENNNetwork.h"
#include "openmmenn/ENNModel.h"

using namespace enntest;
using namespace OpenMMENN;

namespace {

const double H = 1e-4;

/** dE/dx by the fourth-order central stencil, energy(delta) being E at x + delta. */
template <class F>
double derivative(F energy, double h) {
    return (8 * (energy(h) - energy(-h)) - (energy(2 * h) - energy(-2 * h))) / (12 * h);
}

void checkFiniteDifferences(const std::string& model, const std::vector<int>& z, const std::vector<Vec3>& pos, const Vec3* box) {
    Simulation sim(model, z, pos, box);
    std::vector<Vec3> forces = sim.forces();
    const double scale = maxAbs(forces);
    ASSERT_GT(scale, 0.1) << model << ": the test needs non-trivial forces";
    Vec3 total;
    for (const Vec3& f : forces)
        total += f;
    for (int k = 0; k < 3; k++)
        EXPECT_NEAR(total[k], 0.0, 1e-10 * scale * z.size()) << model << ": internal forces do not sum to zero";
    for (size_t i = 0; i < z.size(); i++)
        for (int k = 0; k < 3; k++) {
            auto energy = [&](double delta) {
                std::vector<Vec3> p = pos;
                p[i][k] += delta;
                sim.setPositions(p);
                return sim.energy();
            };
            EXPECT_NEAR(forces[i][k], -derivative(energy, H), 1e-6 * scale) << model << " atom " << i << " axis " << k;
        }
}

std::vector<std::string> models() {
    std::vector<std::string> names = {"mixed_charge", "three_layer_tanh", "chiral_so3", "materials", "materials_soft", "nonlinear"};
    for (const char* fixture : {"public_A", "public_B"})
        if (fileExists(modelPath(fixture)))
            names.push_back(fixture);
    return names;
}

TEST(Gradients, FiniteDifferencesInVacuum) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    for (const std::string& name : models())
        checkFiniteDifferences(modelPath(name), z, pos, nullptr);
}

TEST(Gradients, FiniteDifferencesInSmallTriclinicBox) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    const Vec3 box[3] = {Vec3(0.52, 0, 0), Vec3(0.11, 0.55, 0), Vec3(-0.07, 0.12, 0.58)};
    for (const std::string& name : models())
        checkFiniteDifferences(modelPath(name), z, pos, box);
}

TEST(Gradients, ChargeHeadChainRule) {
    // E_total = E_network + sum_i phi_i q_i(x) for a fixed random phi: the gradient the network
    // returns with chargePotential = phi must match finite differences of E_total.
    std::vector<int> z;
    std::vector<Vec3> posNm;
    smallMolecule(z, posNm);
    for (const char* name : {"mixed_charge", "three_layer_tanh"}) {
        auto model = ENNModel::fromBytes(ENNModel::readFile(modelPath(name)));
        ASSERT_TRUE(model->hasChargeHead);
        ReferenceENNNetwork network(model);
        std::vector<int> species;
        for (int zi : z)
            species.push_back(model->elementIndex(zi));
        std::vector<Vec3> pos;
        for (const Vec3& p : posNm)
            pos.push_back(p / model->lengthToNm);
        std::mt19937 rng(3);
        std::normal_distribution<double> normal(0.0, 50.0);
        std::vector<double> phi;
        for (size_t i = 0; i < z.size(); i++)
            phi.push_back(normal(rng));
        // Two charge groups (the first three atoms, and the rest), of charges 1 and -0.5.
        ENNChargeGroups groups;
        const InitialNodeFeatures initial = initialNodeFeatures(*model, 0.5, 1);
        groups.charge = {1.0, -0.5};
        groups.start = {0, 3, static_cast<int>(z.size())};
        for (size_t i = 0; i < z.size(); i++) {
            groups.groupOf.push_back(i < 3 ? 0 : 1);
            groups.members.push_back(static_cast<int>(i));
        }
        auto total = [&](const std::vector<Vec3>& x) {
            std::vector<double> q;
            double e = network.compute(species, buildReferenceEdges(x, model->rMax, nullptr), groups, initial, {}, &q, nullptr);
            double sum[2] = {0.0, 0.0};
            for (size_t i = 0; i < q.size(); i++) {
                e += phi[i] * q[i];
                sum[groups.groupOf[i]] += q[i];
            }
            EXPECT_NEAR(sum[0], 1.0, 1e-12) << "each charge group's charges must sum to its charge";
            EXPECT_NEAR(sum[1], -0.5, 1e-12) << "each charge group's charges must sum to its charge";
            return e;
        };
        std::vector<Vec3> gradient, gradientNoPhi;
        auto fixedPhi = [&](const std::vector<double>&, std::vector<double>& potential) { potential = phi; };
        network.compute(species, buildReferenceEdges(pos, model->rMax, nullptr), groups, initial, fixedPhi, nullptr, &gradient);
        network.compute(species, buildReferenceEdges(pos, model->rMax, nullptr), groups, initial, {}, nullptr, &gradientNoPhi);
        double scale = 0.0, chainRule = 0.0;
        for (size_t i = 0; i < z.size(); i++)
            for (int k = 0; k < 3; k++) {
                scale = std::max(scale, std::abs(gradient[i][k]));
                chainRule = std::max(chainRule, std::abs(gradient[i][k] - gradientNoPhi[i][k]));
            }
        ASSERT_GT(chainRule, 1e-3 * scale) << name << ": the charge term must matter for this test to mean anything";
        const double h = H / model->lengthToNm;
        for (size_t i = 0; i < z.size(); i++)
            for (int k = 0; k < 3; k++) {
                auto energy = [&](double delta) {
                    std::vector<Vec3> p = pos;
                    p[i][k] += delta;
                    return total(p);
                };
                EXPECT_NEAR(gradient[i][k], derivative(energy, h), 1e-6 * scale) << name << " atom " << i << " axis " << k;
            }
    }
}

TEST(Gradients, Extensivity) {
    // Two copies far apart (beyond the receptive field) have exactly twice the energy of one.
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    for (const std::string& name : models()) {
        const double one = Simulation(modelPath(name), z, pos).energy();
        std::vector<int> z2 = z;
        std::vector<Vec3> pos2 = pos;
        for (size_t i = 0; i < z.size(); i++) {
            z2.push_back(z[i]);
            pos2.push_back(pos[i] + Vec3(3.0, -1.0, 2.0));
        }
        EXPECT_NEAR(Simulation(modelPath(name), z2, pos2).energy(), 2 * one, 1e-11 * std::abs(one)) << name;
    }
}

} // namespace

namespace {

TEST(Gradients, SubsetOfParticles) {
    // An ML region inside a larger System: the same atoms at non-contiguous indices, among
    // particles the force ignores, give the same energy and forces, and no force on the others.
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    Simulation alone(modelPath("mixed_charge"), z, pos);
    OpenMM::System system;
    auto* force = new OpenMMENN::ENNForce(modelPath("mixed_charge"));
    std::vector<Vec3> all;
    std::vector<int> index;
    for (size_t i = 0; i < z.size(); i++) {
        all.push_back(Vec3(5.0 + i, 0, 0)); // an MM particle, never an ML neighbour
        system.addParticle(1.0);
        index.push_back(system.addParticle(1.0));
        all.push_back(pos[i]);
    }
    for (int i = static_cast<int>(z.size()) - 1; i >= 0; i--) // added in another order
        force->addParticle(index[i], z[i]);
    system.addForce(force);
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(system, integrator, referencePlatform());
    context.setPositions(all);
    OpenMM::State state = context.getState(OpenMM::State::Energy | OpenMM::State::Forces);
    EXPECT_NEAR(state.getPotentialEnergy(), alone.energy(), 1e-12 * std::abs(alone.energy()));
    std::vector<Vec3> reference = alone.forces();
    for (size_t i = 0; i < z.size(); i++)
        for (int k = 0; k < 3; k++) {
            EXPECT_NEAR(state.getForces()[index[i]][k], reference[i][k], 1e-10 * maxAbs(reference));
            EXPECT_EQ(state.getForces()[index[i] - 1][k], 0.0);
        }
    // Charges come back in the order the particles were added to the force.
    std::vector<double> q = force->getCharges(context), qAlone = alone.force->getCharges(*alone.context);
    for (size_t i = 0; i < z.size(); i++)
        EXPECT_NEAR(q[z.size() - 1 - i], qAlone[i], 1e-12);
}

TEST(Gradients, TotalChargeUpdatesInContext) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    Simulation sim(modelPath("mixed_charge"), z, pos, nullptr, 0.0);
    std::vector<double> before = sim.force->getCharges(*sim.context);
    sim.force->setTotalCharge(2.0);
    sim.force->updateParametersInContext(*sim.context);
    std::vector<double> after = sim.force->getCharges(*sim.context);
    for (size_t i = 0; i < z.size(); i++)
        EXPECT_NEAR(after[i] - before[i], 2.0 / z.size(), 1e-12);
}

} // namespace

// linearApply and its transpose (the PolarMACE head's e3nn linears, in double) against the linear's terms as
// forEachLinearTerm lists them, for every linear of models with per-element skips and several irreps: the same sums
// in another order, so 1e-14 of the output's scale (sum |c x|); the transpose must satisfy <g, L x> = <L^T g, x>.
TEST(Gradients, LinearApplyIsTheLinearsTerms) {
    std::mt19937 random(3);
    std::normal_distribution<double> normal;
    int checked = 0;
    for (const std::string name : {"public_A", "nonlinear", "materials"}) {
        const auto model = ENNForce(modelPath(name)).getModelPtr();
        for (const LayerSpec& L : model->layers)
            for (const LinearSpec* lin : {&L.linearUp, &L.linear, &L.skip, &L.productLinear}) {
                for (int element = 0; element < (lin->perElement ? model->numElements() : 1); element++) {
                    std::vector<double> x(lin->in.dim), g(lin->out.dim), terms(lin->out.dim, 0.0), scale(lin->out.dim, 0.0);
                    for (double& v : x)
                        v = normal(random);
                    for (double& v : g)
                        v = normal(random);
                    forEachLinearTerm(*lin, element, [&](int i, int o, double c) {
                        terms[o] += c * x[i];
                        scale[o] += std::abs(c * x[i]);
                    });
                    std::vector<double> applied(lin->out.dim, 0.0), transposed(lin->in.dim, 0.0);
                    linearApply(*lin, element, x.data(), applied.data());
                    linearApplyTranspose(*lin, element, g.data(), transposed.data());
                    double gLx = 0.0, ltgx = 0.0, total = 0.0;
                    for (int o = 0; o < lin->out.dim; o++) {
                        EXPECT_NEAR(applied[o], terms[o], 1e-14 * scale[o] + 1e-300) << name << " output " << o;
                        gLx += g[o] * terms[o];
                        total += std::abs(g[o]) * scale[o];
                    }
                    for (int i = 0; i < lin->in.dim; i++)
                        ltgx += transposed[i] * x[i];
                    EXPECT_NEAR(gLx, ltgx, 1e-14 * total) << name;
                    checked++;
                }
            }
    }
    EXPECT_GT(checked, 20);
}
