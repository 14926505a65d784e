// libFuzzer harness for the XML deserializer of ENNForce (ENNForceProxy, reached through OpenMM's
// XmlSerializer as any user's saved System or Force is). The invariant: XmlSerializer::deserialize throws
// OpenMMException or returns a Force; a Force that came back serializes again without error. Anything else (a
// crash, a sanitizer report, another exception type, a hang, runaway memory) is a finding.
#include "openmmenn/ENNForce.h"
#include "openmm/Force.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/XmlSerializer.h"
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
    std::unique_ptr<OpenMM::Force> force;
    try {
        force.reset(OpenMM::XmlSerializer::deserialize<OpenMM::Force>(in));
    } catch (const OpenMM::OpenMMException&) {
        return 0;
    }
    // (ENNForceProxy is registered when libOpenMMENN loads; the dynamic_cast also keeps the library linked.)
    if (dynamic_cast<OpenMMENN::ENNForce*>(force.get()) != nullptr) {
        std::ostringstream out;
        OpenMM::XmlSerializer::serialize<OpenMM::Force>(force.get(), "Force", out);
    }
    return 0;
}
