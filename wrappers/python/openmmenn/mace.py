"""Convert MACE models (ScaleShiftMACE / MACE, e3nn 0.4.x conventions) to openmm-enn model files.

Two inputs are supported:

* a description plus weights, as in tests/data/mace: ``hyperparameters.json`` (every
  constructor argument and each block's e3nn instructions) and ``state_dict.npz``;
* a live MACE ``torch.nn.Module`` (needs ``torch`` and ``mace``), from which the same
  description is extracted with :func:`describe_mace_model`.

Numbers that depend on e3nn's conventions (symmetric-contraction U tensors, activation
constants, path weights) are copied from the MACE model. Wigner 3j blocks are computed by
:mod:`openmmenn.o3`, which reproduces e3nn 0.4.4's tables, and are checked against any
blocks the state_dict carries.
"""
import json
import os
import re

import numpy as np

from . import modelfile, o3


def _linear(desc, weights, per_element_elements=None):
    """An e3nn Linear description -> our linear; checks the e3nn weight layout is the sequential one."""
    ins = o3.parse_irreps(desc["irreps_in"])
    outs = o3.parse_irreps(desc["irreps_out"])
    paths, offset = [], 0
    for ins_ in desc["instructions"]:
        mul_in, mul_out = ins_["path_shape"]
        if ins_["weight_offset"] != offset or mul_in != ins[ins_["i_in"]][0] or mul_out != outs[ins_["i_out"]][0]:
            raise ValueError(f"unexpected weight layout in {desc.get('weight_key')}")
        paths.append([ins_["i_in"], ins_["i_out"], float(ins_["path_weight"])])
        offset += mul_in * mul_out
    if weights.size != offset:
        raise ValueError(f"{desc.get('weight_key')} has {weights.size} weights, expected {offset}")
    return {"irreps_in": desc["irreps_in"], "irreps_out": desc["irreps_out"], "paths": paths}, weights.reshape(-1)


def _skip(desc, weights, num_elements):
    """e3nn FullyConnectedTensorProduct(x, one-hot) -> a per-element linear.

    W[u, z, w] sits at weight_offset + (u * n_el + z) * mul_out + w, and the one-hot (0e) path
    multiplies by w3j(l, 0, l) = identity / sqrt(2l + 1), folded into the path weight.
    """
    ins = o3.parse_irreps(desc["irreps_in1"])
    outs = o3.parse_irreps(desc["irreps_out"])
    paths, blocks, offset = [], [], 0
    for ins_ in desc["instructions"]:
        mul1, mul2, mul_out = ins_["path_shape"]
        if ins_["connection_mode"] != "uvw" or ins_["i_in2"] != 0 or mul2 != num_elements or ins_["weight_offset"] != offset:
            raise ValueError(f"unexpected skip tensor product {desc.get('weight_key')}")
        l = ins[ins_["i_in1"]][1]
        cg = o3.wigner_3j(l, 0, l)[:, 0, :]
        if not np.allclose(cg, np.eye(2 * l + 1) / np.sqrt(2 * l + 1), atol=1e-14):
            raise ValueError("w3j(l, 0, l) is not identity / sqrt(2l+1)")
        block = weights[offset:offset + mul1 * mul2 * mul_out].reshape(mul1, mul2, mul_out)
        blocks.append(np.transpose(block, (1, 0, 2)).reshape(num_elements, -1))  # [z][u*mul_out + w]
        paths.append([ins_["i_in1"], ins_["i_out"], float(ins_["path_weight"]) / np.sqrt(2 * l + 1)])
        offset += mul1 * mul2 * mul_out
    w = np.concatenate(blocks, axis=1) if blocks else np.zeros((num_elements, 0))
    return {"irreps_in": desc["irreps_in1"], "irreps_out": desc["irreps_out"], "paths": paths, "per_element": True}, w


def _activation(name, cst):
    if name not in ("silu", "tanh"):
        raise ValueError(f"activation {name!r} is not supported (silu, tanh)")
    return {"function": name, "scale": float(cst)}


# MACE constructor options (mace-torch 0.3.x) that change the model beyond what the converter reads from its
# modules: (key in the description, the value it must have, what a different value is). A description without
# the key (the fixtures', made with MACE 0.3.6) has the default.
_REFUSED_OPTIONS = (
    ("use_last_readout_only", False, "use_last_readout_only=True"),
    ("use_so3", False, "use_so3=True (SO(3) spherical harmonics, all even parity)"),
)

_NONLINEAR_BLOCK = "RealAgnosticResidualNonLinearInteractionBlock"
_INTERACTION_BLOCKS = ("RealAgnosticResidualInteractionBlock", "RealAgnosticInteractionBlock",
                       "RealAgnosticDensityResidualInteractionBlock", "RealAgnosticDensityInteractionBlock", _NONLINEAR_BLOCK)

# The activation functions MACE's modules hold, by name (filled with torch's when a live model is described).
_FUNCTION_NAMES = {}

# MACE's joint-embedding inputs (embedding_specs, per graph, categorical) and what they are in an ENNForce.
_EMBEDDING_INPUTS = {"total_charge": "total_charge", "total_spin": "spin_multiplicity"}
_RESIDUAL_BLOCKS = ("RealAgnosticResidualInteractionBlock", "RealAgnosticDensityResidualInteractionBlock")
_DENSITY_BLOCKS = ("RealAgnosticDensityInteractionBlock", "RealAgnosticDensityResidualInteractionBlock")

# The constants of MACE's ZBLBasis that are written in its source rather than stored in the model (mace-torch 0.3.16,
# mace/modules/radial.py): the Bohr radius and e^2/(4 pi eps0) in its units (Angstrom, eV Angstrom), and the
# exponents of the universal screening function. The coefficients c, a_exp, a_prefactor, p and the covalent radii
# are read from the model's buffers.
_ZBL_BOHR, _ZBL_COULOMB, _ZBL_EXPONENTS = 0.529, 14.3996, (3.2, 0.9423, 0.4028, 0.2016)


def _check_interaction_block(name):
    if name not in _INTERACTION_BLOCKS:
        raise ValueError(f"interaction block {name} is not supported ({', '.join(_INTERACTION_BLOCKS)})")


def select_head(hp, head=None):
    """The index of the head to keep: `head` by name; without one, the only head, or else the one named "default"
    (any case), as MACE's own calculator chooses. A wrong or missing name is a ValueError listing the heads."""
    heads = list(hp.get("heads") or ["Default"])
    if head is not None:
        if head not in heads:
            raise ValueError(f"MACE head {head!r} is not in this model; its heads are {', '.join(heads)}")
        return heads.index(head)
    if len(heads) == 1:
        return 0
    default = [k for k, name in enumerate(heads) if name.lower() == "default"]
    if not default:
        raise ValueError(f"this MACE model has several heads and none is named 'default': choose one with --head "
                         f"({', '.join(heads)})")
    return default[0]


def _head_channels(desc, weights, inputs, outputs):
    """A Linear between single scalar entries ("Ax0e -> Bx0e", weights [A][B]) cut to the given input and output
    channels. The path weight (e3nn's 1/sqrt(fan-in) of the whole layer) is kept as it is."""
    ins, outs = o3.parse_irreps(desc["irreps_in"]), o3.parse_irreps(desc["irreps_out"])
    if len(desc["instructions"]) != 1 or len(outs) != 1 or outs[0][1:] != (0, 1) or len(ins) < 1:
        raise ValueError(f"unexpected multi-head readout layout in {desc.get('weight_key')}")
    ins_ = desc["instructions"][0]
    entry_in = ins[ins_["i_in"]]
    cut = weights.reshape(entry_in[0], outs[0][0])[np.ix_(inputs, outputs)]
    kept_in = [(len(inputs) if k == ins_["i_in"] else mul, l, par) for k, (mul, l, par) in enumerate(ins)]
    out = dict(desc, irreps_in=o3.irreps_str(kept_in), irreps_out=f"{len(outputs)}x0e",
               instructions=[dict(ins_, path_shape=[len(inputs), len(outputs)], weight_offset=0)])
    return out, cut.reshape(-1)


