// XmlSerializer round trips give a System with identical energies and forces (the model is embedded
// in the XML), and Context checkpoints restore a trajectory exactly.

#include "ENNTestUtilities.h"
#include "openmm/serialization/XmlSerializer.h"
#include <sstream>

using namespace enntest;
using OpenMM::XmlSerializer;

namespace {

TEST(Serialization, XmlRoundTripGivesIdenticalEnergies) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    const Vec3 box[3] = {Vec3(0.9, 0, 0), Vec3(0.1, 0.8, 0), Vec3(0, -0.2, 0.85)};
    Simulation sim(modelPath("mixed_charge"), z, pos, box, 1.0);
    sim.force->setForceGroup(3);
    sim.context->reinitialize(true);
    std::stringstream xml;
    XmlSerializer::serialize<OpenMM::System>(&sim.system, "System", xml);
    std::unique_ptr<OpenMM::System> copy(XmlSerializer::deserialize<OpenMM::System>(xml));
    ASSERT_EQ(copy->getNumForces(), 1);
    auto& force = dynamic_cast<OpenMMENN::ENNForce&>(copy->getForce(0));
    EXPECT_EQ(force.getForceGroup(), 3);
    EXPECT_TRUE(force.usesPeriodicBoundaryConditions());
    EXPECT_EQ(force.getTotalCharge(), 1.0);
    EXPECT_EQ(force.getModelData(), sim.force->getModelData());
    ASSERT_EQ(force.getNumParticles(), (int) z.size());
    for (int i = 0; i < force.getNumParticles(); i++) {
        int particle, atomicNumber;
        force.getParticleParameters(i, particle, atomicNumber);
        EXPECT_EQ(particle, i);
        EXPECT_EQ(atomicNumber, z[i]);
    }
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(*copy, integrator, referencePlatform());
    context.setPositions(pos);
    OpenMM::State a = sim.context->getState(OpenMM::State::Energy | OpenMM::State::Forces);
    OpenMM::State b = context.getState(OpenMM::State::Energy | OpenMM::State::Forces);
    EXPECT_EQ(a.getPotentialEnergy(), b.getPotentialEnergy());
    for (size_t i = 0; i < z.size(); i++)
        for (int k = 0; k < 3; k++)
            EXPECT_EQ(a.getForces()[i][k], b.getForces()[i][k]);
    EXPECT_EQ(sim.force->getCharges(*sim.context), force.getCharges(context));
}

TEST(Serialization, SpinMultiplicityRoundTrips) {
    // A model that reads the total charge and the multiplicity: both survive XML, and the energy with them.
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    Simulation sim(modelPath("nonlinear"), z, pos, nullptr, -1.0);
    sim.force->setSpinMultiplicity(2);
    sim.context->reinitialize(true);
    std::stringstream xml;
    XmlSerializer::serialize<OpenMM::System>(&sim.system, "System", xml);
    std::unique_ptr<OpenMM::System> copy(XmlSerializer::deserialize<OpenMM::System>(xml));
    auto& force = dynamic_cast<OpenMMENN::ENNForce&>(copy->getForce(0));
    EXPECT_EQ(force.getSpinMultiplicity(), 2);
    EXPECT_EQ(force.getTotalCharge(), -1.0);
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(*copy, integrator, referencePlatform());
    context.setPositions(pos);
    EXPECT_EQ(sim.context->getState(OpenMM::State::Energy).getPotentialEnergy(), context.getState(OpenMM::State::Energy).getPotentialEnergy());
}

TEST(Serialization, LatentChargeModelRoundTrips) {
    // MACELES's latent charges in a periodic box (the trained sum): the XML holds no total charge to impose, and the
    // copy gives the same energy.
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    const Vec3 box[3] = {Vec3(0.52, 0, 0), Vec3(0.11, 0.55, 0), Vec3(-0.07, 0.12, 0.58)};
    Simulation sim(modelPath("latent_charges"), z, pos, box);
    std::stringstream xml;
    XmlSerializer::serialize<OpenMM::System>(&sim.system, "System", xml);
    std::unique_ptr<OpenMM::System> copy(XmlSerializer::deserialize<OpenMM::System>(xml));
    auto& force = dynamic_cast<OpenMMENN::ENNForce&>(copy->getForce(0));
    EXPECT_TRUE(force.hasLatentCharges());
    EXPECT_TRUE(force.usesPeriodicBoundaryConditions());
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(*copy, integrator, referencePlatform());
    context.setPositions(pos);
    EXPECT_EQ(sim.context->getState(OpenMM::State::Energy).getPotentialEnergy(), context.getState(OpenMM::State::Energy).getPotentialEnergy());
}

TEST(Serialization, CheckpointRestoresExactly) {
    std::vector<int> z;
    std::vector<Vec3> pos;
    smallMolecule(z, pos);
    Simulation sim(modelPath("three_layer_tanh"), z, pos);
    sim.context->setVelocitiesToTemperature(100.0, 5);
    sim.integrator.step(5);
    std::stringstream checkpoint;
    sim.context->createCheckpoint(checkpoint);
    sim.integrator.step(10);
    OpenMM::State first = sim.context->getState(OpenMM::State::Energy | OpenMM::State::Positions);
    sim.context->loadCheckpoint(checkpoint);
    sim.integrator.step(10);
    OpenMM::State second = sim.context->getState(OpenMM::State::Energy | OpenMM::State::Positions);
    EXPECT_EQ(first.getPotentialEnergy(), second.getPotentialEnergy());
    EXPECT_EQ(first.getKineticEnergy(), second.getKineticEnergy());
    for (size_t i = 0; i < z.size(); i++)
        for (int k = 0; k < 3; k++)
            EXPECT_EQ(first.getPositions()[i][k], second.getPositions()[i][k]);
}

} // namespace
