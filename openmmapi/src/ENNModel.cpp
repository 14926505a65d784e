#include "openmmenn/ENNModel.h"
#include "openmmenn/internal/SafeTensors.h"
#include "openmm/OpenMMException.h"
#include <nlohmann/json.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

using namespace OpenMMENN;
using OpenMM::OpenMMException;
using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& msg) {
    throwModelFileError(msg);
}

/** A JSON value plus its path in the architecture description, for error messages. */
class Field {
public:
    Field(const json& value, std::string path) : value(value), path(std::move(path)) {}
    bool has(const std::string& key) const { return value.is_object() && value.contains(key) && !value[key].is_null(); }
    Field at(const std::string& key) const {
        if (!value.is_object() || !value.contains(key))
            fail("missing field '" + child(key) + "'");
        return Field(value[key], child(key));
    }
    Field at(size_t i) const { return Field(value.at(i), path + "[" + std::to_string(i) + "]"); }
    size_t size() const {
        if (!value.is_array())
            fail("field '" + path + "' must be an array");
        return value.size();
    }
    double number() const {
        if (!value.is_number() || !std::isfinite(value.get<double>()))
            fail("field '" + path + "' must be a finite number");
        return value.get<double>();
    }
    int integer() const {
        if (!value.is_number_integer())
            fail("field '" + path + "' must be an integer");
        return value.get<int>();
    }
    std::string string() const {
        if (!value.is_string())
            fail("field '" + path + "' must be a string");
        return value.get<std::string>();
    }
    bool boolean() const {
        if (!value.is_boolean())
            fail("field '" + path + "' must be true or false");
        return value.get<bool>();
    }
    [[noreturn]] void invalid(const std::string& why) const { fail("field '" + path + "': " + why); }
    const json& value;
    const std::string path;

private:
    std::string child(const std::string& key) const { return path.empty() ? key : path + "." + key; }
};

std::string shapeString(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); i++)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

class Parser {
public:
    explicit Parser(const SafeTensorsFile& file) : file(file) {}

    const std::vector<double>& tensor(const Field& nameField, const std::vector<int64_t>& shape) {
        std::string name = nameField.string();
        auto it = file.tensors.find(name);
        if (it == file.tensors.end())
            nameField.invalid("names tensor '" + name + "', which is not in the file");
        if (it->second.shape != shape)
            nameField.invalid("tensor '" + name + "' has shape " + shapeString(it->second.shape) + ", expected " + shapeString(shape));
        return it->second.values;
    }

    const std::vector<double>& namedTensor(const std::string& name, const std::vector<int64_t>& shape) {
        json j = name;
        return tensor(Field(j, "(tensor " + name + ")"), shape);
    }

    ActivationSpec activation(const Field& f) {
        ActivationSpec act;
        std::string name = f.at("function").string();
        if (name == "silu")
            act.kind = ActivationSpec::SiLU;
        else if (name == "tanh")
            act.kind = ActivationSpec::Tanh;
        else if (name == "sigmoid")
            act.kind = ActivationSpec::Sigmoid;
        else
            f.at("function").invalid("activation '" + name + "' is not accepted: energies must be at least C2, so only smooth "
                                     "activations (silu, tanh, sigmoid) are allowed");
        act.scale = f.at("scale").number();
        return act;
    }

    /** An e3nn linear; `biased`: one of the polar head's (format version 6), the only ones whose evaluation reads a bias. */
    LinearSpec linear(const Field& f, int numElements, bool biased = false) {
        LinearSpec lin;
        lin.in = Irreps::parse(f.at("irreps_in").string(), f.path + ".irreps_in");
        lin.out = Irreps::parse(f.at("irreps_out").string(), f.path + ".irreps_out");
        lin.perElement = f.has("per_element") && f.at("per_element").boolean();
        Field paths = f.at("paths");
        int offset = 0;
        for (size_t i = 0; i < paths.size(); i++) {
            Field p = paths.at(i);
            if (p.size() != 3)
                p.invalid("a path is [i_in, i_out, path_weight]");
            LinearSpec::Path path{p.at(0).integer(), p.at(1).integer(), p.at(2).number(), offset};
            if (path.in < 0 || path.in >= (int) lin.in.entries.size() || path.out < 0 || path.out >= (int) lin.out.entries.size())
                p.invalid("irreps index out of range");
            const auto& a = lin.in.entries[path.in];
            const auto& b = lin.out.entries[path.out];
            if (a.ir != b.ir)
                p.invalid("a linear path must connect equal irreps");
            offset += a.mul * b.mul;
            lin.paths.push_back(path);
        }
        lin.weightsPerElement = offset;
        if (lin.perElement)
            lin.weights = tensor(f.at("weight"), {numElements, offset});
        else
            lin.weights = tensor(f.at("weight"), {offset});
        if (f.has("bias") && !biased)
            f.at("bias").invalid("only a polar head's linears (format version 6) take a bias");
        if (f.has("bias")) { // e3nn's biases: on scalar outputs only
            lin.bias = tensor(f.at("bias"), {lin.out.dim});
            for (const auto& e : lin.out.entries)
                for (int i = 0; i < e.mul * e.ir.dim(); i++)
                    if (e.ir.l != 0 && lin.bias[e.offset + i] != 0.0)
                        f.at("bias").invalid("a bias on a non-scalar output breaks equivariance");
        }
        return lin;
    }

    /** MACE's SparseUvuTensorProduct (ChannelProductSpec); every path checked against its kind. */
    ChannelProductSpec channelProduct(const Field& f) {
        ChannelProductSpec tp;
        tp.in1 = Irreps::parse(f.at("irreps_in1").string(), f.path + ".irreps_in1");
        tp.in2 = Irreps::parse(f.at("irreps_in2").string(), f.path + ".irreps_in2");
        tp.out = Irreps::parse(f.at("irreps_out").string(), f.path + ".irreps_out");
        Field paths = f.at("paths");
        int offset = 0;
        for (size_t i = 0; i < paths.size(); i++) {
            Field p = paths.at(i);
            if (p.size() != 5)
                p.invalid("a path is [i_in1, i_in2, i_out, path_weight, 'dot' or 'scale']");
            ChannelProductSpec::Path path{p.at(0).integer(), p.at(1).integer(), p.at(2).integer(), p.at(3).number(), false, offset};
            const std::string kind = p.at(4).string();
            if (kind != "dot" && kind != "scale")
                p.at(4).invalid("must be 'dot' or 'scale'");
            path.dot = kind == "dot";
            if (path.in1 < 0 || path.in1 >= (int) tp.in1.entries.size() || path.in2 < 0 || path.in2 >= (int) tp.in2.entries.size() ||
                path.out < 0 || path.out >= (int) tp.out.entries.size())
                p.invalid("irreps index out of range");
            const auto &a = tp.in1.entries[path.in1], &b = tp.in2.entries[path.in2], &c = tp.out.entries[path.out];
            if (c.mul != a.mul)
                p.invalid("the output multiplicity must be the first input's");
            if (path.dot ? (a.ir != b.ir || c.ir != Irrep{0, 1}) : (b.ir != Irrep{0, 1} || c.ir != a.ir))
                p.invalid(path.dot ? "a 'dot' path is l x l -> 0e" : "a 'scale' path is l x 0e -> l");
            offset += a.mul * b.mul;
            tp.paths.push_back(path);
        }
        tp.weights = tensor(f.at("weight"), {offset});
        return tp;
    }

