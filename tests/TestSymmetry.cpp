// Invariance and equivariance: energy and predicted charges are invariant, and forces rotate with
// the system, under random rotations, reflections, translations and permutations of same-element
// atoms. SO(3) models may tell a chiral molecule from its mirror image; O(3) models may not.
// Tolerances: everything is double precision, so 1e-10 relative leaves ~6 orders of margin over
// round-off while any symmetry bug (wrong basis, sign or parity) shows at 1e-3 or worse.

#include "ENNTestUtilities.h"

using namespace enntest;

namespace {

Result evaluate(const std::string& model, const std::vector<int>& z, const std::vector<Vec3>& pos, const Vec3* box = nullptr) {
    Simulation sim(model, z, pos, box, -1.0);
    Result r{sim.energy(), sim.forces(), {}};
    if (sim.force->hasChargeHead())
        r.charges = sim.force->getCharges(*sim.context);
    return r;
}

void expectSame(const Result& a, const Result& b, const std::vector<int>& permutation, const std::array<Vec3, 3>* rotation,
                const std::string& what) {
    const double scale = maxAbs(a.forces);
    EXPECT_NEAR(a.energy, b.energy, 1e-10 * std::abs(a.energy)) << what;
    for (size_t i = 0; i < a.forces.size(); i++) {
        Vec3 expected = rotation ? rotate(*rotation, a.forces[permutation[i]]) : a.forces[permutation[i]];
        for (int k = 0; k < 3; k++)
            EXPECT_NEAR(b.forces[i][k], expected[k], 1e-10 * scale) << what << " atom " << i;
    }
    for (size_t i = 0; i < a.charges.size(); i++)
        EXPECT_NEAR(b.charges[i], a.charges[permutation[i]], 1e-10) << what << " charge " << i;
}

std::vector<std::string> models() {
    std::vector<std::string> names = {"mixed_charge", "three_layer_tanh", "chiral_so3", "materials", "nonlinear"};
    if (fileExists(modelPath("public_B")))
        names.push_back("public_B");
    return names;
}

TEST(Symmetry, RotationsReflectionsTranslations) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    std::vector<int> identity(z.size());
    for (size_t i = 0; i < z.size(); i++)
        identity[i] = i;
    std::mt19937 rng(12345);
    std::uniform_real_distribution<double> shift(-2.0, 2.0);
    for (const std::string& name : models()) {
        Result ref = evaluate(modelPath(name), z, pos);
        ASSERT_GT(maxAbs(ref.forces), 0.1) << "the test needs non-trivial forces";
        const bool o3 = name != "chiral_so3";
        for (int trial = 0; trial < 12; trial++) {
            const bool reflect = o3 && trial % 2 == 1;
            auto rot = randomOrthogonal(rng, reflect);
            Vec3 t(shift(rng), shift(rng), shift(rng));
            std::vector<Vec3> moved;
            for (const Vec3& p : pos)
                moved.push_back(rotate(rot, p) + t);
            expectSame(ref, evaluate(modelPath(name), z, moved), identity, &rot,
                       name + (reflect ? " reflection " : " rotation ") + std::to_string(trial));
        }
    }
}

TEST(Symmetry, PermutationsOfSameElementAtoms) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    std::mt19937 rng(7);
    for (const std::string& name : models()) {
        Result ref = evaluate(modelPath(name), z, pos);
        for (int trial = 0; trial < 4; trial++) {
            // Shuffle atoms within each element: new atom i is old atom perm[i].
            std::vector<int> perm(z.size());
            for (size_t i = 0; i < z.size(); i++)
                perm[i] = i;
            std::shuffle(perm.begin(), perm.end(), rng);
            std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return z[a] < z[b]; });
            std::vector<int> zp;
            std::vector<Vec3> pp;
            for (int i : perm) {
                zp.push_back(z[i]);
                pp.push_back(pos[i]);
            }
            expectSame(ref, evaluate(modelPath(name), zp, pp), perm, nullptr, name + " permutation " + std::to_string(trial));
        }
    }
}

TEST(Symmetry, PeriodicTranslationsAndLatticeShifts) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    // A triclinic box smaller than 2 r_c: atoms see several images of each other and themselves.
    const Vec3 box[3] = {Vec3(0.52, 0, 0), Vec3(0.11, 0.55, 0), Vec3(-0.07, 0.12, 0.58)};
    std::vector<int> identity(z.size());
    for (size_t i = 0; i < z.size(); i++)
        identity[i] = i;
    std::mt19937 rng(99);
    std::uniform_int_distribution<int> cell(-2, 2);
    std::uniform_real_distribution<double> shift(-1.0, 1.0);
    for (const std::string& name : models()) {
        Result ref = evaluate(modelPath(name), z, pos, box);
        for (int trial = 0; trial < 4; trial++) {
            Vec3 t(shift(rng), shift(rng), shift(rng));
            std::vector<Vec3> moved;
            for (const Vec3& p : pos)
                moved.push_back(p + t + box[0] * cell(rng) + box[1] * cell(rng) + box[2] * cell(rng));
            expectSame(ref, evaluate(modelPath(name), z, moved, box), identity, nullptr, name + " periodic shift " + std::to_string(trial));
        }
    }
}

TEST(Symmetry, MirrorImageDistinguishesSO3FromO3) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    std::vector<Vec3> mirror;
    for (const Vec3& p : pos)
        mirror.push_back(Vec3(-p[0], p[1], p[2]));
    const double o3 = evaluate(modelPath("chiral_o3"), z, pos).energy;
    const double o3Mirror = evaluate(modelPath("chiral_o3"), z, mirror).energy;
    const double so3 = evaluate(modelPath("chiral_so3"), z, pos).energy;
    const double so3Mirror = evaluate(modelPath("chiral_so3"), z, mirror).energy;
    // The interaction energy: the total minus that of the same atoms far apart.
    std::vector<Vec3> apart;
    for (size_t i = 0; i < pos.size(); i++)
        apart.push_back(Vec3(2.0 * i, 0, 0));
    const double so3Interaction = so3 - evaluate(modelPath("chiral_so3"), z, apart).energy;
    EXPECT_NEAR(o3, o3Mirror, 1e-10 * std::abs(o3));
    // The pseudoscalar paths of the SO(3) model change the energy by a finite part of the interaction.
    EXPECT_GT(std::abs(so3 - so3Mirror), 1e-5 * std::abs(so3Interaction))
        << "SO(3) model: E = " << so3 << ", mirror " << so3Mirror << ", interaction " << so3Interaction;
}

} // namespace
