// XmlSerializer support for ENNForce: the model file is embedded (base64) so a serialized System
// is self-contained. Registered when the library loads.

#include "openmmenn/ENNForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/SerializationNode.h"
#include "openmm/serialization/SerializationProxy.h"
#include <algorithm>
#include <cstdint>

using namespace OpenMMENN;
using OpenMM::OpenMMException;
using OpenMM::SerializationNode;

namespace {

const char* const Base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string encodeBase64(const std::string& data) {
    std::string out;
    out.reserve((data.size() + 2) / 3 * 4);
    for (size_t i = 0; i < data.size(); i += 3) {
        uint32_t chunk = uint32_t(uint8_t(data[i])) << 16;
        if (i + 1 < data.size()) chunk |= uint32_t(uint8_t(data[i + 1])) << 8;
        if (i + 2 < data.size()) chunk |= uint32_t(uint8_t(data[i + 2]));
        out += Base64Alphabet[(chunk >> 18) & 63];
        out += Base64Alphabet[(chunk >> 12) & 63];
        out += i + 1 < data.size() ? Base64Alphabet[(chunk >> 6) & 63] : '=';
        out += i + 2 < data.size() ? Base64Alphabet[chunk & 63] : '=';
    }
    return out;
}

std::string decodeBase64(const std::string& text) {
    int table[256];
    std::fill(table, table + 256, -1);
    for (int i = 0; i < 64; i++)
        table[uint8_t(Base64Alphabet[i])] = i;
    std::string out;
    uint32_t buffer = 0;
    int bits = 0;
    for (char ch : text) {
        if (ch == '=')
            break;
        int v = table[uint8_t(ch)];
        if (v < 0)
            throw OpenMMException("ENNForce: the serialized model is not valid base64");
        buffer = (buffer << 6) | uint32_t(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += char((buffer >> bits) & 0xFF);
        }
    }
    return out;
}

class ENNForceProxy : public OpenMM::SerializationProxy {
public:
    ENNForceProxy() : SerializationProxy("ENNForce") {}
    void serialize(const void* object, SerializationNode& node) const override {
        node.setIntProperty("version", 3); // 3: the external field (an older reader would drop it, so it refuses the file)
        const ENNForce& force = *reinterpret_cast<const ENNForce*>(object);
        node.setIntProperty("forceGroup", force.getForceGroup());
        node.setBoolProperty("usesPeriodic", force.usesPeriodicBoundaryConditions());
        node.setDoubleProperty("totalCharge", force.getTotalCharge());
        node.setIntProperty("spinMultiplicity", force.getSpinMultiplicity()); // (read as 1 where absent: older files)
        const OpenMM::Vec3 field = force.getExternalField();
        node.setDoubleProperty("externalFieldX", field[0]).setDoubleProperty("externalFieldY", field[1]).setDoubleProperty("externalFieldZ", field[2]);
        node.setStringProperty("model", encodeBase64(force.getModelData()));
        SerializationNode& particles = node.createChildNode("Particles");
        for (int i = 0; i < force.getNumParticles(); i++) {
            int particle, z;
            force.getParticleParameters(i, particle, z);
            particles.createChildNode("Particle").setIntProperty("index", particle).setIntProperty("z", z);
        }
        SerializationNode& groups = node.createChildNode("ChargeGroups");
        for (int g = 0; g < force.getNumChargeGroups(); g++) {
            std::vector<int> members;
            double charge;
            force.getChargeGroupParameters(g, members, charge);
            SerializationNode& group = groups.createChildNode("Group").setDoubleProperty("q", charge);
            for (int m : members)
                group.createChildNode("Member").setIntProperty("index", m);
        }
        // Electrostatics coupling.
        SerializationNode& el = node.createChildNode("Electrostatics");
        el.setIntProperty("method", force.getElectrostaticsMethod());
        el.setDoubleProperty("cutoff", force.getCutoffDistance());
        el.setDoubleProperty("reactionFieldDielectric", force.getReactionFieldDielectric());
        el.setDoubleProperty("ewaldErrorTolerance", force.getEwaldErrorTolerance());
        double alpha;
        int nx, ny, nz;
        force.getPMEParameters(alpha, nx, ny, nz);
        el.setDoubleProperty("alpha", alpha).setIntProperty("nx", nx).setIntProperty("ny", ny).setIntProperty("nz", nz);
        SerializationNode& mm = el.createChildNode("MMParticles");
        for (int i = 0; i < force.getNumMMParticles(); i++) {
            int particle;
            double charge;
            force.getMMParticleParameters(i, particle, charge);
            mm.createChildNode("Particle").setIntProperty("index", particle).setDoubleProperty("q", charge);
        }
        SerializationNode& exceptions = el.createChildNode("Exceptions");
        for (int i = 0; i < force.getNumElectrostaticExceptions(); i++) {
            int p1, p2;
            double scale;
            force.getElectrostaticExceptionParameters(i, p1, p2, scale);
            exceptions.createChildNode("Exception").setIntProperty("p1", p1).setIntProperty("p2", p2).setDoubleProperty("scale", scale);
        }
        double solute, solvent, surface;
        force.getGBSAOBCParameters(solute, solvent, surface);
        SerializationNode& gb = el.createChildNode("ImplicitSolvent");
        gb.setBoolProperty("enabled", force.getUseImplicitSolvent()).setDoubleProperty("soluteDielectric", solute);
        gb.setDoubleProperty("solventDielectric", solvent).setDoubleProperty("surfaceAreaEnergy", surface);
        gb.setIntProperty("model", force.getImplicitSolventModel()).setIntProperty("formulation", force.getGBFormulation());
        gb.setDoubleProperty("kappa", force.getImplicitSolventKappa()).setDoubleProperty("cutoff", force.getImplicitSolventCutoff());
        for (int i = 0; i < force.getNumGBParticles(); i++) {
            int particle, neckIndex;
            double charge, radius, scale, alpha, beta, gamma;
            force.getGBParticleParameters(i, particle, charge, radius, scale);
            force.getGBParticleBornParameters(i, alpha, beta, gamma, neckIndex);
            gb.createChildNode("Particle").setIntProperty("index", particle).setDoubleProperty("q", charge).setDoubleProperty("r", radius)
                .setDoubleProperty("s", scale).setDoubleProperty("alpha", alpha).setDoubleProperty("beta", beta)
                .setDoubleProperty("gamma", gamma).setIntProperty("neck", neckIndex);
        }
        int neckSize;
        std::vector<double> m0, d0;
        force.getGBNeckTables(neckSize, m0, d0);
        SerializationNode& neck = el.createChildNode("NeckTables").setIntProperty("size", neckSize);
        for (size_t k = 0; k < m0.size(); k++)
            neck.createChildNode("Value").setDoubleProperty("m0", m0[k]).setDoubleProperty("d0", d0[k]);
    }
    void* deserialize(const SerializationNode& node) const override {
        int version = node.getIntProperty("version");
        if (version < 1 || version > 3)
            throw OpenMMException("ENNForce: unsupported serialization version " + std::to_string(version));
        ENNForce* force = ENNForce::createFromModelData(decodeBase64(node.getStringProperty("model")));
        try {
            force->setForceGroup(node.getIntProperty("forceGroup", 0));
            force->setUsesPeriodicBoundaryConditions(node.getBoolProperty("usesPeriodic", false));
            if (!force->hasLatentCharges() || force->usesChargeAndSpinInputs()) // (a latent-charge model has none to set)
                force->setTotalCharge(node.getDoubleProperty("totalCharge", 0.0));
            force->setSpinMultiplicity(node.getIntProperty("spinMultiplicity", 1));
            force->setExternalField(OpenMM::Vec3(node.getDoubleProperty("externalFieldX", 0.0), node.getDoubleProperty("externalFieldY", 0.0),
                                                 node.getDoubleProperty("externalFieldZ", 0.0)));
            for (const SerializationNode& p : node.getChildNode("Particles").getChildren())
                force->addParticle(p.getIntProperty("index"), p.getIntProperty("z"));
            for (const SerializationNode& child : node.getChildren())
                if (child.getName() == "ChargeGroups")
                    for (const SerializationNode& group : child.getChildren()) {
                        std::vector<int> members;
                        for (const SerializationNode& m : group.getChildren())
                            members.push_back(m.getIntProperty("index"));
                        force->addChargeGroup(members, group.getDoubleProperty("q"));
                    }
            const SerializationNode& el = node.getChildNode("Electrostatics");
            force->setElectrostaticsMethod(static_cast<ENNForce::ElectrostaticsMethod>(el.getIntProperty("method")));
            force->setCutoffDistance(el.getDoubleProperty("cutoff"));
            force->setReactionFieldDielectric(el.getDoubleProperty("reactionFieldDielectric"));
            force->setEwaldErrorTolerance(el.getDoubleProperty("ewaldErrorTolerance"));
            force->setPMEParameters(el.getDoubleProperty("alpha"), el.getIntProperty("nx"), el.getIntProperty("ny"), el.getIntProperty("nz"));
            for (const SerializationNode& p : el.getChildNode("MMParticles").getChildren())
                force->addMMParticle(p.getIntProperty("index"), p.getDoubleProperty("q"));
            for (const SerializationNode& e : el.getChildNode("Exceptions").getChildren())
                force->addElectrostaticException(e.getIntProperty("p1"), e.getIntProperty("p2"), e.getDoubleProperty("scale"));
            const SerializationNode& gb = el.getChildNode("ImplicitSolvent");
            force->setUseImplicitSolvent(gb.getBoolProperty("enabled"));
            force->setGBSAOBCParameters(gb.getDoubleProperty("soluteDielectric"), gb.getDoubleProperty("solventDielectric"),
                                        gb.getDoubleProperty("surfaceAreaEnergy"));
            for (const SerializationNode& p : gb.getChildren()) {
                const int index = force->addGBParticle(p.getIntProperty("index"), p.getDoubleProperty("q"), p.getDoubleProperty("r"),
                                                       p.getDoubleProperty("s"));
                force->setGBParticleBornParameters(index, p.getDoubleProperty("alpha", 0.0), p.getDoubleProperty("beta", 0.0),
                                                   p.getDoubleProperty("gamma", 0.0), p.getIntProperty("neck", 0));
            }
            if (version >= 2) {
                force->setImplicitSolventModel(static_cast<ENNForce::ImplicitSolventModel>(gb.getIntProperty("model")));
                force->setGBFormulation(static_cast<ENNForce::GBFormulation>(gb.getIntProperty("formulation")));
                force->setImplicitSolventKappa(gb.getDoubleProperty("kappa"));
                force->setImplicitSolventCutoff(gb.getDoubleProperty("cutoff", 0.0)); // absent before the GB cutoff existed
                const SerializationNode& neck = el.getChildNode("NeckTables");
                std::vector<double> m0, d0;
                for (const SerializationNode& v : neck.getChildren()) {
                    m0.push_back(v.getDoubleProperty("m0"));
                    d0.push_back(v.getDoubleProperty("d0"));
                }
                force->setGBNeckTables(neck.getIntProperty("size"), m0, d0);
            }
        } catch (...) {
            delete force;
            throw;
        }
        return force;
    }
};

struct RegisterProxies {
    RegisterProxies() { OpenMM::SerializationProxy::registerProxy(typeid(ENNForce), new ENNForceProxy()); }
} registerProxies;

} // namespace