    /** MACE's NonLinearBiasReadoutBlock or GeneralNonLinearBiasReadoutBlock (BiasedReadoutSpec), from `input` to `output`. */
    BiasedReadoutSpec biasedReadout(const Field& f, const Irreps& input, const std::string& output) {
        BiasedReadoutSpec r;
        r.linear1 = linear(f.at("linear_1"), 0, true);
        r.linearMid = linear(f.at("linear_mid"), 0, true);
        r.linear2 = linear(f.at("linear_2"), 0, true);
        r.gated = f.has("gate");
        Irreps hidden;
        if (r.gated) {
            r.gate = gate(f.at("gate"));
            if (r.linear1.out.str() != r.gate.in.str() || r.linearMid.out.str() != r.gate.in.str() || r.linearMid.in.str() != r.gate.out.str())
                f.at("gate").invalid("linear_1 and linear_mid must feed the gate, and linear_mid read its output");
            hidden = r.gate.out;
        } else {
            r.activation = activation(f.at("activation"));
            for (const auto& e : r.linear1.out.entries)
                if (e.ir.l != 0)
                    f.at("linear_1").invalid("without a gate the hidden features must be scalars");
            if (r.linearMid.in.str() != r.linear1.out.str() || r.linearMid.out.str() != r.linear1.out.str())
                f.at("linear_mid").invalid("must map linear_1's outputs to themselves");
            hidden = r.linear1.out;
        }
        if (r.linear1.in.str() != input.str())
            f.at("linear_1").invalid("irreps_in must be " + input.str());
        if (r.linear2.in.str() != hidden.str())
            f.at("linear_2").invalid("irreps_in must be the hidden features " + hidden.str());
        if (r.linear2.out.str() != output)
            f.at("linear_2").invalid("irreps_out must be " + output);
        return r;
    }

    /** A radial MLP from `inputs` to `outputs` values: e3nn's (weights, weight_scales) or MACE's RadialMLP (also biases
     *  and layer_norms, format version 4). */
    RadialMLPSpec radialMLP(const Field& rf, int inputs, int outputs, const std::string& what) {
        RadialMLPSpec mlp;
        for (size_t i = 0; i < rf.at("sizes").size(); i++) {
            mlp.sizes.push_back(rf.at("sizes").at(i).integer());
            if (mlp.sizes.back() < 1)
                rf.at("sizes").at(i).invalid("must be positive");
        }
        if (mlp.sizes.size() < 2 || mlp.sizes.front() != inputs || mlp.sizes.back() != outputs)
            rf.at("sizes").invalid("must run from its inputs (" + std::to_string(inputs) + ") to " + what + " (" + std::to_string(outputs) + ")");
        const size_t layers = mlp.sizes.size() - 1;
        if (rf.at("weights").size() != layers || rf.at("weight_scales").size() != layers)
            rf.invalid("needs one weight tensor and one weight scale per layer");
        for (size_t k = 0; k < layers; k++) {
            mlp.weights.push_back(tensor(rf.at("weights").at(k), {mlp.sizes[k], mlp.sizes[k + 1]}));
            mlp.weightScales.push_back(rf.at("weight_scales").at(k).number());
        }
        if (rf.has("biases")) {
            if (rf.at("biases").size() != layers)
                rf.at("biases").invalid("needs one bias tensor per layer");
            for (size_t k = 0; k < layers; k++)
                mlp.biases.push_back(tensor(rf.at("biases").at(k), {mlp.sizes[k + 1]}));
        }
        if (rf.has("layer_norms")) {
            if (rf.at("layer_norms").size() != layers - 1)
                rf.at("layer_norms").invalid("needs one layer norm per hidden layer");
            for (size_t k = 0; k + 1 < layers; k++) {
                Field nf = rf.at("layer_norms").at(k);
                RadialMLPSpec::LayerNorm norm;
                norm.weight = tensor(nf.at("weight"), {mlp.sizes[k + 1]});
                norm.bias = tensor(nf.at("bias"), {mlp.sizes[k + 1]});
                norm.eps = nf.at("eps").number();
                if (!(norm.eps > 0))
                    nf.at("eps").invalid("must be positive");
                mlp.layerNorms.push_back(std::move(norm));
            }
        }
        mlp.activation = activation(rf.at("activation"));
        return mlp;
    }

    /** A gate (GateSpec) from `in` to `out`; every index is checked against the two layouts. */
    GateSpec gate(const Field& gf) {
        GateSpec g;
        g.in = Irreps::parse(gf.at("irreps_in").string(), gf.path + ".irreps_in");
        g.out = Irreps::parse(gf.at("irreps_out").string(), gf.path + ".irreps_out");
        auto range = [&](const Field& f, int& start, int& count) {
            if (f.size() != 2)
                f.invalid("is [start, count]");
            start = f.at(0).integer();
            count = f.at(1).integer();
            if (start < 0 || count < 0 || start + count > g.in.dim)
                f.invalid("lies outside irreps_in");
        };
        range(gf.at("scalars"), g.scalarStart, g.scalarCount);
        range(gf.at("gates"), g.gateStart, g.gateCount);
        g.scalarActivation = activation(gf.at("scalar_activation"));
        g.gateActivation = activation(gf.at("gate_activation"));
        // The output: the scalars, then each gated entry, in order; it must be irreps_out's layout.
        std::vector<Irrep> produced(g.scalarCount, Irrep{0, 1});
        const std::vector<Irrep> inComponents = g.in.componentIrreps();
        for (int i = 0; i < g.scalarCount; i++)
            if (inComponents[g.scalarStart + i].l != 0)
                gf.at("scalars").invalid("must be scalars");
        for (int i = 0; i < g.gateCount; i++)
            if (inComponents[g.gateStart + i].l != 0)
                gf.at("gates").invalid("must be scalars");
        Field gated = gf.at("gated");
        for (size_t k = 0; k < gated.size(); k++) {
            Field e = gated.at(k);
            if (e.size() != 4)
                e.invalid("is [start, mul, dim, gate_offset]");
            GateSpec::Gated entry{e.at(0).integer(), e.at(1).integer(), e.at(2).integer(), e.at(3).integer()};
            if (entry.start < 0 || entry.mul < 1 || entry.dim < 1 || entry.start + entry.mul * entry.dim > g.in.dim || entry.gateOffset < 0 ||
                entry.gateOffset + entry.mul > g.gateCount)
                e.invalid("lies outside irreps_in or the gates");
            for (int i = 0; i < entry.mul * entry.dim; i++) {
                const Irrep ir = inComponents[entry.start + i];
                if (ir.dim() != entry.dim)
                    e.invalid("does not cover entries of dimension " + std::to_string(entry.dim));
                produced.push_back(ir);
            }
            g.gated.push_back(entry);
        }
        const std::vector<Irrep> outComponents = g.out.componentIrreps();
        if (produced.size() != outComponents.size() || !std::equal(produced.begin(), produced.end(), outComponents.begin()))
            gf.at("irreps_out").invalid("is not the layout of the gated scalars followed by the gated entries");
        return g;
    }