def _radial_mlp(desc, prefix, sd, add):
    """MACE's RadialMLP (torch Linear with bias, LayerNorm, SiLU per hidden layer; a Linear last) as a radial MLP of the
    model file: weights transposed to [in][out], scale 1."""
    spec = {"sizes": [int(x) for x in desc["hs"]], "weights": [], "weight_scales": [], "biases": [], "layer_norms": [],
            "activation": {"function": "silu", "scale": 1.0}}
    for k, lay in enumerate(desc["layers"]):
        spec["weights"].append(add(f"{prefix}.{k}.weight", sd[lay["weight_key"]].T))
        spec["weight_scales"].append(1.0)
        spec["biases"].append(add(f"{prefix}.{k}.bias", sd[lay["bias_key"]]))
        if "norm" in lay:
            norm = lay["norm"]
            spec["layer_norms"].append({"weight": add(f"{prefix}.{k}.norm.weight", sd[norm["weight_key"]]),
                                        "bias": add(f"{prefix}.{k}.norm.bias", sd[norm["bias_key"]]), "eps": float(norm["eps"])})
    return spec


def _joint_embedding(hp, sd, add, readout_linear, h):
    """MACE's GenericJointEmbedding of the total charge and spin (and its embedding_readout) for the kept head."""
    inputs, total = [], 0
    for name, spec in hp["embedding_specs"].items():
        if name not in _EMBEDDING_INPUTS or spec.get("type") != "categorical" or spec.get("per") != "graph":
            raise ValueError(f"MACE embedding {name!r} ({spec.get('type')}, per {spec.get('per')}) is not supported: only the "
                             f"categorical per-graph {' and '.join(_EMBEDDING_INPUTS)}")
        table = sd[f"joint_embedding.embedders.{name}.weight"]
        inputs.append({"source": _EMBEDDING_INPUTS[name], "num_classes": int(table.shape[0]), "offset": int(spec.get("offset", 0)),
                       "dim": int(table.shape[1]), "table": add(f"joint_embedding.{name}", table)})
        total += int(table.shape[1])
    projection = sd["joint_embedding.project.0.weight"]  # torch Linear [out][in], no bias, then SiLU
    if projection.shape[1] != total or "joint_embedding.project.0.bias" in sd:
        raise ValueError("unexpected MACE joint-embedding projection")
    spec = {"inputs": inputs, "projection": add("joint_embedding.projection", projection.T)}
    if hp.get("embedding_readout"):
        desc = hp["embedding_readout"]
        spec["readout"] = readout_linear("joint_embedding.readout", desc, range(o3.parse_irreps(desc["irreps_in"])[0][0]), [h])
    return spec


def _latent_charge_head(hp, readouts):
    """MACELES's long-range term as a charge head (format version 5): the LES readouts of every layer, summed, without a
    total-charge constraint; the les library's Ewald module's Gaussian width sigma, its constant norm_factor (1/(2 eps0):
    k = norm_factor / 2 pi), whether it removes the self interaction, and its periodic sum truncated at 2 pi / dl."""
    les = hp.get("les")
    if les is None:
        raise ValueError("MACELES: the description has no 'les' part (the les library's constants: describe_mace_model reads them)")
    if len(readouts) != len(hp["layers"]):
        raise ValueError(f"MACELES with {len(readouts)} LES readouts for {len(hp['layers'])} layers is not supported")
    return {"readouts": readouts, "total_charge": "unconstrained",
            "coulomb": {"included": True, "damping": "gaussian", "gaussian_sigma": float(les["sigma"]),
                        "gaussian_self_energy": not bool(les["remove_self_interaction"]),
                        "constant": float(les["norm_factor"]) / (2 * np.pi),
                        "periodic": {"method": "truncated_reciprocal", "dl": float(les["dl"])}}}


def _polar_head(desc, sd, add, linear):
    """PolarMACE's head as the model file's `polar` section (format version 6, docs/model-format.md)."""
    def uvu(prefix, d):
        return {"irreps_in1": d["irreps_in1"], "irreps_in2": d["irreps_in2"], "irreps_out": d["irreps_out"], "paths": d["paths"],
                "weight": add(prefix + ".weight", sd[d["weight_key"]].reshape(-1))}

    def biased_readout(prefix, d):
        out = {k: linear(f"{prefix}.{k}", d[k]) for k in ("linear_1", "linear_mid", "linear_2")}
        if "gate" in d:
            out["gate"] = d["gate"]
        else:
            out["activation"] = _activation(d["activation"]["acts"][0], d["activation"]["cst"][0])
        return out

    p = "polar"
    head = {
        "multipoles": dict(desc["multipoles"]),
        "field_features": {"lmax": desc["field_features"]["lmax"], "widths": desc["field_features"]["widths"],
                           "norms": [float(x) for x in sd[desc["field_features"]["norms_key"]].reshape(-1)]},
        "spin_sources": [linear(f"{p}.spin_sources.{t}", d) for t, d in enumerate(desc["spin_sources"])],
        "feature_mixer": [linear(f"{p}.feature_mixer.{t}", d) for t, d in enumerate(desc["feature_mixer"])],
        "fukui": biased_readout(f"{p}.fukui", desc["fukui"]),
        "field_updates": []}
    for i, u in enumerate(desc["field_updates"]):
        q = f"{p}.field_updates.{i}"
        head["field_updates"].append({
            **{k: linear(f"{q}.{k}", u[k]) for k in ("potential_linear", "node_feats_linear", "charge_embedding", "source_embedding")},
            "dot_products": uvu(f"{q}.dot_products", u["dot_products"]), "tp_out": uvu(f"{q}.tp_out", u["tp_out"]),
            "nonlinearity": _radial_mlp(u["nonlinearity"], f"{q}.nonlinearity", sd, add),
            "readout": biased_readout(f"{q}.readout", u["readout"])})
    if "electron_energy" in desc:
        e, q = desc["electron_energy"], f"{p}.electron_energy"
        head["electron_energy"] = {"linear_up_q": linear(f"{q}.linear_up_q", e["linear_up_q"]),
                                   "linear_up_v": linear(f"{q}.linear_up_v", e["linear_up_v"]),
                                   "dot_q": uvu(f"{q}.dot_q", e["dot_q"]), "dot_v": uvu(f"{q}.dot_v", e["dot_v"]),
                                   "mlp": _radial_mlp(e["mlp"], f"{q}.mlp", sd, add)}
    es = desc["electrostatics"]
    fp, ep = es["feature_prefix"], es["energy_prefix"]

    def self_terms(prefix):
        """graph-longrange's self-interaction terms (a Gaussian's field on its own probes): feature d has c_d q[select_d]."""
        c, select = sd[f"{prefix}.overlap_constants"].reshape(-1), sd[f"{prefix}.select_indices"].reshape(-1)
        return [[d, int(select[d]), float(c[d])] for d in range(c.size) if c[d] != 0]

    def basis(prefix, lmax):
        """A GTO basis's Fourier coefficients a_l k^l exp(-sigma^2 k^2 / 2) per width: sigma^2 and a_l (the radial
        integral's prefactors times the normalisation graph-longrange computed)."""
        spline, scale = f"{prefix}.radial_spline", sd[f"{prefix}.cl_scale"]
        sigma2 = sd[f"{spline}.sigma2"].reshape(-1)
        prefactors = [sd[f"{spline}.pref{l}"].reshape(-1) for l in range(lmax + 1)]
        return [{"sigma2": float(sigma2[j]), "amplitudes": [float(prefactors[l][j] * scale[j, l]) for l in range(lmax + 1)]}
                for j in range(sigma2.size)]

    rec = es["reciprocal"]
    for real_space, reciprocal in ((f"{fp}.self_interaction", rec["feature_self"]), (f"{ep}.self_interaction", rec["energy_self"])):
        if not np.array_equal(sd[f"{real_space}.overlap_constants"], sd[f"{reciprocal}.overlap_constants"]):
            raise ValueError(f"PolarMACE: {real_space} and {reciprocal} hold different self-interaction constants")

    head["electrostatics"] = {
        # graph-longrange 0.4's real-space kernels: FIELD_CONSTANT / (4 pi) erf(d / (2 w)) / (d + 1e-6), the 1e-6 (A) a
        # literal of its source (realspace_electrostatics.py), not a buffer.
        "field_constant": desc["field_constant"], "softening": 1e-6,
        "feature_offset": es["feature_offset"], "energy_offset": es["energy_offset"],
        "feature_width_factors": [float(x) for x in sd[f"{fp}.total_width_factors"].reshape(-1)],
        "l0_factors": [float(x) for x in sd[f"{fp}.l0_factors"].reshape(-1)],
        "l1_factors": [float(x) for x in sd[f"{fp}.l1_factors"].reshape(-1)],
        "feature_self_terms": self_terms(rec["feature_self"]), "energy_self_terms": self_terms(rec["energy_self"]),
        # a uniform external field's projection on the probes (DisplacedGTOExternalFieldBlock's matrix, whose columns act on
        # (potential, field z, x, y)): per feature entry [potential, x, y, z]
        "external_field_projection": [[float(row[0]), float(row[2]), float(row[3]), float(row[1])]
                                      for row in sd[es["external_field_key"]]],
        "include_feature_self_interaction": es["include_feature_self_interaction"],
        "include_energy_self_interaction": es["include_energy_self_interaction"],
        # periodic cells: graph-longrange's reciprocal-space sums over its k vectors with |k| <= kspace_cutoff
        "reciprocal": {"kspace_cutoff": float(sd[rec["kspace_cutoff_key"]]),
                       "density": basis(rec["density_basis"], desc["multipoles"]["lmax"])[0],
                       "features": basis(rec["feature_basis"], desc["field_features"]["lmax"])}}
    return head


