// The converted MACE fixtures (tests/data/mace, produced by the real MACE code) must be
// reproduced through an OpenMM Context on the Reference platform for every configuration, periodic
// ones included. The issue asks for 1e-6 eV and 1e-6 eV/Angstrom; we hold 1e-8, the tolerance the
// fixture README recommends (double precision reaches ~1e-14 here; a wrong sign, path weight or
// missing image gives errors of 1e-3 and more).

#include "ENNTestUtilities.h"
#include <nlohmann/json.hpp>
#include <iostream>

using namespace enntest;

namespace {

const double EV = 96.4853321233100184; // kJ/mol
const double ANGSTROM = 0.1;           // nm

class MaceFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(MaceFixture, ReproducesEnergiesAndForces) {
    const std::string name = GetParam();
    const std::string refs = fixturesDir() + "/mace/" + name + "/references.json";
    if (!fileExists(refs) || !fileExists(modelPath(name)))
        FAIL() << "MACE reference data " << refs << " or its converted model not found (tests/data/README.md)";
    std::ifstream in(refs);
    nlohmann::json data = nlohmann::json::parse(in);
    int checked = 0;
    for (const auto& config : data["configs"]) {
        std::vector<int> z = config["numbers"].get<std::vector<int>>();
        std::vector<Vec3> pos;
        for (const auto& p : config["positions"])
            pos.push_back(Vec3(p[0].get<double>(), p[1].get<double>(), p[2].get<double>()) * ANGSTROM);
        bool periodic = config["pbc"][0].get<bool>();
        Vec3 box[3];
        for (int k = 0; k < 3; k++)
            box[k] = Vec3(config["cell"][k][0].get<double>(), config["cell"][k][1].get<double>(), config["cell"][k][2].get<double>()) * ANGSTROM;
        Simulation sim(modelPath(name), z, pos, periodic ? box : nullptr);
        const double energy = sim.energy() / EV;
        EXPECT_NEAR(energy, config["energy"].get<double>(), 1e-8) << name << " config " << config["name"];
        std::vector<Vec3> forces = sim.forces();
        double worst = 0.0;
        for (size_t i = 0; i < z.size(); i++)
            for (int k = 0; k < 3; k++)
                worst = std::max(worst, std::abs(forces[i][k] * ANGSTROM / EV - config["forces"][i][k].get<double>()));
        EXPECT_LT(worst, 1e-8) << name << " config " << config["name"] << ": largest force error (eV/A)";
        std::cout << name << " " << config["name"].get<std::string>() << ": |dE| = " << std::abs(energy - config["energy"].get<double>())
                  << " eV, max |dF| = " << worst << " eV/A" << std::endl;
        checked++;
    }
    EXPECT_EQ(checked, 8);
}

INSTANTIATE_TEST_SUITE_P(Mace, MaceFixture, ::testing::Values("public_A", "public_B"));

} // namespace
