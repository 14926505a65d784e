// C2 smoothness at the cutoff: as a neighbour crosses r_c, the energy, the forces and a
// finite-difference Hessian are continuous. With the polynomial envelope (p >= 3) times the Bessel
// basis, an edge's contribution vanishes like (r_c - r)^4, so the jumps across r_c at distance
// eps shrink like eps^4, eps^3 and eps^2. With a distance transform (MACE's Agnesi) the Bessel functions no longer
// vanish at r_c, only the envelope does, like (r_c - r)^3: the jumps shrink like eps^3, eps^2 and eps, still C2.
// A C1-only cutoff would leave the Hessian jump finite.

#include "ENNTestUtilities.h"
#include "openmmenn/ENNModel.h"

using namespace enntest;

namespace {

struct Snapshot {
    double energy;
    std::vector<double> forces, hessian;
};

Snapshot snapshot(Simulation& sim, const std::vector<Vec3>& pos) {
    Snapshot s;
    sim.setPositions(pos);
    s.energy = sim.energy();
    for (const Vec3& f : sim.forces())
        for (int k = 0; k < 3; k++)
            s.forces.push_back(f[k]);
    const double h = 1e-6; // nm; every displacement stays on one side of the cutoff
    for (size_t i = 0; i < pos.size(); i++)
        for (int k = 0; k < 3; k++) {
            std::vector<Vec3> p = pos;
            p[i][k] += h;
            sim.setPositions(p);
            std::vector<Vec3> fPlus = sim.forces();
            p[i][k] -= 2 * h;
            sim.setPositions(p);
            std::vector<Vec3> fMinus = sim.forces();
            for (size_t j = 0; j < pos.size(); j++)
                for (int l = 0; l < 3; l++)
                    s.hessian.push_back(-(fPlus[j][l] - fMinus[j][l]) / (2 * h));
        }
    return s;
}

TEST(Smoothness, NeighbourCrossingTheCutoff) {
    std::vector<std::string> names = {"mixed_charge", "three_layer_tanh", "materials", "materials_soft", "nonlinear"};
    if (fileExists(modelPath("public_A")))
        names.push_back("public_A");
    for (const std::string& name : names) {
        const auto model = OpenMMENN::ENNModel::fromBytes(OpenMMENN::ENNModel::readFile(modelPath(name)));
        const double rc = model->rMax * model->lengthToNm;
        // The order of the zero at r_c: 4 where the envelope (a zero of order 3) multiplies Bessel functions of r (which
        // vanish at r_c); 3 where they are of a transformed distance or the envelope multiplies the radial outputs.
        const bool besselVanishes = model->distanceTransform.kind == OpenMMENN::DistanceTransformSpec::None && model->applyCutoff;
        const int order = besselVanishes ? 4 : 3;
        // C=O with an H that moves along a fixed direction away from the C only.
        const Vec3 direction = Vec3(-std::cos(0.4), std::sin(0.4), 0.1) / std::sqrt(1.0 + 0.01);
        auto geometry = [&](double distance) {
            return std::vector<Vec3>{Vec3(0, 0, 0), Vec3(0.123, 0.01, 0), direction * distance};
        };
        Simulation sim(modelPath(name), {6, 8, 1}, geometry(0.3));
        double jumpE[3], jumpF[3], jumpH[3], typicalH = 0.0;
        const double eps[3] = {1e-2, 1e-3, 1e-4};
        for (int n = 0; n < 3; n++) {
            Snapshot inside = snapshot(sim, geometry(rc - eps[n] * rc));
            Snapshot outside = snapshot(sim, geometry(rc + eps[n] * rc));
            jumpE[n] = std::abs(inside.energy - outside.energy);
            jumpF[n] = maxDifference(inside.forces, outside.forces);
            jumpH[n] = maxDifference(inside.hessian, outside.hessian);
            for (double x : outside.hessian)
                typicalH = std::max(typicalH, std::abs(x));
            std::cout << name << " eps " << eps[n] << " r_c: jumps E " << jumpE[n] << ", F " << jumpF[n] << ", H " << jumpH[n] << std::endl;
        }
        ASSERT_GT(jumpH[0], 1e-6 * typicalH) << name << ": the moving atom must interact inside r_c";
        // Each factor-10 step towards r_c shrinks the jumps by 10^order, 10^(order-1) and 10^(order-2) (bounds with a
        // factor 5-10 of room).
        const double step = std::pow(10.0, 2 - order);
        for (int n = 1; n < 3; n++) {
            EXPECT_LT(jumpE[n], 0.1 * step * jumpE[n - 1] + 1e-12) << name;
            EXPECT_LT(jumpF[n], step * jumpF[n - 1] + 1e-9) << name;
            EXPECT_LT(jumpH[n], 2 * step * jumpH[n - 1] + 1e-4) << name;
        }
        EXPECT_LT(jumpH[2], 1e-5 * typicalH) << name << ": the Hessian must be continuous at r_c";
    }
}

} // namespace