def convert(hp, state_dict, head=None):
    """Build (architecture, tensors) from a MACE description and its state_dict (numpy arrays, in the dtype the
    model stores them). A multi-head model keeps one head (select_head)."""
    stored_dtype = {k: np.asarray(v).dtype for k, v in state_dict.items()}
    sd = {k: np.asarray(v, dtype=np.float64) for k, v in state_dict.items()}
    num_heads = len(hp.get("heads") or ["Default"])
    h = select_head(hp, head)
    model_class = hp.get("model_class", "ScaleShiftMACE")
    if model_class not in ("MACE", "ScaleShiftMACE", "MACELES", "PolarMACE"):
        raise ValueError(f"MACE model class {model_class} is not supported (MACE, ScaleShiftMACE, MACELES, PolarMACE)")
    for key, default, what in _REFUSED_OPTIONS:
        if hp.get(key, default) != default:
            raise ValueError(f"MACE option not supported: {what}")
    if hp.get("distance_transform") not in (None, "None", False, "AgnesiTransform", "Agnesi", "SoftTransform", "Soft"):
        raise ValueError(f"MACE distance transform {hp['distance_transform']!r} is not supported (Agnesi, Soft)")
    if hp.get("radial_type", "bessel") != "bessel":
        raise ValueError(f"MACE radial basis {hp['radial_type']!r} is not supported (bessel only)")
    tensors = {}
    elements = [int(z) for z in hp["atomic_numbers"]]
    nel = len(elements)
    w3j_needed = set()

    def add(name, array):
        tensors[name] = np.asarray(array, dtype=np.float64)
        return name

    def linear(prefix, desc):
        spec, w = _linear(desc, sd[desc["weight_key"]])
        spec["weight"] = add(prefix + ".weight", w)
        if desc.get("bias_key"):  # e3nn's biases, laid out over the outputs (format version 6)
            outs = o3.parse_irreps(desc["irreps_out"])
            starts = np.cumsum([0] + [mul * (2 * l + 1) for mul, l, _ in outs])
            values, bias, k = sd[desc["bias_key"]].reshape(-1), np.zeros(starts[-1]), 0
            for i_out in desc["bias_outputs"]:
                mul = outs[i_out][0]
                bias[starts[i_out]:starts[i_out] + mul] = values[k:k + mul]
                k += mul
            if k != values.size:
                raise ValueError(f"{desc['bias_key']} has {values.size} biases, expected {k}")
            spec["bias"] = add(prefix + ".bias", bias)
        return spec

    lmax = int(hp["max_ell"])
    for l in range(2, lmax + 1):
        w3j_needed.add((1, l - 1, l))
    def scale_shift(name, default):
        """ScaleShiftMACE's scale or shift (one, or one per head) for the kept head; plain MACE has none."""
        if name not in sd:
            return default
        value = np.atleast_1d(sd[name])
        return value[h] if value.size > 1 else value[0]

    e0 = sd["atomic_energies_fn.atomic_energies"]  # [element], or [head][element] in a multi-head model
    e0 = e0[h] if e0.ndim == 2 else e0

    def readout_linear(prefix, desc, inputs, outputs):
        """A readout's linear, cut to the kept head's channels in a multi-head model."""
        if num_heads == 1:
            return linear(prefix, desc)
        cut_desc, w = _head_channels(desc, sd[desc["weight_key"]], inputs, outputs)
        spec, w = _linear(cut_desc, w)
        spec["weight"] = add(prefix + ".weight", w)
        return spec

    arch = {
        "format": modelfile.FORMAT,
        "format_version": modelfile.FORMAT_VERSION,
        "source": "MACE " + str(hp.get("versions", {}).get("mace", {}).get("version", "")).strip(),
        "units": {"energy": "eV", "length": "Angstrom"},
        "elements": elements,
        "symmetry": "O3",
        "r_max": float(hp["r_max"]),
        "radial_basis": {
            "type": "bessel",
            "num_basis": int(hp["num_bessel"]),
            "frequencies": add("radial.frequencies", sd["radial_embedding.bessel_fn.bessel_weights"].reshape(-1)),
            "prefactor": float(sd["radial_embedding.bessel_fn.prefactor"]),
            "envelope": "polynomial",
            "envelope_p": int(round(float(sd["radial_embedding.cutoff_fn.p"]))),
        },
        "spherical_harmonics": {"lmax": lmax, "normalization": "component"},
        "embedding": linear("embedding", hp["node_embedding"]),
        "layers": [],
        "energy": {
            "e0": [float(x) for x in e0],
            "scale": float(scale_shift("scale_shift.scale", 1.0)),
            "shift": float(scale_shift("scale_shift.shift", 0.0)),
        },
    }
    def readout_spec(prefix, ro):
        """A LinearReadoutBlock or NonLinearReadoutBlock, cut to the kept head; other readouts are refused by name."""
        if ro["type"] == "LinearReadoutBlock":
            scalars = o3.parse_irreps(ro["linear"]["irreps_in"])[0][0]
            return {"type": "linear", "linear": readout_linear(f"{prefix}.linear", ro["linear"], range(scalars), [h])}
        if ro["type"] == "NonLinearReadoutBlock":
            acts = ro["activation"]
            if len(acts["acts"]) != 1:
                raise ValueError("nonlinear readouts with several activations are not supported")
            # A multi-head MLP's hidden channels are the heads' blocks in order (MACE's mask_head keeps head h's).
            scalars = o3.parse_irreps(ro["linear_1"]["irreps_in"])[0][0]
            hidden = o3.parse_irreps(ro["linear_1"]["irreps_out"])[0][0] // num_heads
            kept = range(h * hidden, (h + 1) * hidden)
            return {"type": "nonlinear",
                    "linear_1": readout_linear(f"{prefix}.linear_1", ro["linear_1"], range(scalars), kept),
                    "activation": _activation(acts["acts"][0], acts["cst"][0]),
                    "linear_2": readout_linear(f"{prefix}.linear_2", ro["linear_2"], kept, [h])}
        raise ValueError(f"readout {ro['type']} is not supported")

    def covalent_radii(key):
        """MACE's table (ase.data.covalent_radii, indexed by atomic number) at the model's elements."""
        table = sd[key].reshape(-1)
        return [float(table[z]) for z in elements]

    version = 2  # the materials blocks need format version 3, the non-linear block family 4 (docs/model-format.md)
    if not hp.get("apply_cutoff", True):  # the envelope on the radial networks' outputs instead of their inputs
        arch["radial_basis"]["apply_cutoff"] = False
        version = 4
    if hp.get("embedding_specs"):
        arch["joint_embedding"] = _joint_embedding(hp, sd, add, readout_linear, h)
        version = 4
    if hp.get("distance_transform") in ("AgnesiTransform", "Agnesi"):
        q = "radial_embedding.distance_transform"
        arch["radial_basis"]["distance_transform"] = {
            "type": "agnesi", "a": float(sd[f"{q}.a"]), "q": float(sd[f"{q}.q"]), "p": float(sd[f"{q}.p"]),
            "covalent_radii": covalent_radii(f"{q}.covalent_radii")}
        version = max(version, 3)
    if hp.get("distance_transform") in ("SoftTransform", "Soft"):
        q = "radial_embedding.distance_transform"
        arch["radial_basis"]["distance_transform"] = {"type": "soft", "alpha": float(sd[f"{q}.alpha"]),
                                                      "covalent_radii": covalent_radii(f"{q}.covalent_radii")}
        version = max(version, 3)
    if hp.get("pair_repulsion"):
        q = "pair_repulsion_fn"
        arch["pair_repulsion"] = {
            "type": "zbl", "c": [float(x) for x in sd[f"{q}.c"].reshape(-1)], "exponents": list(_ZBL_EXPONENTS),
            "a_prefactor": float(sd[f"{q}.a_prefactor"]), "a_exponent": float(sd[f"{q}.a_exp"]), "bohr": _ZBL_BOHR,
            "coulomb": _ZBL_COULOMB, "envelope_p": int(round(float(sd[f"{q}.p"]))), "covalent_radii": covalent_radii(f"{q}.covalent_radii")}
        version = max(version, 3)
    if hp["spherical_harmonics"].get("normalization", "component") != "component" or not hp["spherical_harmonics"].get("normalize", True):
        raise ValueError("only normalized, component-normalised spherical harmonics are supported")
    for t, layer in enumerate(hp["layers"]):
        p = f"layers.{t}"
        cls = layer["interaction_class"]
        _check_interaction_block(cls)
        residual = cls in _RESIDUAL_BLOCKS
        nonlinear = cls == _NONLINEAR_BLOCK
        tp = layer["conv_tp"]
        in1, in2 = o3.parse_irreps(tp["irreps_in1"]), o3.parse_irreps(tp["irreps_in2"])
        outs = o3.parse_irreps(tp["irreps_out"])
        paths, offset = [], 0
        for ins in tp["instructions"]:
            if ins["connection_mode"] != "uvu" or ins["weight_offset"] != offset or ins["path_shape"][1] != 1:
                raise ValueError(f"unexpected conv_tp instruction in layer {t}")
            paths.append([ins["i_in1"], ins["i_in2"], ins["i_out"], float(ins["path_weight"])])
            w3j_needed.add((in1[ins["i_in1"]][1], in2[ins["i_in2"]][1], outs[ins["i_out"]][1]))
            offset += ins["path_shape"][0]
        mlp = layer["conv_tp_weights"]
        weights, scales, act = [], [], None
        for k, lay in enumerate([] if nonlinear else mlp["layers"]):
            if lay["var_in"] != 1.0 or lay["var_out"] != 1.0:
                raise ValueError("radial MLPs with var_in or var_out other than 1 are not supported")
            weights.append(add(f"{p}.radial_mlp.{k}.weight", sd[lay["weight_key"]]))
            scales.append(1.0 / np.sqrt(lay["h_in"]))
            if lay["has_activation"]:
                this = _activation(lay["activation"], lay["activation_cst"])
                if act is not None and this != act:
                    raise ValueError("a radial MLP with different activations per layer is not supported")
                act = this
        if nonlinear:  # an e3nn Linear, the same for every element
            skip_spec, skip_w = _linear(layer["skip_tp"], sd[layer["skip_tp"]["weight_key"]])
        else:
            skip_spec, skip_w = _skip(layer["skip_tp"], sd[layer["skip_tp"]["weight_key"]], nel)
        skip_spec["weight"] = add(f"{p}.skip.weight", skip_w)
        contractions = []
        for k, c in enumerate(layer["product"]["symmetric_contraction"]["contractions"]):
            L = int(c["irrep_out"][:-1])
            us, ws = [], []
            for nu in range(1, int(c["correlation"]) + 1):
                u = sd[c["U_matrices"][str(nu)]["key"]]
                if L == 0:
                    u = u[None]
                us.append(add(f"{p}.product.{k}.U{nu}", u))
                w = sd[c["weights"][str(nu)]["key"]]
                if hp.get("use_agnostic_product", False):  # one set of weights for every element
                    if w.shape[0] != 1:
                        raise ValueError(f"agnostic product weights of layer {t} are not one set: shape {w.shape}")
                    w = np.repeat(w, nel, axis=0)
                ws.append(add(f"{p}.product.{k}.W{nu}", w))
            contractions.append({"irrep_out": c["irrep_out"], "correlation": int(c["correlation"]), "U": us, "weights": ws})
        readout = readout_spec(f"{p}.readout", layer["readout"])
        density = None
        if nonlinear:
            density = {"mlp": _radial_mlp(layer["density_fn"], f"{p}.density", sd, add), "alpha": float(sd[layer["density_alpha_key"]]),
                       "beta": float(sd[layer["density_beta_key"]])}
        elif cls in _DENSITY_BLOCKS:  # the message divided by 1 + sum of tanh(density_fn(edge)^2), not by avg_num_neighbors
            if "density_fn" not in layer:
                raise ValueError(f"layer {t}: {cls} without the description of its density network (density_fn)")
            dl = layer["density_fn"]
            if len(dl["layers"]) != 1 or dl["layers"][0]["has_activation"] or dl["layers"][0]["var_in"] != 1.0 or dl["layers"][0]["var_out"] != 1.0:
                raise ValueError(f"layer {t}: a density network other than one linear layer is not supported")
            d0 = dl["layers"][0]
            density = {"weights": add(f"{p}.density.weight", sd[d0["weight_key"]].reshape(-1)), "weight_scale": 1.0 / np.sqrt(d0["h_in"])}
            version = max(version, 3)
        conv_spec = {"irreps_in1": tp["irreps_in1"], "irreps_in2": tp["irreps_in2"], "irreps_out": tp["irreps_out"], "paths": paths}
        # e3nn keeps the Wigner blocks of a compiled tensor product in the model's dtype, and MACE evaluates a float32
        # file with them even in float64: such a layer carries its own copies (format version 3), so that the file
        # gives MACE's numbers. The harmonics keep the exact blocks (e3nn computes them from formulas).
        own = {}
        for key in sd:
            if key.startswith(f"interactions.{t}.conv_tp.") and "._w3j_" in key and stored_dtype[key] != np.float64:
                triple = key.rsplit("_w3j_", 1)[1].replace("_", ".")
                own[triple] = add(f"{p}.conv_w3j.{triple}", sd[key])
        if own:
            conv_spec["w3j"] = own
            version = max(version, 3)
        arch["layers"].append({
            "interaction": "nonlinear" if nonlinear else "residual" if residual else "non_residual",
            "avg_num_neighbors": 1.0 if density else float(layer["avg_num_neighbors"]),
            "linear_up": linear(f"{p}.linear_up", layer["linear_up"]),
            "conv_tp": conv_spec,
            "radial_mlp": _radial_mlp(mlp, f"{p}.radial_mlp", sd, add) if nonlinear else
            {"sizes": [int(h) for h in mlp["hs"]], "weights": weights, "weight_scales": scales, "activation": act},
            "linear": linear(f"{p}.linear", layer["linear"]),
            "skip": skip_spec,
            "product": {"contractions": contractions, "linear": linear(f"{p}.product.linear", layer["product"]["linear"])},
            "readout": readout,
        })
        if density:
            arch["layers"][-1]["density_normalization"] = density
        if nonlinear:  # MACE's RealAgnosticResidualNonLinearInteractionBlock
            version = 4
            arch["layers"][-1].update({
                "edge_embeddings": {"source": linear(f"{p}.source_embedding", layer["source_embedding"]),
                                    "target": linear(f"{p}.target_embedding", layer["target_embedding"])},
                "linear_residual": linear(f"{p}.linear_residual", layer["linear_res"]),
                "gate": layer["gate"],
                "linear_2": linear(f"{p}.linear_2", layer["linear_2"])})
    if model_class == "MACELES":
        les_readouts = (hp.get("les") or {}).get("readouts", [])
        arch["charge_head"] = _latent_charge_head(hp, [readout_spec(f"charge_head.readouts.{t}", ro) for t, ro in enumerate(les_readouts)])
        version = 5
    if model_class == "PolarMACE":
        arch["spherical_harmonics"]["input"] = "yzx"  # PolarMACE's harmonics of (y, z, x): graph-longrange's order
        arch["polar"] = _polar_head(hp["polar"], sd, add, linear)
        version = 6
    arch["format_version"] = version
    for l1, l2, l3 in sorted(w3j_needed):
        tensors[f"w3j.{l1}.{l2}.{l3}"] = o3.wigner_3j(l1, l2, l3)
    # Any Wigner 3j block MACE compiled into its state_dict must agree with ours, at the precision it is stored in
    # (e3nn keeps them in the model's dtype: a float32 block is the double one rounded, within an ulp or two).
    for key, value in sd.items():
        if "._w3j_" in key:
            l1, l2, l3 = (int(x) for x in key.rsplit("_w3j_", 1)[1].split("_"))
            exact = o3.wigner_3j(l1, l2, l3)
            dtype = stored_dtype[key]
            if dtype != np.float64 and not re.match(r"interactions\.\d+\.conv_tp\.", key):
                # Only a convolution's own blocks are kept (conv_tp.w3j); rounded ones elsewhere would be lost.
                raise ValueError(f"{key}: a {dtype} Wigner 3j block outside a layer's convolution is not supported")
            tolerance = 1e-12 if dtype == np.float64 else 4 * np.finfo(dtype).eps * max(1.0, np.abs(exact).max())
            if np.abs(exact - value).max() > tolerance:
                raise ValueError(f"{key} ({dtype}) disagrees with openmmenn.o3.wigner_3j by {np.abs(exact - value).max():.3g}: "
                                 f"unsupported e3nn convention")
    return arch, tensors


