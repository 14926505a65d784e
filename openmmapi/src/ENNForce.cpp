#include "openmmenn/ENNForce.h"
#include "openmmenn/ENNModel.h"
#include "openmmenn/internal/ENNForceImpl.h"
#include "openmm/OpenMMException.h"
#include <cmath>

using namespace OpenMMENN;
using OpenMM::OpenMMException;

ENNForce::ENNForce(const std::string& modelFile) : ENNForce(ENNModel::readFile(modelFile), true) {}

ENNForce::ENNForce(const std::string& data, bool) : modelData(data), model(ENNModel::fromBytes(data)) {}

ENNForce* ENNForce::createFromModelData(const std::string& data) {
    return new ENNForce(data, true);
}

void ENNForce::checkElement(int atomicNumber) const {
    if (model->elementIndex(atomicNumber) < 0) {
        std::string known;
        for (int z : model->elements)
            known += (known.empty() ? "" : ", ") + std::to_string(z);
        throw OpenMMException("ENNForce: element with atomic number " + std::to_string(atomicNumber) +
                              " is not in the model (it knows " + known + ")");
    }
}

int ENNForce::addParticle(int particle, int atomicNumber) {
    if (particle < 0)
        throw OpenMMException("ENNForce: particle index " + std::to_string(particle) + " is negative");
    checkElement(atomicNumber);
    particles.push_back({particle, atomicNumber});
    return getNumParticles() - 1;
}

void ENNForce::getParticleParameters(int index, int& particle, int& atomicNumber) const {
    if (index < 0 || index >= getNumParticles())
        throw OpenMMException("ENNForce: particle index " + std::to_string(index) + " out of range");
    particle = particles[index].particle;
    atomicNumber = particles[index].atomicNumber;
}

void ENNForce::setParticleParameters(int index, int particle, int atomicNumber) {
    if (index < 0 || index >= getNumParticles())
        throw OpenMMException("ENNForce: particle index " + std::to_string(index) + " out of range");
    if (particle < 0)
        throw OpenMMException("ENNForce: particle index " + std::to_string(particle) + " is negative");
    checkElement(atomicNumber);
    particles[index] = {particle, atomicNumber};
}

bool ENNForce::hasChargeHead() const {
    return model->hasChargeHead;
}

void ENNForce::setSpinMultiplicity(int multiplicity) {
    if (multiplicity < 1)
        throw OpenMM::OpenMMException("ENNForce: the spin multiplicity 2S + 1 must be at least 1, not " + std::to_string(multiplicity));
    spinMultiplicity = multiplicity;
}

void ENNForce::setExternalField(const OpenMM::Vec3& field) {
    if (!std::isfinite(field[0]) || !std::isfinite(field[1]) || !std::isfinite(field[2]))
        throw OpenMMException("ENNForce: the external field must be finite");
    if (field != OpenMM::Vec3()) {
        if (!model->hasPolarHead)
            throw OpenMMException("ENNForce: an external field acts on a PolarMACE model's multipoles; this model has none");
        if (model->polar.externalFieldProjection.empty())
            throw OpenMMException("ENNForce: this PolarMACE model file has no external-field projection (converted by an earlier "
                                  "openmm-enn): convert the model again to apply an external field");
    }
    externalField = field;
}

bool ENNForce::usesChargeAndSpinInputs() const {
    return model->hasJointEmbedding || model->hasPolarHead;
}

bool ENNForce::hasPolarHead() const {
    return model->hasPolarHead;
}

bool ENNForce::hasTrainedPeriodicSum() const {
    return includesCoulombTerm() && model->hasTruncatedReciprocalSum();
}

bool ENNForce::hasLatentCharges() const {
    return model->hasChargeHead && !model->chargesConstrained;
}

bool ENNForce::usesTotalCharge() const {
    return (hasChargeHead() && !hasLatentCharges()) || usesChargeAndSpinInputs();
}

void ENNForce::setTotalCharge(double charge) {
    if (hasLatentCharges() && !usesTotalCharge())
        throw OpenMMException("ENNForce: the model's charges are latent (unconstrained, as MACELES predicts them): they sum to whatever the "
                              "network predicts, so a total charge cannot be imposed on them, and the model does not read one");
    totalCharge = charge;
}

bool ENNForce::includesCoulombTerm() const {
    return (model->hasChargeHead && model->chargeCoulombIncluded) || model->hasPolarHead;
}

std::vector<double> ENNForce::getCharges(OpenMM::Context& context) const {
    if (!model->hasChargeHead && !model->hasPolarHead)
        throw OpenMMException("ENNForce: the model has no charge head, so it predicts no charges");
    auto& impl = const_cast<ENNForceImpl&>(dynamic_cast<const ENNForceImpl&>(getImplInContext(const_cast<OpenMM::Context&>(context))));
    return impl.getCharges(const_cast<ENNForce*>(this)->getContextImpl(context));
}

std::vector<OpenMM::Vec3> ENNForce::getDipoles(OpenMM::Context& context) const {
    if (!model->hasPolarHead || model->polar.multipoleLmax < 1)
        throw OpenMMException("ENNForce: the model predicts no dipoles (only a PolarMACE model with multipoles up to l = 1 does)");
    auto& impl = const_cast<ENNForceImpl&>(dynamic_cast<const ENNForceImpl&>(getImplInContext(const_cast<OpenMM::Context&>(context))));
    return impl.getDipoles(const_cast<ENNForce*>(this)->getContextImpl(context));
}

void ENNForce::updateParametersInContext(OpenMM::Context& context) {
    dynamic_cast<ENNForceImpl&>(getImplInContext(context)).updateParametersInContext(getContextImpl(context));
}

OpenMM::ForceImpl* ENNForce::createImpl() const {
    return new ENNForceImpl(*this);
}

int ENNForce::addChargeGroup(const std::vector<int>& members, double charge) {
    if (hasLatentCharges())
        throw OpenMMException("ENNForce: the model's charges are latent (unconstrained, as MACELES predicts them), so charge groups cannot "
                              "constrain them");
    if (hasPolarHead())
        throw OpenMMException("ENNForce: a PolarMACE model's charges are constrained to the total charge and spin by its own Fukui "
                              "weights over the whole region; charge groups do not apply to it");
    chargeGroups.push_back({members, charge});
    return getNumChargeGroups() - 1;
}

void ENNForce::getChargeGroupParameters(int index, std::vector<int>& members, double& charge) const {
    if (index < 0 || index >= getNumChargeGroups())
        throw OpenMM::OpenMMException("ENNForce: charge group index " + std::to_string(index) + " out of range");
    members = chargeGroups[index].particles;
    charge = chargeGroups[index].charge;
}

void ENNForce::setChargeGroupParameters(int index, const std::vector<int>& members, double charge) {
    if (index < 0 || index >= getNumChargeGroups())
        throw OpenMM::OpenMMException("ENNForce: charge group index " + std::to_string(index) + " out of range");
    chargeGroups[index] = {members, charge};
}