    ReadoutSpec readout(const Field& f, const Irreps& input) {
        ReadoutSpec r;
        std::string type = f.at("type").string();
        if (type == "linear") {
            r.linear1 = linear(f.at("linear"), 0);
        } else if (type == "nonlinear") {
            r.nonlinear = true;
            r.linear1 = linear(f.at("linear_1"), 0);
            r.activation = activation(f.at("activation"));
            r.linear2 = linear(f.at("linear_2"), 0);
            for (const auto& e : r.linear1.out.entries)
                if (e.ir.l != 0)
                    f.at("linear_1").invalid("the hidden features of a nonlinear readout must be scalars");
            if (r.linear2.in.str() != r.linear1.out.str())
                f.at("linear_2").invalid("irreps_in must equal linear_1.irreps_out");
        } else {
            f.at("type").invalid("must be 'linear' or 'nonlinear'");
        }
        if (r.linear1.in.str() != input.str())
            f.invalid("the readout input irreps " + r.linear1.in.str() + " differ from the features " + input.str());
        const LinearSpec& last = r.nonlinear ? r.linear2 : r.linear1;
        if (last.out.str() != "1x0e")
            f.invalid("a readout must produce 1x0e");
        return r;
    }

    const SafeTensorsFile& file;
};

double energyUnitInKJPerMol(const Field& f) {
    std::string u = f.string();
    if (u == "eV") return 96.4853321233100184;
    if (u == "kJ/mol") return 1.0;
    if (u == "kcal/mol") return 4.184;
    if (u == "Hartree") return 2625.4996394798254;
    f.invalid("unknown energy unit '" + u + "' (eV, kJ/mol, kcal/mol or Hartree)");
}

double lengthUnitInNm(const Field& f) {
    std::string u = f.string();
    if (u == "Angstrom") return 0.1;
    if (u == "nm") return 1.0;
    if (u == "Bohr") return 0.0529177210903;
    f.invalid("unknown length unit '" + u + "' (Angstrom, nm or Bohr)");
}

} // namespace

Irreps Irreps::parse(const std::string& text, const std::string& field) {
    Irreps irreps;
    auto bad = [&](const std::string& why) -> void { fail("field '" + field + "': irreps '" + text + "': " + why); };
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, '+')) {
        size_t x = item.find('x');
        if (x == std::string::npos || x == 0 || item.size() != x + 3)
            bad("each term must look like 16x1o");
        int mul = 0;
        for (size_t i = 0; i < x; i++) {
            if (!std::isdigit(static_cast<unsigned char>(item[i])) || mul > 100000)
                bad("bad multiplicity in '" + item + "'");
            mul = 10 * mul + (item[i] - '0');
        }
        char lc = item[x + 1], pc = item[x + 2];
        if (!std::isdigit(static_cast<unsigned char>(lc)) || (pc != 'e' && pc != 'o'))
            bad("bad irrep in '" + item + "'");
        Entry e{mul, Irrep{lc - '0', pc == 'e' ? 1 : -1}, irreps.dim};
        if (e.ir.l > 4)
            bad("degrees above 4 are not supported");
        irreps.entries.push_back(e);
        irreps.dim += e.dim();
    }
    if (irreps.entries.empty())
        bad("empty");
    return irreps;
}

std::string Irreps::str() const {
    std::string s;
    for (const auto& e : entries)
        s += (s.empty() ? "" : "+") + std::to_string(e.mul) + "x" + std::to_string(e.ir.l) + (e.ir.p > 0 ? "e" : "o");
    return s;
}

std::vector<Irrep> Irreps::componentIrreps() const {
    std::vector<Irrep> c;
    for (const auto& e : entries)
        for (int i = 0; i < e.dim(); i++)
            c.push_back(e.ir);
    return c;
}

double ENNModel::coulombConstantRatio() const {
    return chargeCoulombIncluded ? chargeCoulombConstant * energyToKJPerMol * lengthToNm / ONE_4PI_EPS0 : 1.0;
}

int ENNModel::elementIndex(int atomicNumber) const {
    for (size_t i = 0; i < elements.size(); i++)
        if (elements[i] == atomicNumber)
            return static_cast<int>(i);
    return -1;
}

const std::vector<double>& ENNModel::w3j(int l1, int l2, int l3) const {
    auto it = wigner3j.find({l1, l2, l3});
    if (it == wigner3j.end())
        throw OpenMMException("ENN model: Wigner 3j block (" + std::to_string(l1) + "," + std::to_string(l2) + "," +
                              std::to_string(l3) + ") was not loaded");
    return it->second;
}

std::string ENNModel::readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw OpenMMException("ENN model file: cannot open '" + path + "'");
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