def convert_fixture(folder, output, head=None):
    """Convert a folder holding hyperparameters.json and state_dict.npz (tests/data/mace layout)."""
    with open(os.path.join(folder, "hyperparameters.json")) as f:
        hp = json.load(f)
    with np.load(os.path.join(folder, "state_dict.npz"), allow_pickle=False) as npz:
        sd = {k: npz[k] for k in npz.files}
    arch, tensors = convert(hp, sd, head)
    modelfile.write(output, arch, tensors)
    return arch


def describe_mace_model(model):
    """Extract the description convert() needs from a live MACE model (torch and mace required).

    This reads e3nn's instruction lists from the modules, the same information as the fixtures'
    hyperparameters.json, and the constructor options convert() refuses (tests/python/test_mace_torch.py
    checks it against mace-torch itself).
    """
    import torch  # noqa: F401  (the model is a torch module)

    def lin(mod, key):
        # e3nn lists a bias as an instruction with i_in = -1 after the weights' (path weight 1, one value per channel)
        weighted = [i for i in mod.instructions if i.i_in != -1]
        desc = {"irreps_in": str(mod.irreps_in), "irreps_out": str(mod.irreps_out), "weight_key": key,
                "instructions": [{"i_in": i.i_in, "i_out": i.i_out, "path_shape": list(i.path_shape),
                                  "path_weight": float(i.path_weight), "weight_offset": off}
                                 for i, off in zip(weighted, _offsets([i.path_shape for i in weighted]))]}
        biases = [i for i in mod.instructions if i.i_in == -1]
        if biases:
            if any(float(i.path_weight) != 1.0 for i in biases):
                raise ValueError(f"{key}: a bias with a path weight other than 1")
            desc.update({"bias_key": key.rsplit(".weight", 1)[0] + ".bias", "bias_outputs": [int(i.i_out) for i in biases]})
        return desc

    def tp(mod, key):
        return {"irreps_in1": str(mod.irreps_in1), "irreps_in2": str(mod.irreps_in2), "irreps_out": str(mod.irreps_out),
                "weight_key": key,
                "instructions": [{"i_in1": i.i_in1, "i_in2": i.i_in2, "i_out": i.i_out, "connection_mode": i.connection_mode,
                                  "path_shape": list(i.path_shape), "path_weight": float(i.path_weight), "weight_offset": off}
                                 for i, off in zip(mod.instructions, _offsets([i.path_shape for i in mod.instructions]))]}

    def radial_mlp(mlp, key):
        """MACE's RadialMLP: Linear (bias), then LayerNorm and SiLU on each hidden layer."""
        layers, modules = [], list(mlp.net)
        for k, mod in enumerate(modules):
            if isinstance(mod, torch.nn.Linear):
                layers.append({"weight_key": f"{key}.net.{k}.weight", "bias_key": f"{key}.net.{k}.bias"})
            elif isinstance(mod, torch.nn.LayerNorm) and layers and "norm" not in layers[-1]:
                layers[-1]["norm"] = {"weight_key": f"{key}.net.{k}.weight", "bias_key": f"{key}.net.{k}.bias", "eps": float(mod.eps)}
            elif not isinstance(mod, torch.nn.SiLU):
                raise ValueError(f"{key}: a radial MLP with {type(mod).__name__} is not supported")
        if any("norm" not in lay for lay in layers[:-1]) or "norm" in layers[-1]:
            raise ValueError(f"{key}: expected Linear, LayerNorm, SiLU per hidden layer")
        return {"hs": list(mlp.hs), "layers": layers}

    _FUNCTION_NAMES.update({torch.nn.functional.silu: "silu", torch.nn.functional.sigmoid: "sigmoid", torch.sigmoid: "sigmoid",
                            torch.tanh: "tanh", torch.nn.functional.tanh: "tanh"})

    def gate(block, irreps_out):
        """MACE's GatedEquivariantBlock (e3nn layout): where the scalars, gates and gated entries sit."""
        gate_function = block._act_gate
        if gate_function is None and not block._gated_info:  # nothing gated (scalar outputs only): no gate activation
            gate_function = torch.sigmoid
        if block._layout_is_ir_mul or block._act_scalar not in _FUNCTION_NAMES or gate_function not in _FUNCTION_NAMES:
            raise ValueError("a gate with another layout or activation is not supported")
        return {"irreps_in": str(block.irreps_in), "irreps_out": str(irreps_out), "scalars": [block._s_start, block._s_len],
                "gates": [block._g_start, block._g_len],
                "gated": [[start, mul, dim, offset] for start, _, dim, mul, offset in block._gated_info],
                "scalar_activation": {"function": _FUNCTION_NAMES[block._act_scalar], "scale": float(block._scalar_cst)},
                "gate_activation": {"function": _FUNCTION_NAMES[gate_function], "scale": float(block._gate_cst)}}

    def describe_readout(ro, key):
        # By class: other readouts (NonLinearBiasReadoutBlock's extra biased layer, ...) are refused by convert().
        readout = {"type": type(ro).__name__}
        if readout["type"] == "NonLinearReadoutBlock":
            act = ro.non_linearity.acts[0]
            readout.update({"linear_1": lin(ro.linear_1, f"{key}.linear_1.weight"),
                            "activation": {"acts": [_FUNCTION_NAMES.get(act.f, repr(act.f))], "cst": [float(act.cst)]},
                            "linear_2": lin(ro.linear_2, f"{key}.linear_2.weight")})
        elif readout["type"] == "LinearReadoutBlock":
            readout["linear"] = lin(ro.linear, f"{key}.linear.weight")
        return readout

    heads = list(getattr(model, "heads", None) or [])
    hp = {"model_class": type(model).__name__, "heads": heads or None,
          "apply_cutoff": bool(getattr(model, "apply_cutoff", True)),
          "use_agnostic_product": bool(getattr(model, "use_agnostic_product", False)),
          "use_last_readout_only": bool(getattr(model, "use_last_readout_only", False)),
          "edge_irreps": str(model.edge_irreps) if getattr(model, "edge_irreps", None) is not None else None,
          "embedding_specs": getattr(model, "embedding_specs", None),
          "use_so3": any(ir.l % 2 == 1 and ir.p == 1 for _, ir in model.spherical_harmonics.irreps_out),
          "atomic_numbers": [int(z) for z in model.atomic_numbers], "r_max": float(model.r_max),
          "pair_repulsion": hasattr(model, "pair_repulsion_fn"),
          "distance_transform": type(model.radial_embedding.distance_transform).__name__
          if hasattr(model.radial_embedding, "distance_transform") else None,
          "radial_type": type(model.radial_embedding.bessel_fn).__name__.replace("BesselBasis", "bessel"),
          "num_bessel": int(model.radial_embedding.out_dim), "max_ell": int(model.spherical_harmonics._lmax),
          "spherical_harmonics": {"normalize": bool(model.spherical_harmonics.normalize),
                                  "normalization": model.spherical_harmonics.normalization},
          "node_embedding": lin(model.node_embedding.linear, "node_embedding.linear.weight"), "layers": []}
    for t, (inter, prod, ro) in enumerate(zip(model.interactions, model.products, model.readouts)):
        _check_interaction_block(type(inter).__name__)  # before reading modules that other blocks lay out differently
        p = f"interactions.{t}"
        def fully_connected(net, key):
            return [{"weight_key": f"{key}.layer{k}.weight", "h_in": lay.h_in, "var_in": float(lay.var_in),
                     "var_out": float(lay.var_out), "has_activation": lay.act is not None,
                     "activation": "silu" if lay.act is not None else None,
                     "activation_cst": float(lay.act.cst) if lay.act is not None else None} for k, lay in enumerate(net)]

        mlp = inter.conv_tp_weights
        nonlinear = type(inter).__name__ == _NONLINEAR_BLOCK
        layers = [] if nonlinear else fully_connected(mlp, f"{p}.conv_tp_weights")
        contractions = []
        for k, c in enumerate(prod.symmetric_contractions.contractions):
            q = f"products.{t}.symmetric_contractions.contractions.{k}"
            corr = c.correlation
            contractions.append({
                "irrep_out": str(prod.symmetric_contractions.irreps_out[k].ir), "correlation": corr,
                "U_matrices": {str(nu): {"key": f"{q}.U_matrix_{nu}"} for nu in range(1, corr + 1)},
                "weights": {str(nu): {"key": f"{q}.weights_max" if nu == corr else f"{q}.weights.{corr - 1 - nu}"}
                            for nu in range(1, corr + 1)}})
        readout = describe_readout(ro, f"readouts.{t}")
        if nonlinear:
            hp["layers"].append({
                "interaction_class": type(inter).__name__, "avg_num_neighbors": float(inter.avg_num_neighbors),
                "linear_up": lin(inter.linear_up, f"{p}.linear_up.weight"), "conv_tp": tp(inter.conv_tp, None),
                "conv_tp_weights": radial_mlp(mlp, f"{p}.conv_tp_weights"), "density_fn": radial_mlp(inter.density_fn, f"{p}.density_fn"),
                "density_alpha_key": f"{p}.alpha", "density_beta_key": f"{p}.beta",
                "source_embedding": lin(inter.source_embedding, f"{p}.source_embedding.weight"),
                "target_embedding": lin(inter.target_embedding, f"{p}.target_embedding.weight"),
                "linear": lin(inter.linear_1, f"{p}.linear_1.weight"), "linear_res": lin(inter.linear_res, f"{p}.linear_res.weight"),
                "gate": gate(inter.equivariant_nonlin, inter.linear_2.irreps_in),
                "linear_2": lin(inter.linear_2, f"{p}.linear_2.weight"), "skip_tp": lin(inter.skip_tp, f"{p}.skip_tp.weight")})
        else:
            hp["layers"].append({
                "interaction_class": type(inter).__name__, "avg_num_neighbors": float(inter.avg_num_neighbors),
                "conv_tp_weights": {"hs": list(mlp.hs), "layers": layers}, "linear": lin(inter.linear, f"{p}.linear.weight"),
                "skip_tp": tp(inter.skip_tp, f"{p}.skip_tp.weight"), "linear_up": lin(inter.linear_up, f"{p}.linear_up.weight"),
                "conv_tp": tp(inter.conv_tp, None)})
        hp["layers"][-1].update({
            "product": {"symmetric_contraction": {"contractions": contractions},
                        "linear": lin(prod.linear, f"products.{t}.linear.weight")},
            "readout": readout})
        if hasattr(inter, "density_fn") and not nonlinear:
            hp["layers"][-1]["density_fn"] = {"layers": fully_connected(inter.density_fn, f"{p}.density_fn")}
    if hasattr(model, "embedding_readout"):
        hp["embedding_readout"] = lin(model.embedding_readout.linear, "embedding_readout.linear.weight")
    if type(model).__name__ == "MACELES":
        hp["les"] = _describe_les(model, describe_readout)
    if type(model).__name__ == "PolarMACE":
        hp["polar"] = _describe_polar(model, lin, gate, radial_mlp)
    return hp


