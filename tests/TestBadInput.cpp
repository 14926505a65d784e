// Bad input gets an OpenMMException whose message names the problem, and never a crash: broken
// model files (empty, truncated, wrong magic or version, shape mismatch, NaN weights, non-smooth
// activation, missing fields, random corruption), unknown elements, particle indices out of range,
// and non-finite positions.

#include "ENNPlatformComparison.h"
#include "openmm/OpenMMException.h"
#include <nlohmann/json.hpp>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <limits>

using namespace enntest;
using nlohmann::json;
using OpenMM::OpenMMException;

namespace {

std::string readBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

/** Rewrite a model file: edit its safetensors header and architecture, keep the data. */
std::string rewrite(const std::string& bytes, const std::function<void(json& header, json& arch)>& edit) {
    uint64_t size;
    std::memcpy(&size, bytes.data(), 8);
    json header = json::parse(bytes.substr(8, size));
    json arch = json::parse(header["__metadata__"]["openmm_enn"].get<std::string>());
    edit(header, arch);
    if (header["__metadata__"].contains("openmm_enn"))
        header["__metadata__"]["openmm_enn"] = arch.dump();
    std::string text = header.dump();
    uint64_t newSize = text.size();
    std::string out(reinterpret_cast<const char*>(&newSize), 8);
    return out + text + bytes.substr(8 + size);
}

/** Loading `data` must throw an OpenMMException whose message contains `expected`. */
void expectRejected(const std::string& data, const std::string& expected) {
    try {
        std::unique_ptr<OpenMMENN::ENNForce> force(OpenMMENN::ENNForce::createFromModelData(data));
        ADD_FAILURE() << "accepted a bad model; expected an error containing '" << expected << "'";
    } catch (const OpenMMException& e) {
        EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << "message was: " << e.what();
    }
}

std::string validModel() {
    return readBytes(modelPath("three_layer_tanh"));
}

TEST(BadInput, EmptyTruncatedAndMissingFiles) {
    const std::string good = validModel();
    expectRejected("", "empty or truncated");
    expectRejected(good.substr(0, 5), "empty or truncated");
    expectRejected(good.substr(0, 200), "does not fit");
    expectRejected(good.substr(0, good.size() / 2), "outside");
    EXPECT_THROW(OpenMMENN::ENNForce("/nonexistent/model.enn"), OpenMMException);
}

TEST(BadInput, WrongMagicAndVersion) {
    const std::string good = validModel();
    expectRejected(std::string(8, '\0') + "garbage", "header length");
    expectRejected("GIF89a this is not a model file at all, just text..........", "header length");
    expectRejected(rewrite(good, [](json& h, json&) { h["__metadata__"].erase("openmm_enn"); }), "wrong magic");
    expectRejected(rewrite(good, [](json&, json& a) { a["format"] = "something-else"; }), "wrong magic");
    expectRejected(rewrite(good, [](json&, json& a) { a["format_version"] = 99; }), "version 99 is not supported");
}

// Format version 2 declares the model's energy (charge_head.coulomb); version 1 is read as a model
// without a Coulomb term of its own, whatever its gaussian_sigma said (docs/model-format.md).
TEST(BadInput, ChargeHeadDeclaresItsEnergy) {
    const std::string damped = readBytes(modelPath("damped_charge"));
    auto load = [](const std::string& data) { return std::unique_ptr<OpenMMENN::ENNForce>(OpenMMENN::ENNForce::createFromModelData(data)); };
    const auto force = load(damped); // (the model lives as long as its force)
    const auto& model = force->getModel();
    EXPECT_TRUE(model.chargeCoulombIncluded);
    EXPECT_NEAR(model.chargeGaussianSigma, 0.6, 1e-15);
    expectRejected(rewrite(damped, [](json&, json& a) { a["charge_head"].erase("coulomb"); }), "charge_head.coulomb");
    expectRejected(rewrite(damped, [](json&, json& a) { a["charge_head"]["coulomb"].erase("included"); }), "included");
    expectRejected(rewrite(damped, [](json&, json& a) { a["charge_head"]["coulomb"]["damping"] = "yukawa"; }), "must be 'none' or 'gaussian'");
    expectRejected(rewrite(damped, [](json&, json& a) { a["charge_head"]["coulomb"]["gaussian_sigma"] = -1.0; }), "must be positive");
    expectRejected(rewrite(damped, [](json&, json& a) { a["charge_head"]["coulomb"] = {{"included", false}, {"damping", "gaussian"}}; }),
                   "does not include");
    expectRejected(rewrite(damped, [](json&, json& a) { a["charge_head"]["gaussian_sigma"] = 0.6; }), "belongs in charge_head.coulomb");
    const std::string version1 = rewrite(damped, [](json&, json& a) {
        a["format_version"] = 1;
        a["charge_head"].erase("coulomb");
        a["charge_head"]["gaussian_sigma"] = 0.6;
    });
    const auto oldForce = load(version1);
    const auto& old = oldForce->getModel();
    EXPECT_TRUE(old.hasChargeHead);
    EXPECT_FALSE(old.chargeCoulombIncluded);
}

// Format version 3: MACE's materials terms, each checked and named; a version-2 file that uses them is refused (an
// older reader would have ignored them and evaluated another model).
TEST(BadInput, MaterialsTermsAreChecked) {
    const std::string materials = readBytes(modelPath("materials"));
    expectRejected(rewrite(materials, [](json&, json& a) { a["format_version"] = 2; }), "needs format_version 3");
    expectRejected(rewrite(materials, [](json&, json& a) { a["radial_basis"]["distance_transform"]["type"] = "cubic"; }),
                   "only 'agnesi' and 'soft' are supported");
    expectRejected(rewrite(materials, [](json&, json& a) { a["radial_basis"]["distance_transform"]["type"] = "soft"; }), "alpha");
    expectRejected(rewrite(materials, [](json&, json& a) { a["radial_basis"]["distance_transform"]["p"] = 0.5; }), "p > q > 0");
    expectRejected(rewrite(materials, [](json&, json& a) { a["pair_repulsion"]["covalent_radii"].erase(0); }), "one covalent radius per element");
    expectRejected(rewrite(materials, [](json&, json& a) { a["pair_repulsion"]["covalent_radii"][1] = -0.7; }), "must be positive");
    expectRejected(rewrite(materials, [](json&, json& a) { a["pair_repulsion"]["c"].erase(3); }), "needs 4 numbers");
    expectRejected(rewrite(materials, [](json&, json& a) { a["pair_repulsion"]["envelope_p"] = 2; }), "at least 3");
    expectRejected(rewrite(materials, [](json&, json& a) { a["layers"][0]["density_normalization"]["weights"] = "missing"; }),
                   "not in the file");
    expectRejected(rewrite(materials, [](json&, json& a) { a["layers"][1]["conv_tp"]["w3j"] = {{"1.two.1", "w3j.1.2.1"}}; }),
                   "is not 'l1.l2.l3'");
}

// Format version 4: MACE's non-linear block family, each part checked and named; a version-3 file that uses them is
// refused. Charges and multiplicities outside the model's classes are refused where they are set.
TEST(BadInput, NonLinearBlockTermsAreChecked) {
    const std::string nonlinear = readBytes(modelPath("nonlinear"));
    expectRejected(rewrite(nonlinear, [](json&, json& a) { a["format_version"] = 3; }), "needs format_version 4");
    expectRejected(rewrite(nonlinear, [](json&, json& a) { a["layers"][0]["gate"]["gated"][0][3] = 100; }), "outside irreps_in or the gates");
    expectRejected(rewrite(nonlinear, [](json&, json& a) { a["layers"][0]["gate"]["scalars"] = {0, 3}; }),
                   "is not the layout of the gated scalars followed by the gated entries");
    expectRejected(rewrite(nonlinear, [](json&, json& a) { a["layers"][0]["gate"]["gate_activation"]["function"] = "relu"; }),
                   "only smooth activations");
    expectRejected(rewrite(nonlinear, [](json&, json& a) { a["layers"][1]["radial_mlp"]["layer_norms"].erase(0); }),
                   "one layer norm per hidden layer");
    expectRejected(rewrite(nonlinear, [](json&, json& a) { a["layers"][1]["radial_mlp"]["sizes"][0] = 8; }), "must run from its inputs");
    expectRejected(rewrite(nonlinear, [](json&, json& a) { a["layers"][0].erase("edge_embeddings"); }), "edge_embeddings");
    expectRejected(rewrite(nonlinear, [](json&, json& a) { a["layers"][0].erase("density_normalization"); }), "density_normalization");
    expectRejected(rewrite(nonlinear, [](json&, json& a) { a["joint_embedding"]["inputs"][1]["source"] = "total_charge"; }),
                   "names an input twice");
    expectRejected(rewrite(nonlinear, [](json&, json& a) { a["joint_embedding"]["inputs"][0]["source"] = "temperature"; }),
                   "must be 'total_charge' or 'spin_multiplicity'");
    const std::string classic = readBytes(modelPath("mixed_charge"));
    expectRejected(rewrite(classic, [](json&, json& a) { a["layers"][0]["radial_mlp"]["biases"] = json::array(); }),
                   "belong to the non-linear block");

    // The model's classes: total charge -5..5 (whole numbers), multiplicity 1..5.
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    OpenMMENN::ENNForce force(modelPath("nonlinear"));
    expectOpenMMException([&] { force.setSpinMultiplicity(0); }, "at least 1");
    for (const auto& [charge, multiplicity, message] : std::vector<std::tuple<double, int, std::string>>{
             {6.0, 1, "total charge 6 is outside the model's range (-5 to 5)"},
             {0.5, 1, "must be a whole number"},
             {0.0, 6, "spin multiplicity 6 is outside the model's range (0 to 5)"}}) {
        std::unique_ptr<OpenMM::System> system = mlSystem(modelPath("nonlinear"), z, nullptr, charge, multiplicity);
        OpenMM::VerletIntegrator integrator(0.001);
        expectOpenMMException([&] { OpenMM::Context context(*system, integrator, referencePlatform()); }, message);
    }
}

TEST(BadInput, LatentChargeTermsAreChecked) {
    const std::string latent = readBytes(modelPath("latent_charges"));
    expectRejected(rewrite(latent, [](json&, json& a) { a["format_version"] = 4; }), "needs format_version 5");
    expectRejected(rewrite(latent, [](json&, json& a) { a["charge_head"]["readouts"].erase(0); }), "needs one readout per layer");
    expectRejected(rewrite(latent, [](json&, json& a) { a["charge_head"]["readout"] = a["charge_head"]["readouts"][1]; }),
                   "has both 'readout' and 'readouts'");
    expectRejected(rewrite(latent, [](json&, json& a) { a["charge_head"]["total_charge"] = "neutral"; }),
                   "must be 'constrained' or 'unconstrained'");
    expectRejected(rewrite(latent, [](json&, json& a) { a["charge_head"]["coulomb"]["constant"] = -1.0; }), "must be positive");
    expectRejected(rewrite(latent, [](json&, json& a) { a["charge_head"]["coulomb"]["periodic"]["dl"] = 0.0; }), "must be positive");
    expectRejected(rewrite(latent, [](json&, json& a) { a["charge_head"]["coulomb"]["periodic"]["method"] = "ewald"; }),
                   "must be 'truncated_reciprocal'");
    expectRejected(rewrite(latent, [](json&, json& a) {
                       a["charge_head"]["coulomb"]["damping"] = "none";
                       a["charge_head"]["coulomb"].erase("gaussian_sigma");
                       a["charge_head"]["coulomb"].erase("gaussian_self_energy");
                   }),
                   "needs a Coulomb term with damping 'gaussian'");
    // Latent charges take no total charge and no charge groups; the trained periodic sum does not combine with GB.
    OpenMMENN::ENNForce force(modelPath("latent_charges"));
    expectOpenMMException([&] { force.setTotalCharge(-1.0); }, "latent (unconstrained");
    expectOpenMMException([&] { force.addChargeGroup({0}, 0.0); }, "charge groups cannot constrain them");
    TestSystem ts(6, TriclinicBox, 0);
    std::unique_ptr<OpenMM::System> system = mlSystem(modelPath("latent_charges"), ts.z, ts.box);
    auto& periodic = dynamic_cast<OpenMMENN::ENNForce&>(system->getForce(0));
    periodic.setUseImplicitSolvent(true);
    OpenMM::VerletIntegrator integrator(0.001);
    expectOpenMMException([&] { OpenMM::Context context(*system, integrator, referencePlatform()); }, "does not combine with implicit solvent");
    // A box too large for the truncated sum (an exploded barostat run): refused, not gigabytes of k vectors.
    const Vec3 huge[3] = {Vec3(40, 0, 0), Vec3(0, 40, 0), Vec3(0, 0, 40)};
    std::unique_ptr<OpenMM::System> large = mlSystem(modelPath("latent_charges"), ts.z, huge);
    OpenMM::VerletIntegrator integrator2(0.001);
    OpenMM::Context context(*large, integrator2, referencePlatform());
    context.setPositions(ts.pos);
    expectOpenMMException([&] { context.getState(OpenMM::State::Energy); }, "k vectors in the model's truncated reciprocal sum");
}

TEST(BadInput, BadPositionsAreOpenMMExceptions) {
    expectBadPositionsRefused(referencePlatform(), {});
}

TEST(BadInput, AbsurdEnergyIsAnOpenMMException) {
    expectAbsurdEnergyRefused(referencePlatform(), {});
}

TEST(BadInput, BadBoxAndParameterUpdates) {
    expectBadBoxAndUpdatesRefused(referencePlatform(), {});
}

TEST(BadInput, ShapeMismatchAndMissingTensors) {
    const std::string good = validModel();
    expectRejected(rewrite(good, [](json& h, json&) {
                       auto& t = h["layers.0.radial_mlp.0.weight"];
                       auto shape = t["shape"];
                       t["shape"] = json::array({shape[1], shape[0]});
                   }),
                   "has shape");
    expectRejected(rewrite(good, [](json&, json& a) { a["layers"][0]["radial_mlp"]["sizes"][1] = 7; }), "radial_mlp");
    expectRejected(rewrite(good, [](json& h, json&) { h.erase("radial.frequencies"); }), "not in the file");
    expectRejected(rewrite(good, [](json& h, json&) { h["embedding.weight"]["data_offsets"][1] = 1u << 30; }), "outside");
    expectRejected(rewrite(good, [](json&, json& a) { a["layers"][1]["linear_up"]["irreps_in"] = "4x0e"; }), "linear_up");
    expectRejected(rewrite(good, [](json&, json& a) { a.erase("r_max"); }), "missing field 'r_max'");
    expectRejected(rewrite(good, [](json&, json& a) { a["layers"][0]["conv_tp"]["irreps_out"] = "4x0e+4x9z"; }), "irreps");
}

TEST(BadInput, NonFiniteWeights) {
    std::string data = validModel();
    uint64_t size;
    std::memcpy(&size, data.data(), 8);
    json header = json::parse(data.substr(8, size));
    uint64_t offset = header["embedding.weight"]["data_offsets"][0];
    double nan = std::numeric_limits<double>::quiet_NaN();
    std::memcpy(&data[8 + size + offset], &nan, 8);
    expectRejected(data, "tensor 'embedding.weight' holds a non-finite value");
}

TEST(BadInput, NonSmoothActivationAndEnvelope) {
    const std::string good = validModel();
    expectRejected(rewrite(good, [](json&, json& a) { a["layers"][0]["radial_mlp"]["activation"]["function"] = "relu"; }),
                   "activation 'relu' is not accepted");
    expectRejected(rewrite(good, [](json&, json& a) { a["radial_basis"]["envelope_p"] = 1; }), "C2");
}

TEST(BadInput, RandomCorruptionNeverCrashes) {
    // Flip random bytes of the header and the data: each file must either load or throw.
    const std::string good = validModel();
    uint64_t size;
    std::memcpy(&size, good.data(), 8);
    std::mt19937 rng(1);
    int rejected = 0;
    for (int trial = 0; trial < 300; trial++) {
        std::string bad = good;
        std::uniform_int_distribution<size_t> where(0, trial % 2 ? bad.size() - 1 : 8 + size - 1);
        for (int k = 0; k < 3; k++)
            bad[where(rng)] = static_cast<char>(rng() & 0xFF);
        try {
            std::unique_ptr<OpenMMENN::ENNForce> force(OpenMMENN::ENNForce::createFromModelData(bad));
        } catch (const OpenMMException&) {
            rejected++;
        }
    }
    EXPECT_GT(rejected, 50);
}

TEST(BadInput, UnknownElementAndParticleOutOfRange) {
    OpenMMENN::ENNForce force(modelPath("three_layer_tanh"));
    try {
        force.addParticle(0, 79);
        ADD_FAILURE() << "gold was accepted";
    } catch (const OpenMMException& e) {
        EXPECT_NE(std::string(e.what()).find("atomic number 79 is not in the model"), std::string::npos) << e.what();
    }
    EXPECT_THROW(force.addParticle(-1, 6), OpenMMException);

    OpenMM::System system;
    system.addParticle(12.0);
    auto* f = new OpenMMENN::ENNForce(modelPath("three_layer_tanh"));
    f->addParticle(0, 6);
    f->addParticle(5, 1);
    system.addForce(f);
    OpenMM::VerletIntegrator integrator(0.001);
    try {
        OpenMM::Context context(system, integrator, referencePlatform());
        ADD_FAILURE() << "a particle index out of range was accepted";
    } catch (const OpenMMException& e) {
        EXPECT_NE(std::string(e.what()).find("particle index 5 is out of range"), std::string::npos) << e.what();
    }
}

TEST(BadInput, NonFinitePositions) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    Simulation sim(modelPath("three_layer_tanh"), z, pos);
    pos[3][1] = std::numeric_limits<double>::quiet_NaN();
    sim.setPositions(pos);
    try {
        sim.energy();
        ADD_FAILURE() << "a NaN position was accepted";
    } catch (const OpenMMException& e) {
        EXPECT_NE(std::string(e.what()).find("particle 3 has a non-finite position"), std::string::npos) << e.what();
    }
    EXPECT_THROW(sim.force->getCharges(*sim.context), OpenMMException);
}

TEST(BadInput, ChargesWithoutChargeHead) {
    ASSERT_TRUE(fileExists(modelPath("public_A"))) << "needs the converted MACE fixture (tests/data/README.md)";
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    Simulation sim(modelPath("public_A"), z, pos);
    EXPECT_FALSE(sim.force->hasChargeHead());
    EXPECT_THROW(sim.force->getCharges(*sim.context), OpenMMException);
}

} // namespace