std::shared_ptr<const ENNModel> ENNModel::fromBytes(const std::string& bytes) {
    SafeTensorsFile file = SafeTensorsFile::parse(bytes);
    auto meta = file.metadata.find("openmm_enn");
    if (meta == file.metadata.end())
        fail("__metadata__ has no 'openmm_enn' entry: this is not an openmm-enn model (wrong magic)");
    json archJson;
    try {
        archJson = json::parse(meta->second);
    } catch (const json::exception& e) {
        fail(std::string("__metadata__.openmm_enn is not valid JSON (") + e.what() + ")");
    }
    Field arch(archJson, "");
    Parser parser(file);
    auto model = std::make_shared<ENNModel>();
    ENNModel& m = *model;

    if (arch.at("format").string() != "openmm-enn")
        arch.at("format").invalid("must be 'openmm-enn' (wrong magic)");
    m.formatVersion = arch.at("format_version").integer();
    if (m.formatVersion < 1 || m.formatVersion > FormatVersion)
        arch.at("format_version").invalid("version " + std::to_string(m.formatVersion) + " is not supported (this build reads versions 1 to " +
                                          std::to_string(FormatVersion) + ")");
    m.energyUnit = arch.at("units").at("energy").string();
    m.lengthUnit = arch.at("units").at("length").string();
    m.energyToKJPerMol = energyUnitInKJPerMol(arch.at("units").at("energy"));
    m.lengthToNm = lengthUnitInNm(arch.at("units").at("length"));

    Field elements = arch.at("elements");
    for (size_t i = 0; i < elements.size(); i++) {
        int z = elements.at(i).integer();
        if (z < 1 || z > 118)
            elements.at(i).invalid("not an atomic number");
        if (m.elementIndex(z) >= 0)
            elements.at(i).invalid("element listed twice");
        m.elements.push_back(z);
    }
    if (m.elements.empty())
        elements.invalid("no elements");
    const int nel = m.numElements();

    std::string symmetry = arch.at("symmetry").string();
    if (symmetry != "O3" && symmetry != "SO3")
        arch.at("symmetry").invalid("must be 'O3' or 'SO3'");
    m.o3 = symmetry == "O3";

    m.rMax = arch.at("r_max").number();
    if (!(m.rMax > 0))
        arch.at("r_max").invalid("must be positive");

    Field radial = arch.at("radial_basis");
    if (radial.at("type").string() != "bessel")
        radial.at("type").invalid("only 'bessel' is supported");
    int numBessel = radial.at("num_basis").integer();
    if (numBessel < 1)
        radial.at("num_basis").invalid("must be positive");
    m.besselFrequencies = parser.tensor(radial.at("frequencies"), {numBessel});
    m.besselPrefactor = radial.at("prefactor").number();
    if (radial.at("envelope").string() != "polynomial")
        radial.at("envelope").invalid("only 'polynomial' is supported");
    m.envelopeP = radial.at("envelope_p").integer();
    if (m.envelopeP < 3)
        radial.at("envelope_p").invalid("p must be at least 3 for a smooth (C2) cutoff");
    // Format version 3: MACE's materials blocks (distance transform, pair repulsion, density normalisation); 4: the
    // non-linear block, apply_cutoff and the joint embedding. A file that uses them says so, so that older readers
    // refuse it instead of misreading it.
    auto requireVersion = [&](const Field& f, int version) {
        if (m.formatVersion < version)
            f.invalid("needs format_version " + std::to_string(version) + " (this file says " + std::to_string(m.formatVersion) + ")");
    };
    if (radial.has("apply_cutoff")) {
        requireVersion(radial.at("apply_cutoff"), 4);
        m.applyCutoff = radial.at("apply_cutoff").boolean();
    }
    auto covalentRadii = [&](const Field& f) {
        std::vector<double> radii;
        if (f.size() != (size_t) nel)
            f.invalid("needs one covalent radius per element");
        for (int i = 0; i < nel; i++) {
            radii.push_back(f.at(i).number());
            if (!(radii.back() > 0))
                f.at(i).invalid("must be positive");
        }
        return radii;
    };
    if (radial.has("distance_transform")) {
        Field dt = radial.at("distance_transform");
        requireVersion(dt, 3);
        const std::string type = dt.at("type").string();
        if (type == "agnesi") {
            m.distanceTransform.kind = DistanceTransformSpec::Agnesi;
            m.distanceTransform.a = dt.at("a").number();
            m.distanceTransform.q = dt.at("q").number();
            m.distanceTransform.p = dt.at("p").number();
            if (!(m.distanceTransform.a > 0) || !(m.distanceTransform.q > 0) || !(m.distanceTransform.p > m.distanceTransform.q))
                dt.invalid("needs a > 0 and p > q > 0 (a smooth, monotonic transform)");
        } else if (type == "soft") {
            m.distanceTransform.kind = DistanceTransformSpec::Soft;
            m.distanceTransform.alpha = dt.at("alpha").number();
            if (!(m.distanceTransform.alpha > 0))
                dt.at("alpha").invalid("must be positive");
        } else
            dt.at("type").invalid("only 'agnesi' and 'soft' are supported");
        m.distanceTransform.covalentRadii = covalentRadii(dt.at("covalent_radii"));
    }
    if (arch.has("pair_repulsion")) {
        Field zbl = arch.at("pair_repulsion");
        requireVersion(zbl, 3);
        if (zbl.at("type").string() != "zbl")
            zbl.at("type").invalid("only 'zbl' is supported");
        PairRepulsionSpec& pr = m.pairRepulsion;
        auto fourNumbers = [](const Field& list) {
            if (list.size() != 4)
                list.invalid("needs 4 numbers");
            std::vector<double> values;
            for (int k = 0; k < 4; k++)
                values.push_back(list.at(k).number());
            return values;
        };
        pr.c = fourNumbers(zbl.at("c"));
        pr.exponents = fourNumbers(zbl.at("exponents"));
        pr.aPrefactor = zbl.at("a_prefactor").number();
        pr.aExponent = zbl.at("a_exponent").number();
        pr.bohr = zbl.at("bohr").number();
        pr.coulomb = zbl.at("coulomb").number();
        pr.envelopeP = zbl.at("envelope_p").integer();
        if (pr.envelopeP < 3)
            zbl.at("envelope_p").invalid("p must be at least 3 for a smooth (C2) cutoff");
        if (!(pr.aPrefactor > 0) || !(pr.bohr > 0))
            zbl.invalid("needs positive a_prefactor and bohr");
        pr.covalentRadii = covalentRadii(zbl.at("covalent_radii"));
        m.hasPairRepulsion = true;
    }

    Field sh = arch.at("spherical_harmonics");
    m.shLmax = sh.at("lmax").integer();
    if (m.shLmax < 0 || m.shLmax > 4)
        sh.at("lmax").invalid("must be between 0 and 4");
    if (sh.at("normalization").string() != "component")
        sh.at("normalization").invalid("only 'component' normalization is supported");
    if (sh.has("input")) {
        requireVersion(sh.at("input"), 6);
        const std::string input = sh.at("input").string();
        if (input != "xyz" && input != "yzx")
            sh.at("input").invalid("must be 'xyz' or 'yzx'");
        m.harmonicsOfYZX = input == "yzx";
    }
    auto loadW3j = [&](int l1, int l2, int l3) {
        if (m.wigner3j.count({l1, l2, l3}))
            return;
        std::string name = "w3j." + std::to_string(l1) + "." + std::to_string(l2) + "." + std::to_string(l3);
        m.wigner3j[{l1, l2, l3}] = parser.namedTensor(name, {2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1});
    };
    for (int l = 2; l <= m.shLmax; l++)
        loadW3j(1, l - 1, l);

    m.embedding = parser.linear(arch.at("embedding"), nel);
    if (m.embedding.in.str() != std::to_string(nel) + "x0e")
        arch.at("embedding").at("irreps_in").invalid("must be " + std::to_string(nel) + "x0e (one-hot of the elements)");

    if (arch.has("joint_embedding")) {
        Field jf = arch.at("joint_embedding");
        requireVersion(jf, 4);
        JointEmbeddingSpec& je = m.jointEmbedding;
        Field inputs = jf.at("inputs");
        int total = 0;
        for (size_t k = 0; k < inputs.size(); k++) {
            Field inf = inputs.at(k);
            JointEmbeddingSpec::Input in;
            const std::string source = inf.at("source").string();
            if (source == "total_charge")
                in.source = JointEmbeddingSpec::Input::TotalCharge;
            else if (source == "spin_multiplicity")
                in.source = JointEmbeddingSpec::Input::SpinMultiplicity;
            else
                inf.at("source").invalid("must be 'total_charge' or 'spin_multiplicity'");
            for (const auto& other : je.inputs)
                if (other.source == in.source)
                    inf.at("source").invalid("names an input twice");
            in.numClasses = inf.at("num_classes").integer();
            in.offset = inf.at("offset").integer();
            in.dim = inf.at("dim").integer();
            if (in.numClasses < 1 || in.dim < 1)
                inf.invalid("needs positive num_classes and dim");
            in.table = parser.tensor(inf.at("table"), {in.numClasses, in.dim});
            total += in.dim;
            je.inputs.push_back(std::move(in));
        }
        if (je.inputs.empty())
            inputs.invalid("needs at least one input");
        je.projection = parser.tensor(jf.at("projection"), {total, m.embedding.out.dim});
        for (const auto& e : m.embedding.out.entries)
            if (e.ir.l != 0)
                arch.at("embedding").at("irreps_out").invalid("must be scalars for a joint embedding");
        if (jf.has("readout")) {
            je.hasReadout = true;
            je.readout = parser.linear(jf.at("readout"), 0);
            if (je.readout.in.str() != m.embedding.out.str() || je.readout.out.str() != "1x0e")
                jf.at("readout").invalid("must map the embedding's features to 1x0e");
        }
        m.hasJointEmbedding = true;
    }

    Field layers = arch.at("layers");
    if (layers.size() < 1)
        layers.invalid("at least one interaction layer is needed");
    const Irreps* previous = &m.embedding.out;
    for (size_t t = 0; t < layers.size(); t++) {
        Field lf = layers.at(t);
        LayerSpec layer;
        std::string kind = lf.at("interaction").string();
        if (kind != "residual" && kind != "non_residual" && kind != "nonlinear")
            lf.at("interaction").invalid("must be 'residual', 'non_residual' or 'nonlinear'");
        if (kind == "nonlinear")
            requireVersion(lf.at("interaction"), 4);
        layer.residual = kind != "non_residual";
        layer.nonlinear = kind == "nonlinear";
        layer.avgNumNeighbors = lf.at("avg_num_neighbors").number();
        if (!(layer.avgNumNeighbors > 0))
            lf.at("avg_num_neighbors").invalid("must be positive");
        // The radial networks' inputs: the basis, then (non-linear block) the sender's and the receiver's embeddings.
        int radialInputs = numBessel;
        if (layer.nonlinear) {
            Field ef = lf.at("edge_embeddings");
            NonLinearBlockSpec& nl = layer.nonlinearBlock;
            nl.sourceEmbedding = parser.linear(ef.at("source"), 0);
            nl.targetEmbedding = parser.linear(ef.at("target"), 0);
            for (const LinearSpec* e : {&nl.sourceEmbedding, &nl.targetEmbedding}) {
                if (e->in.str() != std::to_string(nel) + "x0e")
                    ef.invalid("the embeddings read the one-hot elements (" + std::to_string(nel) + "x0e)");
                for (const auto& entry : e->out.entries)
                    if (entry.ir.l != 0)
                        ef.invalid("the embeddings must be scalars");
            }
            radialInputs += nl.sourceEmbedding.out.dim + nl.targetEmbedding.out.dim;
            if (!lf.has("density_normalization"))
                lf.invalid("a non-linear layer needs density_normalization (the block normalises its messages by a density)");
        }
        if (lf.has("density_normalization")) {
            Field df = lf.at("density_normalization");
            requireVersion(df, 3);
            layer.densityNormalized = true;
            if (df.has("mlp")) { // format version 4: a radial MLP, alpha and beta
                requireVersion(df.at("mlp"), 4);
                layer.density.mlp = parser.radialMLP(df.at("mlp"), radialInputs, 1, "1");
                layer.density.alpha = df.at("alpha").number();
                layer.density.beta = df.at("beta").number();
            } else { // version 3: one linear of the basis, alpha = beta = 1
                if (radialInputs != numBessel)
                    df.invalid("needs an mlp when the radial networks read edge embeddings");
                RadialMLPSpec& mlp = layer.density.mlp;
                mlp.sizes = {numBessel, 1};
                mlp.weights = {parser.tensor(df.at("weights"), {numBessel})};
                mlp.weightScales = {df.at("weight_scale").number()};
            }
        }

        layer.linearUp = parser.linear(lf.at("linear_up"), 0);
        if (layer.linearUp.in.str() != previous->str())
            lf.at("linear_up").invalid("irreps_in " + layer.linearUp.in.str() + " differ from the previous features " + previous->str());

        // Edge tensor product.
        Field tf = lf.at("conv_tp");
        TensorProductSpec& tp = layer.conv;
        tp.in1 = Irreps::parse(tf.at("irreps_in1").string(), tf.path + ".irreps_in1");
        tp.in2 = Irreps::parse(tf.at("irreps_in2").string(), tf.path + ".irreps_in2");
        tp.out = Irreps::parse(tf.at("irreps_out").string(), tf.path + ".irreps_out");
        if (tp.in1.str() != layer.linearUp.out.str())
            tf.at("irreps_in1").invalid("must equal linear_up.irreps_out");
        if ((int) tp.in2.entries.size() != m.shLmax + 1)
            tf.at("irreps_in2").invalid("must be the spherical harmonics 1x0e+1x1o+... up to lmax");
        for (int l = 0; l <= m.shLmax; l++) {
            const auto& e = tp.in2.entries[l];
            if (e.mul != 1 || e.ir.l != l || e.ir.p != (l % 2 ? -1 : 1))
                tf.at("irreps_in2").invalid("must be the spherical harmonics 1x0e+1x1o+... up to lmax");
        }
        if (tf.has("w3j")) { // {"l1.l2.l3": tensor name}: this layer's own blocks
            Field blocks = tf.at("w3j");
            requireVersion(blocks, 3);
            if (!blocks.value.is_object())
                blocks.invalid("must map 'l1.l2.l3' to tensor names");
            for (const auto& item : blocks.value.items()) {
                int l1, l2, l3;
                char rest;
                if (std::sscanf(item.key().c_str(), "%d.%d.%d%c", &l1, &l2, &l3, &rest) != 3 || l1 < 0 || l2 < 0 || l3 < 0 || l1 > 4 ||
                    l2 > 4 || l3 > 8)
                    blocks.invalid("key '" + item.key() + "' is not 'l1.l2.l3'");
                tp.w3j[{l1, l2, l3}] = parser.tensor(blocks.at(item.key()), {2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1});
            }
        }
        Field paths = tf.at("paths");
        for (size_t i = 0; i < paths.size(); i++) {
            Field p = paths.at(i);
            if (p.size() != 4)
                p.invalid("a path is [i_in1, i_in2, i_out, path_weight]");
            TensorProductSpec::Path path{p.at(0).integer(), p.at(1).integer(), p.at(2).integer(), p.at(3).number(), tp.numWeights};
            if (path.in1 < 0 || path.in1 >= (int) tp.in1.entries.size() || path.in2 < 0 || path.in2 >= (int) tp.in2.entries.size() ||
                path.out < 0 || path.out >= (int) tp.out.entries.size())
                p.invalid("irreps index out of range");
            const auto &a = tp.in1.entries[path.in1], &b = tp.in2.entries[path.in2], &c = tp.out.entries[path.out];
            if (c.mul != a.mul)
                p.invalid("a channel-wise path keeps the multiplicity of irreps_in1");
            if (c.ir.l < std::abs(a.ir.l - b.ir.l) || c.ir.l > a.ir.l + b.ir.l)
                p.invalid("the degrees violate the triangle rule");
            if (m.o3 && c.ir.p != a.ir.p * b.ir.p)
                p.invalid("the parities violate O(3) selection rules (use symmetry 'SO3' for such models)");
            loadW3j(a.ir.l, b.ir.l, c.ir.l);
            tp.numWeights += a.mul;
            tp.paths.push_back(path);
        }

        Field rf = lf.at("radial_mlp");
        if ((rf.has("biases") || rf.has("layer_norms")) && !layer.nonlinear)
            rf.invalid("biases and layer norms belong to the non-linear block's radial MLP");
        layer.radial = parser.radialMLP(rf, radialInputs, tp.numWeights, "the number of tensor-product weights");

        layer.linear = parser.linear(lf.at("linear"), 0);
        {
            auto a = tp.out.componentIrreps(), b = layer.linear.in.componentIrreps();
            if (a.size() != b.size() || !std::equal(a.begin(), a.end(), b.begin()))
                lf.at("linear").at("irreps_in").invalid("must have the same layout as conv_tp.irreps_out " + tp.out.str());
        }
        if (layer.nonlinear) {
            NonLinearBlockSpec& nl = layer.nonlinearBlock;
            nl.linearResidual = parser.linear(lf.at("linear_residual"), 0);
            nl.gate = parser.gate(lf.at("gate"));
            nl.linear2 = parser.linear(lf.at("linear_2"), 0);
            if (nl.linearResidual.in.str() != layer.linearUp.out.str() || nl.linearResidual.out.str() != layer.linear.out.str())
                lf.at("linear_residual").invalid("must map linear_up's output to linear's");
            if (nl.gate.in.str() != layer.linear.out.str())
                lf.at("gate").at("irreps_in").invalid("must be linear.irreps_out " + layer.linear.out.str());
            if (nl.linear2.in.str() != nl.gate.out.str())
                lf.at("linear_2").at("irreps_in").invalid("must be gate.irreps_out " + nl.gate.out.str());
        }
        const Irreps& message = layer.irrepsMessage();
        layer.channels = message.entries[0].mul;
        for (const auto& e : message.entries) {
            if (e.mul != layer.channels)
                lf.at(layer.nonlinear ? "linear_2" : "linear").at("irreps_out").invalid("every message irrep needs the same multiplicity");
            layer.featuresPerChannel += e.ir.dim();
        }

        Field pf = lf.at("product");
        layer.productLinear = parser.linear(pf.at("linear"), 0);
        layer.skip = parser.linear(lf.at("skip"), nel);
        if (!layer.skip.perElement && !layer.nonlinear) // (the non-linear block's is MACE's plain Linear)
            lf.at("skip").at("per_element").invalid("the skip connection is element-dependent (per_element: true)");
        if (layer.residual) {
            if (layer.skip.in.str() != previous->str() || layer.skip.out.str() != layer.productLinear.out.str())
                lf.at("skip").invalid("a residual skip maps the layer input to the layer output");
        } else if (layer.skip.in.str() != message.str() || layer.skip.out.str() != message.str()) {
            lf.at("skip").invalid("a non-residual skip maps the message to itself");
        }

        Field cf = pf.at("contractions");
        Irreps contractionOut;
        const int D = layer.featuresPerChannel;
        for (size_t k = 0; k < cf.size(); k++) {
            Field c = cf.at(k);
            ContractionSpec con;
            Irreps single = Irreps::parse("1x" + c.at("irrep_out").string(), c.path + ".irrep_out");
            con.out = single.entries[0].ir;
            con.correlation = c.at("correlation").integer();
            if (con.correlation < 1 || con.correlation > 3)
                c.at("correlation").invalid("must be 1, 2 or 3");
            if (c.at("U").size() != (size_t) con.correlation || c.at("weights").size() != (size_t) con.correlation)
                c.invalid("needs one U tensor and one weight tensor per correlation order");
            for (int nu = 1; nu <= con.correlation; nu++) {
                std::string uname = c.at("U").at(nu - 1).string();
                auto it = file.tensors.find(uname);
                if (it == file.tensors.end() || it->second.shape.size() != size_t(nu + 2))
                    c.at("U").at(nu - 1).invalid("names a missing tensor or one without shape [2L+1, D x nu, K]");
                int64_t K = it->second.shape.back();
                std::vector<int64_t> shape{con.out.dim()};
                for (int i = 0; i < nu; i++)
                    shape.push_back(D);
                shape.push_back(K);
                con.U.push_back(parser.tensor(c.at("U").at(nu - 1), shape));
                con.numBasis.push_back(static_cast<int>(K));
                con.weights.push_back(parser.tensor(c.at("weights").at(nu - 1), {nel, K, layer.channels}));
            }
            contractionOut.entries.push_back({layer.channels, con.out, contractionOut.dim});
            contractionOut.dim += layer.channels * con.out.dim();
            layer.contractions.push_back(std::move(con));
        }
        if (layer.contractions.empty())
            cf.invalid("at least one contraction is needed");
        if (layer.productLinear.in.str() != contractionOut.str())
            pf.at("linear").at("irreps_in").invalid("must be the contraction outputs " + contractionOut.str());
        layer.readout = parser.readout(lf.at("readout"), layer.productLinear.out);
        m.layers.push_back(std::move(layer));
        previous = &m.layers.back().productLinear.out;
    }

    Field energy = arch.at("energy");
    Field e0 = energy.at("e0");
    if (e0.size() != (size_t) nel)
        e0.invalid("needs one reference energy per element");
    for (int i = 0; i < nel; i++)
        m.e0.push_back(e0.at(i).number());
    m.energyScale = energy.at("scale").number();
    m.energyShift = energy.at("shift").number();

    if (arch.has("charge_head")) {
        m.hasChargeHead = true;
        Field head = arch.at("charge_head");
        // MACELES's LES readouts (version 5): one per layer, summed; otherwise one readout of the last layer.
        if (head.has("readouts")) {
            requireVersion(head.at("readouts"), 5);
            if (head.has("readout"))
                head.invalid("has both 'readout' and 'readouts'");
            Field readouts = head.at("readouts");
            if (readouts.size() != m.layers.size() || m.layers.empty())
                readouts.invalid("needs one readout per layer (" + std::to_string(m.layers.size()) + ")");
            for (size_t t = 0; t < m.layers.size(); t++)
                m.chargeReadouts.push_back({static_cast<int>(t), parser.readout(readouts.at(t), m.layers[t].productLinear.out)});
        } else
            m.chargeReadouts.push_back({static_cast<int>(m.layers.size()) - 1, parser.readout(head.at("readout"), *previous)});
        if (head.has("total_charge")) {
            requireVersion(head.at("total_charge"), 5);
            const std::string mode = head.at("total_charge").string();
            if (mode != "constrained" && mode != "unconstrained")
                head.at("total_charge").invalid("must be 'constrained' or 'unconstrained'");
            m.chargesConstrained = mode == "constrained";
        }
        m.chargeElementOffsets.assign(nel, 0.0);
        if (head.has("element_offsets")) {
            Field offsets = head.at("element_offsets");
            if (offsets.size() != (size_t) nel)
                offsets.invalid("needs one charge offset per element");
            for (int i = 0; i < nel; i++)
                m.chargeElementOffsets[i] = offsets.at(i).number();
        }
        if (m.formatVersion == 1) {
            // Version 1 had no declaration: its models were trained on energies without a Coulomb term,
            // and its gaussian_sigma only shaped a coupling term that no longer exists.
            m.chargeCoulombIncluded = false;
        } else {
            if (head.has("gaussian_sigma"))
                head.at("gaussian_sigma").invalid("belongs in charge_head.coulomb since format version 2");
            Field coulomb = head.at("coulomb");
            m.chargeCoulombIncluded = coulomb.at("included").boolean();
            if (m.chargeCoulombIncluded) {
                const std::string damping = coulomb.at("damping").string();
                if (damping == "gaussian") {
                    m.chargeGaussianSigma = coulomb.at("gaussian_sigma").number();
                    if (!(m.chargeGaussianSigma > 0))
                        coulomb.at("gaussian_sigma").invalid("must be positive");
                    m.chargeGaussianSelfEnergy = coulomb.at("gaussian_self_energy").boolean();
                } else if (damping != "none")
                    coulomb.at("damping").invalid("must be 'none' or 'gaussian'");
                else if (coulomb.has("gaussian_sigma") || coulomb.has("gaussian_self_energy"))
                    coulomb.invalid("gaussian_sigma and gaussian_self_energy are only read with damping 'gaussian'");
            } else if (coulomb.has("damping") || coulomb.has("gaussian_sigma"))
                coulomb.invalid("declares damping for a Coulomb term it does not include");
            // The constant the model was trained with (version 5), in its own units; else 1/(4 pi eps0).
            m.chargeCoulombConstant = ONE_4PI_EPS0 / (m.energyToKJPerMol * m.lengthToNm);
            if (coulomb.has("constant")) {
                requireVersion(coulomb.at("constant"), 5);
                if (!m.chargeCoulombIncluded)
                    coulomb.at("constant").invalid("is only read for a Coulomb term the model includes");
                m.chargeCoulombConstant = coulomb.at("constant").number();
                if (!(m.chargeCoulombConstant > 0))
                    coulomb.at("constant").invalid("must be positive");
            }
            if (coulomb.has("periodic")) {
                Field periodic = coulomb.at("periodic");
                requireVersion(periodic, 5);
                if (m.chargeGaussianSigma <= 0)
                    periodic.invalid("needs a Coulomb term with damping 'gaussian'");
                if (periodic.at("method").string() != "truncated_reciprocal")
                    periodic.at("method").invalid("must be 'truncated_reciprocal'");
                m.truncatedReciprocalSpacing = periodic.at("dl").number();
                if (!(m.truncatedReciprocalSpacing > 0))
                    periodic.at("dl").invalid("must be positive");
            }
        }
    }
    if (arch.has("polar")) {
        Field pf = arch.at("polar");
        requireVersion(pf, 6);
        if (m.hasChargeHead)
            pf.invalid("a model has either a charge head or a polar head");
        if (m.layers.empty())
            pf.invalid("needs interaction layers");
        m.hasPolarHead = true;
        PolarSpec& P = m.polar;
        const Irreps& hidden = m.layers.back().productLinear.out;
        for (const LayerSpec& layer : m.layers)
            if (layer.productLinear.out.str() != hidden.str())
                pf.invalid("every layer's output must have the last layer's irreps " + hidden.str() + " (PolarMACE keeps them)");
        if (hidden.entries.empty() || hidden.entries[0].ir != Irrep{0, 1})
            pf.invalid("the features must start with scalars");
        const int channels = hidden.entries[0].mul;
        for (const auto& e : hidden.entries)
            if (e.mul != channels)
                pf.invalid("every irrep of the features needs the same multiplicity (a channel-wise product reads them)");
        Field mf = pf.at("multipoles");
        P.multipoleLmax = mf.at("lmax").integer();
        P.multipoleSigma = mf.at("sigma").number();
        if (P.multipoleLmax < 0 || P.multipoleLmax > 1)
            mf.at("lmax").invalid("must be 0 or 1 (graph-longrange's open-boundary sums)");
        if (!(P.multipoleSigma > 0))
            mf.at("sigma").invalid("must be positive");
        Field ff = pf.at("field_features");
        P.fieldLmax = ff.at("lmax").integer();
        if (P.fieldLmax < 0 || P.fieldLmax > 1)
            ff.at("lmax").invalid("must be 0 or 1 (graph-longrange's open-boundary sums)");
        for (size_t i = 0; i < ff.at("widths").size(); i++) {
            P.fieldWidths.push_back(ff.at("widths").at(i).number());
            if (!(P.fieldWidths.back() > 0))
                ff.at("widths").at(i).invalid("must be positive");
        }
        if (P.fieldWidths.empty())
            ff.at("widths").invalid("needs at least one width");
        const int numWidths = static_cast<int>(P.fieldWidths.size());
        if (ff.at("norms").size() != (size_t) P.fieldDim())
            ff.at("norms").invalid("needs one norm per feature entry (" + std::to_string(P.fieldDim()) + ")");
        for (int i = 0; i < P.fieldDim(); i++) {
            P.fieldNorms.push_back(ff.at("norms").at(i).number());
            if (P.fieldNorms.back() == 0)
                ff.at("norms").at(i).invalid("must not be zero");
        }
        // The irreps graph-longrange and PolarMACE use: spin channels alpha then beta of (0e [+ 1o]), features sorted by l.
        const std::string single = P.multipoleLmax == 0 ? "1x0e" : "1x0e+1x1o";
        const std::string charges = single + "+" + single;
        const std::string field = std::to_string(numWidths) + "x0e" + (P.fieldLmax == 1 ? "+" + std::to_string(numWidths) + "x1o" : "");
        const std::string potential = field + "+" + field;
        auto linears = [&](const Field& f, const std::string& out, std::vector<LinearSpec>& list) {
            if (f.size() != m.layers.size())
                f.invalid("needs one linear per layer (" + std::to_string(m.layers.size()) + ")");
            for (size_t t = 0; t < m.layers.size(); t++) {
                list.push_back(parser.linear(f.at(t), nel, true));
                if (list.back().in.str() != hidden.str() || list.back().out.str() != out || list.back().perElement)
                    f.at(t).invalid("must map the features " + hidden.str() + " to " + out);
            }
        };
        linears(pf.at("spin_sources"), charges, P.spinSources);
        linears(pf.at("feature_mixer"), hidden.str(), P.featureMixer);
        P.fukui = parser.biasedReadout(pf.at("fukui"), hidden, "2x0e");
        auto checkLinear = [&](const Field& f, const LinearSpec& lin, const std::string& in, const std::string& out) {
            if (lin.in.str() != in || lin.out.str() != out || lin.perElement)
                f.invalid("must map " + in + " to " + out);
        };
        const std::string scalars = std::to_string(channels) + "x0e";
        auto checkProduct = [&](const Field& f, const ChannelProductSpec& tp, const std::string& in2, const std::string& out) {
            if (tp.in1.str() != hidden.str() || tp.in2.str() != in2 || tp.out.str() != out)
                f.invalid("must map " + hidden.str() + " x " + in2 + " to " + out);
        };
        Field uf = pf.at("field_updates");
        for (size_t i = 0; i < uf.size(); i++) {
            Field f = uf.at(i);
            FieldUpdateSpec u;
            u.potentialLinear = parser.linear(f.at("potential_linear"), nel, true);
            checkLinear(f.at("potential_linear"), u.potentialLinear, potential, hidden.str());
            u.nodeFeatsLinear = parser.linear(f.at("node_feats_linear"), nel, true);
            checkLinear(f.at("node_feats_linear"), u.nodeFeatsLinear, hidden.str(), hidden.str());
            u.chargeEmbedding = parser.linear(f.at("charge_embedding"), nel, true);
            checkLinear(f.at("charge_embedding"), u.chargeEmbedding, charges, hidden.str());
            u.sourceEmbedding = parser.linear(f.at("source_embedding"), nel, true);
            checkLinear(f.at("source_embedding"), u.sourceEmbedding, std::to_string(nel) + "x0e", scalars);
            u.dotProducts = parser.channelProduct(f.at("dot_products"));
            checkProduct(f.at("dot_products"), u.dotProducts, hidden.str(), scalars);
            u.nonlinearity = parser.radialMLP(f.at("nonlinearity"), 2 * channels, channels, "the channels");
            u.tpOut = parser.channelProduct(f.at("tp_out"));
            checkProduct(f.at("tp_out"), u.tpOut, scalars, hidden.str());
            u.readout = parser.biasedReadout(f.at("readout"), hidden, charges + "+2x0e");
            if (!u.readout.gated)
                f.at("readout").invalid("needs a gate (GeneralNonLinearBiasReadoutBlock)");
            P.fieldUpdates.push_back(std::move(u));
        }
        if (P.fieldUpdates.empty())
            uf.invalid("needs at least one field-update step");
        if (pf.has("electron_energy")) {
            Field f = pf.at("electron_energy");
            P.hasElectronEnergy = true;
            ElectronEnergySpec& e = P.electronEnergy;
            e.linearUpQ = parser.linear(f.at("linear_up_q"), nel, true);
            checkLinear(f.at("linear_up_q"), e.linearUpQ, charges, hidden.str());
            e.linearUpV = parser.linear(f.at("linear_up_v"), nel, true);
            checkLinear(f.at("linear_up_v"), e.linearUpV, potential, hidden.str());
            e.dotQ = parser.channelProduct(f.at("dot_q"));
            checkProduct(f.at("dot_q"), e.dotQ, hidden.str(), scalars);
            e.dotV = parser.channelProduct(f.at("dot_v"));
            checkProduct(f.at("dot_v"), e.dotV, hidden.str(), scalars);
            e.mlp = parser.radialMLP(f.at("mlp"), 2 * channels, 1, "one energy");
        }
        Field ef = pf.at("electrostatics");
        P.fieldConstant = ef.at("field_constant").number();
        P.softening = ef.at("softening").number();
        P.featureOffset = ef.at("feature_offset").number();
        P.energyOffset = ef.at("energy_offset").number();
        if (!(P.fieldConstant > 0) || !(P.softening >= 0) || !(P.featureOffset > 0) || !(P.energyOffset > 0))
            ef.invalid("needs a positive field_constant, feature_offset and energy_offset, and a softening >= 0");
        auto perWidth = [&](const Field& f, std::vector<double>& out) {
            if (f.size() != (size_t) numWidths)
                f.invalid("needs one value per field width");
            for (int i = 0; i < numWidths; i++)
                out.push_back(f.at(i).number());
        };
        perWidth(ef.at("feature_width_factors"), P.featureWidthFactors);
        for (size_t i = 0; i < P.featureWidthFactors.size(); i++)
            if (!(P.featureWidthFactors[i] > 0))
                ef.at("feature_width_factors").at(i).invalid("must be positive");
        perWidth(ef.at("l0_factors"), P.l0Factors);
        perWidth(ef.at("l1_factors"), P.l1Factors);
        auto selfTerms = [&](const Field& f, int features, std::vector<PolarSpec::SelfTerm>& out) {
            for (size_t i = 0; i < f.size(); i++) {
                Field t = f.at(i);
                if (t.size() != 3)
                    t.invalid("is [feature, source, value]");
                PolarSpec::SelfTerm term{t.at(0).integer(), t.at(1).integer(), t.at(2).number()};
                if (term.feature < 0 || term.feature >= features || term.source < 0 || term.source >= P.multipoleDim())
                    t.invalid("index out of range");
                out.push_back(term);
            }
        };
        selfTerms(ef.at("feature_self_terms"), P.fieldDim(), P.featureSelfTerms);
        selfTerms(ef.at("energy_self_terms"), P.multipoleDim(), P.energySelfTerms);
        if (ef.has("external_field_projection")) { // (optional: files converted before it was read have none)
            Field f = ef.at("external_field_projection");
            if (f.size() != size_t(P.fieldDim()))
                f.invalid("needs one [potential, x, y, z] row per field feature entry");
            for (int i = 0; i < P.fieldDim(); i++) {
                Field row = f.at(i);
                if (row.size() != 4)
                    row.invalid("is [potential, x, y, z]");
                std::array<double, 4> values;
                for (int j = 0; j < 4; j++)
                    values[j] = row.at(j).number();
                P.externalFieldProjection.push_back(values);
            }
        }
        P.includeFeatureSelfInteraction = ef.at("include_feature_self_interaction").boolean();
        P.includeEnergySelfInteraction = ef.at("include_energy_self_interaction").boolean();
        Field rf = ef.at("reciprocal");
        P.kspaceCutoff = rf.at("kspace_cutoff").number();
        if (!(P.kspaceCutoff > 0))
            rf.at("kspace_cutoff").invalid("must be positive");
        auto basis = [&](const Field& f, int lmax, GaussianBasisSpec& b) {
            if (f.at("amplitudes").size() != size_t(lmax + 1))
                f.at("amplitudes").invalid("needs one amplitude per degree up to " + std::to_string(lmax));
            b.sigma2.push_back(f.at("sigma2").number());
            if (!(b.sigma2.back() > 0))
                f.at("sigma2").invalid("must be positive");
            b.amplitudes.emplace_back();
            for (int l = 0; l <= lmax; l++)
                b.amplitudes.back().push_back(f.at("amplitudes").at(l).number());
        };
        basis(rf.at("density"), P.multipoleLmax, P.densityBasis);
        if (rf.at("features").size() != (size_t) numWidths)
            rf.at("features").invalid("needs one basis per field width");
        for (int j = 0; j < numWidths; j++)
            basis(rf.at("features").at(j), P.fieldLmax, P.featureBasis);
    }
    return model;
}