def _describe_polar(model, lin, gate, radial_mlp):
    """PolarMACE's head (mace-torch 0.3.16's extensions.py and field_blocks.py, graph-longrange's open-boundary sums):
    each block by class, refused by name where it is not the one described; the constants graph-longrange computed
    (probe normalisations, self-interaction overlaps) read from its buffers, not recomputed."""
    import graph_longrange
    from graph_longrange.utils import FIELD_CONSTANT

    def need(obj, cls, what):
        if type(obj).__name__ != cls:
            raise ValueError(f"PolarMACE: {what} {type(obj).__name__} is not supported ({cls})")

    def uvu(mod, key):
        need(mod, "SparseUvuTensorProduct", "channel-wise product")
        if mod.layout != "mul_ir" or not bool((mod.output_mask == 1).all()):
            raise ValueError(f"PolarMACE: {key} with another layout or a masked output is not supported")
        # each instruction in order, with the kind the module chose for it (_path_meta's mode: 0 l x l -> 0, 1 l x 0 -> l)
        paths = [[int(ins.i_in1), int(ins.i_in2), int(ins.i_out), float(ins.path_weight), "dot" if meta[9] == 0 else "scale"]
                 for ins, meta in zip(mod.instructions, mod._path_meta)]
        return {"irreps_in1": str(mod.irreps_in1), "irreps_in2": str(mod.irreps_in2), "irreps_out": str(mod.irreps_out),
                "weight_key": f"{key}.weight", "paths": paths}

    def biased_readout(ro, key):
        out = {"type": type(ro).__name__, "linear_1": lin(ro.linear_1, f"{key}.linear_1.weight"),
               "linear_mid": lin(ro.linear_mid, f"{key}.linear_mid.weight"), "linear_2": lin(ro.linear_2, f"{key}.linear_2.weight")}
        if out["type"] == "NonLinearBiasReadoutBlock":
            if getattr(ro, "num_heads", 1) != 1 or len(ro.non_linearity.acts) != 1:
                raise ValueError(f"PolarMACE: {key} with several heads or activations is not supported")
            act = ro.non_linearity.acts[0]
            out["activation"] = {"acts": [_FUNCTION_NAMES.get(act.f, repr(act.f))], "cst": [float(act.cst)]}
        elif out["type"] == "GeneralNonLinearBiasReadoutBlock":
            out["gate"] = gate(ro.equivariant_nonlin, ro.linear_mid.irreps_in)
        else:
            raise ValueError(f"PolarMACE: readout {out['type']} is not supported")
        return out

    for name in ("cueq_config", "oeq_config"):
        config = getattr(model, name, None)
        if config is not None and getattr(config, "enabled", False):
            raise ValueError(f"PolarMACE with {name} enabled is not supported (convert the e3nn model)")
    if getattr(model, "quadrupole_feature_corrections", False):
        raise ValueError("PolarMACE: quadrupole_feature_corrections is not supported")
    for i, src in enumerate(model.lr_source_maps):
        need(src, "EnvironmentDependentSpinSourceBlock", "spin source block")
        if src.zero_charges:
            raise ValueError("PolarMACE: a spin source block with zero_charges is not supported")
    updates = []
    for i, up in enumerate(model.field_dependent_charges_maps):
        key = f"field_dependent_charges_maps.{i}"
        need(up, "AgnosticEmbeddedOneBodyVariableUpdate", "field-update block")
        need(up.potential_embedding, "AgnosticChargeBiasedLinearPotentialEmbedding", "potential embedding")
        need(up.nonlinearity, "RadialMLP", "field-update non-linearity")
        pe = f"{key}.potential_embedding"
        updates.append({
            "potential_linear": lin(up.potential_embedding.potential_linear, f"{pe}.potential_linear.weight"),
            "node_feats_linear": lin(up.potential_embedding.node_feats_linear, f"{pe}.node_feats_linear.weight"),
            "charge_embedding": lin(up.potential_embedding.charge_embedding, f"{pe}.charge_embedding.weight"),
            "source_embedding": lin(up.source_embedding, f"{key}.source_embedding.weight"),
            "dot_products": uvu(up.dot_products, f"{key}.dot_products"),
            "nonlinearity": radial_mlp(up.nonlinearity, f"{key}.nonlinearity"),
            "tp_out": uvu(up.tp_out, f"{key}.tp_out"),
            "readout": biased_readout(up.readout, f"{key}.readout")})
    desc = {
        "multipoles": {"lmax": int(model.atomic_multipoles_max_l), "sigma": float(model.atomic_multipoles_smearing_width)},
        "field_features": {"lmax": int(model.field_feature_max_l), "widths": [float(w) for w in model.field_feature_widths],
                           "norms_key": "field_feature_norms"},
        "spin_sources": [lin(src.linear, f"lr_source_maps.{i}.linear.weight") for i, src in enumerate(model.lr_source_maps)],
        "feature_mixer": [lin(mix, f"layer_feature_mixer.linears.{i}.weight") for i, mix in enumerate(model.layer_feature_mixer.linears)],
        "fukui": biased_readout(model.fukui_source_map, "fukui_source_map"),
        "field_updates": updates,
        "graph_longrange": str(getattr(graph_longrange, "__version__", "")),
        "field_constant": float(FIELD_CONSTANT / (4 * np.pi))}
    if model.add_local_electron_energy:
        ee = model.local_electron_energy
        need(ee, "OneBodyMLPFieldReadout", "electron-energy readout")
        desc["electron_energy"] = {
            "linear_up_q": lin(ee.linear_up_q, "local_electron_energy.linear_up_q.weight"),
            "linear_up_v": lin(ee.linear_up_v, "local_electron_energy.linear_up_v.weight"),
            "dot_q": uvu(ee.dot_products_q, "local_electron_energy.dot_products_q"),
            "dot_v": uvu(ee.dot_products_v, "local_electron_energy.dot_products_v"),
            "mlp": radial_mlp(ee.mlp, "local_electron_energy.mlp")}
    need(model.external_field_contribution, "DisplacedGTOExternalFieldBlock", "external-field block")
    if tuple(model.external_field_contribution.matrix.shape) != (model.field_feature_norms.numel(), 4):
        raise ValueError("PolarMACE: the external-field block's projection does not match the field features")
    features = model.electric_potential_descriptor.realspace_features
    energy = model.coulomb_energy.realspace_energy
    if energy.density_smearing_width != model.atomic_multipoles_smearing_width:
        raise ValueError("PolarMACE: the Coulomb energy's smearing width differs from the multipoles'")
    desc["electrostatics"] = {
        "feature_offset": float(features.offset), "energy_offset": float(energy.offset),
        "include_feature_self_interaction": bool(features.include_self_interaction),
        "include_energy_self_interaction": bool(energy.include_self_interaction),
        "external_field_key": "external_field_contribution.matrix",
        "feature_prefix": "electric_potential_descriptor.realspace_features",
        "energy_prefix": "coulomb_energy.realspace_energy",
        "reciprocal": {"kspace_cutoff_key": "kspace_cutoff", "density_basis": "coulomb_energy.density_basis",
                       "feature_basis": "electric_potential_descriptor.feature_basis",
                       "feature_self": "electric_potential_descriptor.self_interaction_terms",
                       "energy_self": "coulomb_energy.self_interaction_terms"}}
    for basis in (model.coulomb_energy.density_basis, model.electric_potential_descriptor.feature_basis):
        need(basis.radial_spline, "RadialIntegralDirect", "radial integral")
        if basis.use_spline or basis.spherical_harmonics.normalization != "integral" or not basis.spherical_harmonics.normalize:
            raise ValueError("PolarMACE: a GTO basis other than graph-longrange 0.4's direct, integral-normalised one")
    return desc


