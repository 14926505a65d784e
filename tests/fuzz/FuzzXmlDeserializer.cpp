// libFuzzer harness for the XML deserializer of ENNForce (ENNForceProxy, which OpenMM's XmlSerializer calls for
// any user's saved System or Force). The invariant: decoding the document's root node throws OpenMMException or
// returns a Force; an ENNForce that came back serializes again without error. Anything else (a crash, a
// sanitizer report, another exception type, a hang, runaway memory) is a finding.
//
// The bytes are parsed here, by a strict parser of the XML that XmlSerializer writes (elements with quoted
// attributes, the five predefined entities, no text), into OpenMM's SerializationNode tree, which then goes to
// the proxy exactly as XmlSerializer::deserialize hands it over. OpenMM's own XML reader (irrXML in OpenMM 7.7)
// is not used: it crashes on inputs as short as `<aaaaaaaa""` before any ENNForce code runs
// (docs/reliability.md), which would stop every run at OpenMM's bug instead of testing ours.
#include "openmmenn/ENNForce.h"
#include "openmm/Force.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/SerializationNode.h"
#include "openmm/serialization/XmlSerializer.h"
#include <cctype>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>

namespace {

/** Parses the XML subset XmlSerializer writes; false for anything else (never throws, bounded nesting). */
class StrictXml {
public:
    explicit StrictXml(const std::string& text) : s(text) {}

    bool parseDocument(OpenMM::SerializationNode& root) {
        skipSpace();
        if (s.compare(p, 5, "<?xml") == 0) {
            const size_t end = s.find("?>", p);
            if (end == std::string::npos)
                return false;
            p = end + 2;
            skipSpace();
        }
        if (!element(root, 0))
            return false;
        skipSpace();
        return p == s.size();
    }

private:
    static constexpr int MaxDepth = 32; // ENNForce's XML is 3 deep

    bool element(OpenMM::SerializationNode& node, int depth) {
        std::string name;
        if (depth > MaxDepth || !take('<') || !readName(name))
            return false;
        node.setName(name);
        while (true) {
            skipSpace();
            if (take('/'))
                return take('>');
            if (take('>'))
                break;
            std::string key, value;
            if (!readName(key) || (skipSpace(), !take('=')) || (skipSpace(), !readValue(value)) || node.hasProperty(key))
                return false;
            node.setStringProperty(key, value);
        }
        while (true) {
            skipSpace();
            if (s.compare(p, 2, "</") == 0) {
                p += 2;
                std::string closing;
                if (!readName(closing) || closing != name)
                    return false;
                skipSpace();
                return take('>');
            }
            if (p >= s.size() || s[p] != '<')
                return false;
            OpenMM::SerializationNode child;
            if (!element(child, depth + 1))
                return false;
            node.createChildNode(child.getName()) = child;
        }
    }

    bool readName(std::string& name) {
        const size_t start = p;
        while (p < s.size() && (std::isalnum(static_cast<unsigned char>(s[p])) || s[p] == '_' || s[p] == '-' || s[p] == '.' || s[p] == ':'))
            p++;
        name = s.substr(start, p - start);
        return !name.empty();
    }

    bool readValue(std::string& value) {
        if (p >= s.size() || (s[p] != '"' && s[p] != '\''))
            return false;
        const char quote = s[p++];
        while (p < s.size() && s[p] != quote) {
            if (s[p] == '<')
                return false;
            if (s[p] != '&') {
                value += s[p++];
                continue;
            }
            static const char* const entities[][2] = {{"&quot;", "\""}, {"&apos;", "'"}, {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}};
            bool known = false;
            for (const auto& e : entities)
                if (s.compare(p, std::char_traits<char>::length(e[0]), e[0]) == 0) {
                    value += e[1];
                    p += std::char_traits<char>::length(e[0]);
                    known = true;
                    break;
                }
            if (!known)
                return false;
        }
        return take(quote);
    }

    void skipSpace() {
        while (p < s.size() && (s[p] == ' ' || s[p] == '\t' || s[p] == '\n' || s[p] == '\r'))
            p++;
    }

    bool take(char c) {
        if (p < s.size() && s[p] == c) {
            p++;
            return true;
        }
        return false;
    }

    const std::string& s;
    size_t p = 0;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    OpenMM::SerializationNode root;
    if (!StrictXml(text).parseDocument(root))
        return 0;
    std::unique_ptr<OpenMM::Force> force;
    try {
        force.reset(root.decodeObject<OpenMM::Force>());
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