def _describe_les(model, describe_readout):
    """MACELES's long-range part: its LES readouts and the constants of the les library's Ewald module, read from the
    model (they are attributes of the pickled module, not in its state_dict)."""
    les = model.les
    ewald = getattr(les, "ewald", None)
    missing = [name for name in ("sigma", "dl", "norm_factor", "remove_self_interaction") if not hasattr(ewald, name)]
    if missing:
        raise ValueError(f"MACELES: the les module's Ewald has no {', '.join(missing)} (an unknown version of the les library)")
    # What MACELES passes to Les is the latent charges only: the library's atom-wise network, fixed charges, dipoles,
    # polarizabilities (and the dielectric scaling they feed) do not enter; Born effective charges are an output.
    return {"readouts": [describe_readout(ro, f"les_readouts.{t}") for t, ro in enumerate(model.les_readouts)],
            "sigma": float(ewald.sigma), "dl": float(ewald.dl), "norm_factor": float(ewald.norm_factor),
            "remove_self_interaction": bool(ewald.remove_self_interaction)}


def random_mace_model(atomic_energies, first="RealAgnosticInteractionBlock", rest="RealAgnosticResidualInteractionBlock",
                      hidden="16x0e", max_ell=3, correlation=3, interactions=2, r_max=4.5, elements=(1, 6, 7, 8), num_bessel=8,
                      radial_mlp=(32, 32, 32), mlp_irreps="16x0e", scale_shift=True, seed=0, model_class=None, **options):
    """A mace-torch model with random weights (MACE's initialisation perturbed by 0.1 N(0, 1), so that every weight
    matters), in torch's current default dtype, for tests and benchmarks against mace-torch itself: any of its
    constructor options (pair_repulsion, distance_transform, heads, ...) pass through; model_class: a ScaleShiftMACE
    subclass to build instead (MACELES, with its les_arguments among the options; PolarMACE, whose random multipoles are
    then made of a realistic size, below). Needs torch and mace."""
    import torch
    from e3nn import o3 as e3nn_o3
    from mace import modules
    torch.manual_seed(seed)
    args = dict(r_max=r_max, num_bessel=num_bessel, num_polynomial_cutoff=5, max_ell=max_ell,
                interaction_cls=modules.interaction_classes[rest], interaction_cls_first=modules.interaction_classes[first],
                num_interactions=interactions, num_elements=len(elements), hidden_irreps=e3nn_o3.Irreps(hidden),
                MLP_irreps=e3nn_o3.Irreps(mlp_irreps), atomic_energies=np.asarray(atomic_energies), avg_num_neighbors=8.0,
                atomic_numbers=list(elements), correlation=correlation, gate=torch.nn.functional.silu, radial_MLP=list(radial_mlp))
    args.update(options)
    if model_class is not None:
        model = model_class(atomic_inter_scale=1.3, atomic_inter_shift=0.1, **args)
    elif scale_shift:
        model = modules.ScaleShiftMACE(atomic_inter_scale=1.3, atomic_inter_shift=0.1, **args)
    else:
        model = modules.MACE(**args)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
        if type(model).__name__ == "PolarMACE":
            # Random weights give charges of tens of e (beyond ENNForce's sanity bounds) and Fukui weights whose sum,
            # which divides, may be near zero: the multipole sources scaled to |q| ~ 0.01-1 e, the weights biased positive.
            for source in model.lr_source_maps:
                source.linear.weight.mul_(0.01)
            model.fukui_source_map.linear_2.weight.mul_(0.1)
            model.fukui_source_map.linear_2.bias.add_(1.0)
            for update in model.field_dependent_charges_maps:
                update.readout.linear_2.weight.mul_(0.01)
                update.readout.linear_2.bias.mul_(0.01)
                update.readout.linear_2.bias[-2:].add_(1.0)  # its last two outputs are the step's Fukui weights
    return model


def mace_graph(numbers, positions, cell, r_max, elements, head=0, dtype=None):
    """The input dict of a mace-torch model for one configuration (Angstrom; cell None: no periodicity): the graph of
    every pair, and in a periodic cell every image, within r_max, by brute force (MACE's edge vector is
    positions[receiver] - positions[sender] + shift). Needs torch."""
    import torch
    dtype = dtype or torch.get_default_dtype()
    pos = torch.tensor(np.asarray(positions), dtype=dtype)
    n = len(numbers)
    if cell is not None:
        cell = np.asarray(cell, dtype=float)
        widths = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
        reach = [int(np.ceil(r_max / w)) + 1 for w in widths]
        images = torch.tensor([(i, j, k) for i in range(-reach[0], reach[0] + 1) for j in range(-reach[1], reach[1] + 1)
                               for k in range(-reach[2], reach[2] + 1)], dtype=dtype)
        cell = torch.tensor(cell, dtype=dtype)
    else:
        cell, images = torch.zeros(3, 3, dtype=dtype), torch.zeros(1, 3, dtype=dtype)
    senders, receivers, unit_shifts = [], [], []
    for image in images:
        vectors = pos[:, None, :] - pos[None, :, :] + (image @ cell)[None, None, :]
        near = vectors.norm(dim=-1) < r_max
        if not image.any():
            near &= ~torch.eye(n, dtype=torch.bool)
        receiver, sender = torch.nonzero(near, as_tuple=True)
        senders.append(sender)
        receivers.append(receiver)
        unit_shifts.append(image.expand(sender.numel(), 3))
    sender, receiver, unit_shifts = torch.cat(senders), torch.cat(receivers), torch.cat(unit_shifts)
    onehot = torch.zeros(n, len(elements), dtype=dtype)
    onehot[torch.arange(n), torch.tensor([list(elements).index(int(z)) for z in numbers])] = 1.0
    return {"positions": pos, "node_attrs": onehot, "edge_index": torch.stack([sender, receiver]), "shifts": unit_shifts @ cell,
            "unit_shifts": unit_shifts, "cell": cell, "batch": torch.zeros(n, dtype=torch.long), "ptr": torch.tensor([0, n]),
            "head": torch.tensor([head]), "pbc": torch.tensor([[cell is not None and bool(cell.any())] * 3])}


def polar_graph(numbers, positions, cell, r_max, elements, total_charge=0, multiplicity=1, dtype=None, external_field=None):
    """mace_graph with PolarMACE's inputs: the total charge and spin multiplicity, the external field (mace's convention:
    the external potential's gradient, -E, in eV/A/e; None: zero), and a cell, rcell
    (2 pi inv(cell)^T, as mace's AtomicData has it) and volume even with open boundaries (cell None: graph-longrange's
    k-vector set-up fails on a zero cell; with pbc False it is unused). Needs torch."""
    import torch
    dtype = dtype or torch.get_default_dtype()
    data = mace_graph(numbers, positions, cell, r_max, elements, dtype=dtype)
    box = torch.tensor(np.asarray(cell), dtype=dtype) if cell is not None else torch.eye(3, dtype=dtype) * 30.0
    data.update({"total_charge": torch.tensor([float(total_charge)], dtype=dtype), "total_spin": torch.tensor([float(multiplicity)], dtype=dtype),
                 "fermi_level": torch.tensor([0.0], dtype=dtype), "external_field": torch.tensor(np.reshape(external_field if external_field is not None else np.zeros(3), (1, 3)), dtype=dtype), "cell": box,
                 "rcell": 2 * np.pi * torch.linalg.inv(box.T), "volume": torch.linalg.det(box).reshape(1)})
    return data


def _offsets(shapes):
    out, offset = [], 0
    for s in shapes:
        out.append(offset)
        offset += int(np.prod(s))
    return out


def convert_mace_model(model_path, output, head=None):
    """Convert a MACE ``.model`` file (torch.save of the module), keeping one head (select_head). Needs torch and
    mace importable. A float32 model converts exactly: its float32 weights and tensors are exact in double."""
    import torch
    # A .model file is a pickled module, not a state_dict: torch >= 2.6 loads only weights by default.
    model = torch.load(model_path, map_location="cpu", weights_only=False)
    hp = describe_mace_model(model)
    sd = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}  # in the dtype the file stores
    arch, tensors = convert(hp, sd, head)
    modelfile.write(output, arch, tensors)
    return arch


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description="Convert a MACE model to an openmm-enn model file")
    parser.add_argument("source", help="a MACE .model file, or a folder with hyperparameters.json and state_dict.npz")
    parser.add_argument("output", help="the model file to write")
    parser.add_argument("--head", help="the head of a multi-head model to keep (default: the only one, or 'default')")
    args = parser.parse_args(argv)
    if os.path.isdir(args.source):
        convert_fixture(args.source, args.output, args.head)
    else:
        convert_mace_model(args.source, args.output, args.head)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
