"""Build openmm-enn models with random weights, for tests and as starting points for training.

Every architectural option of the file format can be produced: any number of layers, residual
or not, hidden irreps with any l <= 3 and either parity, correlation 1-3, linear or nonlinear
readouts, a charge head, O(3) or SO(3) symmetry, and MACE's materials terms (density normalisation, the Agnesi
distance transform, ZBL pair repulsion; format version 3). Wigner 3j blocks and U tensors come from openmmenn.o3.
"""
import numpy as np

from . import modelfile, o3
from .o3 import irreps_str, parse_irreps

# Covalent radii (Angstrom; Cordero et al. 2008, the table ase.data.covalent_radii and MACE use) of the elements the
# test models are built with, for the Agnesi transform and ZBL.
COVALENT_RADII = {1: 0.31, 6: 0.76, 7: 0.71, 8: 0.66, 11: 1.66, 14: 1.11, 16: 1.05, 17: 1.02}


def _simplify(entries):
    out = []
    for m, l, p in entries:
        if out and out[-1][1:] == (l, p):
            out[-1] = (out[-1][0] + m, l, p)
        else:
            out.append((m, l, p))
    return out


def random_model(elements=(1, 6, 7, 8), channels=8, hidden=("8x0e+8x1o", "8x0e"), residual=(False, True),
                 correlation=3, sh_lmax=3, message_lmax=3, r_max=4.5, num_bessel=8, envelope_p=5,
                 radial_hidden=(16, 16), readout_hidden=8, charge_head=False, symmetry="O3",
                 activation="silu", seed=0, weight_std=1.0, units=("eV", "Angstrom"), avg_num_neighbors=8.0,
                 message_parities="natural", energy_scale=0.7, charge_offsets=None, frozen_charges=False,
                 coulomb=False, gaussian_sigma=None, gaussian_self_energy=True, density_normalization=False,
                 distance_transform=None, pair_repulsion=False, nonlinear=False, apply_cutoff=True, joint_embedding=False,
                 latent_charges=False, coulomb_constant=None, truncated_reciprocal_dl=None, charge_scale=1.0):
    """Return (architecture, tensors) of a model with N(0, weight_std^2) weights.

    message_parities: "natural" gives messages channels x (0e+1o+2e+...), as MACE does; "both"
    adds the other parity of every l, so hidden features of unnatural parity (0o, 1e) take part.
    charge_offsets: per-element charges added by the charge head; with frozen_charges the head's
    readout weights are zero, so the charges are exactly these (tests of the electrostatics).
    coulomb: the model's energy includes the Coulomb energy of its predicted charges between its own
    atoms (charge_head.coulomb.included); gaussian_sigma: that term's Gaussian damping width (length
    unit), None for point charges; gaussian_self_energy: that term includes the Gaussian charges' self
    energies (which make it positive definite).
    density_normalization: every layer's message is divided by 1 + its node density (MACE's density blocks);
    distance_transform: "agnesi" (MACE's constants a, q, p) or "soft" (alpha 4); pair_repulsion: MACE's ZBL term.
    nonlinear: every layer is MACE's non-linear block (RadialMLP with LayerNorm over the basis and element embeddings,
    edge irreps of half the channels, density normalisation with alpha and beta, gate); apply_cutoff False: the
    envelope on the radial outputs; joint_embedding: the total charge (-5..5) and multiplicity (1..5) embedded, with
    an embedding readout (format version 4). Lengths in Angstrom.
    latent_charges: MACELES's charge head (format version 5): a charge readout of every layer (linear, the last one
    like the energy's), summed, unconstrained; coulomb_constant: the constant of the model's own Coulomb term (energy x
    length / e^2) where it is not 1/(4 pi eps0); truncated_reciprocal_dl: the periodic sum it was trained with, the
    les library's reciprocal sum truncated at |k| <= 2 pi / dl. charge_scale: the charge head's output weights (each charge
    readout's last linear) times this, for charges of a realistic size (random weights give hundredths of e).
    """
    rng = np.random.default_rng(seed)
    parity = symmetry == "O3"
    nel = len(elements)
    tensors = {}
    act = {"function": activation, "scale": 1.679176792398942 if activation == "silu" else 1.0}

    def weights(name, shape, std=1.0):
        tensors[name] = rng.normal(0.0, weight_std * std, size=shape)
        return name

    def linear(name, ins, outs, per_element=False):
        paths, count = [], 0
        fan_in = {}
        for i, (m1, l1, p1) in enumerate(ins):
            for j, (m2, l2, p2) in enumerate(outs):
                if (l1, p1) == (l2, p2):
                    fan_in[j] = fan_in.get(j, 0) + m1
        for i, (m1, l1, p1) in enumerate(ins):
            for j, (m2, l2, p2) in enumerate(outs):
                if (l1, p1) == (l2, p2):
                    paths.append([i, j, 1.0 / np.sqrt(fan_in[j])])
                    count += m1 * m2
        spec = {"irreps_in": irreps_str(ins), "irreps_out": irreps_str(outs), "paths": paths}
        if per_element:
            spec["per_element"] = True
        spec["weight"] = weights(name, (nel, count) if per_element else (count,))
        return spec

    def readout(name, ins):
        if readout_hidden:
            mid = [(readout_hidden, 0, 1)]
            return {"type": "nonlinear", "linear_1": linear(name + ".linear_1", ins, mid), "activation": act,
                    "linear_2": linear(name + ".linear_2", mid, [(1, 0, 1)])}
        return {"type": "linear", "linear": linear(name + ".linear", ins, [(1, 0, 1)])}

    sh = [(1, l, (-1) ** l) for l in range(sh_lmax + 1)]
    message = [(channels, l, (-1) ** l) for l in range(message_lmax + 1)]
    if message_parities == "both":
        message = [(channels, l, p) for l in range(message_lmax + 1) for p in ((-1) ** l, -(-1) ** l)]
    w3j = {(1, l - 1, l) for l in range(2, sh_lmax + 1)}
    arch = {
        "units": {"energy": units[0], "length": units[1]},
        "elements": list(elements), "symmetry": symmetry, "r_max": r_max,
        "radial_basis": {"type": "bessel", "num_basis": num_bessel, "prefactor": float(np.sqrt(2.0 / r_max)),
                         "frequencies": "radial.frequencies", "envelope": "polynomial", "envelope_p": envelope_p},
        "spherical_harmonics": {"lmax": sh_lmax, "normalization": "component"},
        "layers": [],
        "energy": {"e0": list(rng.normal(-1.0, 0.5, size=nel)), "scale": energy_scale, "shift": 0.05},
    }
    tensors["radial.frequencies"] = np.pi * np.arange(1, num_bessel + 1) / r_max
    radii = [COVALENT_RADII[z] for z in elements] if distance_transform or pair_repulsion else None
    if distance_transform == "agnesi":
        arch["radial_basis"]["distance_transform"] = {"type": "agnesi", "a": 1.0805, "q": 0.9183, "p": 4.5791,
                                                      "covalent_radii": radii}
    elif distance_transform == "soft":
        arch["radial_basis"]["distance_transform"] = {"type": "soft", "alpha": 4.0, "covalent_radii": radii}
    elif distance_transform:
        raise ValueError(f"distance transform {distance_transform!r}: 'agnesi' or 'soft'")
    if pair_repulsion:
        arch["pair_repulsion"] = {"type": "zbl", "c": [0.1818, 0.5099, 0.2802, 0.02817], "exponents": [3.2, 0.9423, 0.4028, 0.2016],
                                  "a_prefactor": 0.4543, "a_exponent": 0.3, "bohr": 0.529, "coulomb": 14.3996,
                                  "envelope_p": envelope_p, "covalent_radii": radii}
    if density_normalization or distance_transform or pair_repulsion:
        arch["format_version"] = 3
    if nonlinear or not apply_cutoff or joint_embedding:
        arch["format_version"] = 4
    if not apply_cutoff:
        arch["radial_basis"]["apply_cutoff"] = False
    previous = [(channels, 0, 1)]
    layer_outputs = []
    arch["embedding"] = linear("embedding.weight", [(nel, 0, 1)], previous)
    torch_silu = {"function": "silu", "scale": 1.0}

    def radial_mlp(name, sizes):
        """MACE's RadialMLP: biases, and a LayerNorm before each hidden activation."""
        return {"sizes": sizes, "activation": torch_silu,
                "weights": [weights(f"{name}.{k}.weight", (sizes[k], sizes[k + 1])) for k in range(len(sizes) - 1)],
                "weight_scales": [1.0 / np.sqrt(h) for h in sizes[:-1]],
                "biases": [weights(f"{name}.{k}.bias", (sizes[k + 1],), std=0.3) for k in range(len(sizes) - 1)],
                "layer_norms": [{"weight": weights(f"{name}.{k}.norm.weight", (sizes[k + 1],), std=0.3),
                                 "bias": weights(f"{name}.{k}.norm.bias", (sizes[k + 1],), std=0.3), "eps": 1e-5}
                                for k in range(len(sizes) - 2)]}

    if joint_embedding:
        for name, (classes, dim) in {"charge": (11, 4), "spin": (6, 4)}.items():
            weights(f"joint.{name}", (classes, dim))
        tensors["joint.projection"] = rng.normal(0.0, weight_std / np.sqrt(8), size=(8, channels))
        arch["joint_embedding"] = {
            "inputs": [{"source": "total_charge", "num_classes": 11, "offset": 5, "dim": 4, "table": "joint.charge"},
                       {"source": "spin_multiplicity", "num_classes": 6, "offset": 0, "dim": 4, "table": "joint.spin"}],
            "projection": "joint.projection", "readout": linear("joint.readout.weight", previous, [(1, 0, 1)])}
    for t, (hid, res) in enumerate(zip(hidden, residual)):
        p = f"layers.{t}"
        out = parse_irreps(hid)
        # The non-linear block convolves the edge irreps (half the channels), the others the layer input.
        conv_in = [(max(1, m // 2), l, q) for m, l, q in previous] if nonlinear else previous
        scalars_in = sum(m for m, l, _ in previous if l == 0)
        radial_inputs = num_bessel + (2 * scalars_in if nonlinear else 0)
        # conv_tp: every path from the layer input and the harmonics to a message irrep.
        paths = []
        for i, (m1, l1, p1) in enumerate(conv_in):
            for j, (_, l2, p2) in enumerate(sh):
                for (_, l3, p3) in message:
                    if abs(l1 - l2) <= l3 <= l1 + l2 and (not parity or p1 * p2 == p3):
                        paths.append((i, j, l3, p3, m1))
                        w3j.add((l1, l2, l3))
        rank = {(l, q): n for n, (_, l, q) in enumerate(message)}
        order = sorted(range(len(paths)), key=lambda k: rank[(paths[k][2], paths[k][3])])
        # Outputs are sorted in message order, so the linear after the product sees merged blocks.
        position = {k: n for n, k in enumerate(order)}
        tp_out = [(paths[k][4], paths[k][2], paths[k][3]) for k in order]
        tp_paths = [[i, j, position[k], float(np.sqrt(2 * l3 + 1))] for k, (i, j, l3, p3, m1) in enumerate(paths)]
        num_weights = sum(m1 for *_, m1 in paths)
        sizes = [radial_inputs, *radial_hidden, num_weights]
        if nonlinear:
            mlp = radial_mlp(f"{p}.radial_mlp", sizes)
        else:
            mlp = {"sizes": sizes, "activation": act,
                   "weights": [weights(f"{p}.radial_mlp.{k}.weight", (sizes[k], sizes[k + 1])) for k in range(len(sizes) - 1)],
                   "weight_scales": [1.0 / np.sqrt(h) for h in sizes[:-1]]}
        msg_in = _simplify(tp_out)
        features = [(l, q) for _, l, q in message]
        contractions = []
        for k, (m, L, P) in enumerate(out):
            us, ws = [], []
            for nu in range(1, correlation + 1):
                u = o3.symmetric_contraction_basis(features, (L, P), nu, parity=parity)
                tensors[f"{p}.product.{k}.U{nu}"] = u
                us.append(f"{p}.product.{k}.U{nu}")
                ws.append(weights(f"{p}.product.{k}.W{nu}", (nel, u.shape[-1], channels), std=0.5 / np.sqrt(max(1, u.shape[-1]))))
            contractions.append({"irrep_out": f"{L}{'e' if P > 0 else 'o'}", "correlation": correlation, "U": us, "weights": ws})
        contraction_out = [(channels, L, P) for _, L, P in out]
        layer = {
            "interaction": "residual" if res else "non_residual",
            "avg_num_neighbors": avg_num_neighbors,
            "linear_up": linear(f"{p}.linear_up.weight", previous, conv_in),
            "conv_tp": {"irreps_in1": irreps_str(conv_in), "irreps_in2": irreps_str(sh), "irreps_out": irreps_str(tp_out),
                        "paths": tp_paths},
            "radial_mlp": mlp,
            "linear": linear(f"{p}.linear.weight", msg_in, message),
            "skip": (linear(f"{p}.skip.weight", previous, out, per_element=True) if res
                     else linear(f"{p}.skip.weight", message, message, per_element=True)),
            "product": {"contractions": contractions, "linear": linear(f"{p}.product.linear.weight", contraction_out, out)},
            "readout": readout(f"{p}.readout", out),
        }
        if density_normalization and not nonlinear:
            layer["density_normalization"] = {"weights": weights(f"{p}.density.weight", (num_bessel,)),
                                              "weight_scale": 1.0 / np.sqrt(num_bessel)}
        if nonlinear:  # MACE's RealAgnosticResidualNonLinearInteractionBlock
            if not res or message_parities != "natural":
                raise ValueError("the non-linear block is residual, with messages of natural parity")
            gated = [e for e in message if e[1] > 0]
            gate_in = [(channels * (1 + len(gated)), 0, 1)] + gated
            starts = np.cumsum([0] + [m * (2 * l + 1) for m, l, _ in gate_in])
            layer.update({
                "interaction": "nonlinear", "avg_num_neighbors": 1.0,
                "edge_embeddings": {"source": linear(f"{p}.source.weight", [(nel, 0, 1)], [(scalars_in, 0, 1)]),
                                    "target": linear(f"{p}.target.weight", [(nel, 0, 1)], [(scalars_in, 0, 1)])},
                "density_normalization": {"mlp": radial_mlp(f"{p}.density", [radial_inputs, 8, 1]), "alpha": 2.0 + rng.random(),
                                          "beta": 0.5 + rng.random()},
                "linear": linear(f"{p}.linear.weight", msg_in, gate_in),
                "linear_residual": linear(f"{p}.linear_residual.weight", conv_in, gate_in),
                "gate": {"irreps_in": irreps_str(gate_in), "irreps_out": irreps_str(message), "scalars": [0, channels],
                         "gates": [channels, channels * len(gated)],
                         "gated": [[int(starts[k + 1]), channels, 2 * l + 1, k * channels] for k, (_, l, _) in enumerate(gated)],
                         "scalar_activation": act, "gate_activation": {"function": "sigmoid", "scale": 1.8467055342154763}},
                "linear_2": linear(f"{p}.linear_2.weight", message, message)})
        arch["layers"].append(layer)
        layer_outputs.append(out)
        previous = out
    if charge_head:
        if latent_charges:
            last = len(layer_outputs) - 1
            arch["charge_head"] = {
                "readouts": [readout(f"charge_head.readouts.{t}", outs) if t == last else
                             {"type": "linear", "linear": linear(f"charge_head.readouts.{t}.linear", outs, [(1, 0, 1)])}
                             for t, outs in enumerate(layer_outputs)],
                "total_charge": "unconstrained"}
            arch["format_version"] = 5
        else:
            arch["charge_head"] = {"readout": readout("charge_head.readout", previous)}
        for name in tensors:
            if name.startswith("charge_head."):
                if frozen_charges:
                    tensors[name] = np.zeros_like(tensors[name])
                elif not name.endswith("linear_1"):
                    tensors[name] = tensors[name] * charge_scale
        if charge_offsets is not None:
            arch["charge_head"]["element_offsets"] = [float(x) for x in charge_offsets]
        declaration = {"included": bool(coulomb)}
        if coulomb:
            declaration["damping"] = "none" if gaussian_sigma is None else "gaussian"
            if gaussian_sigma is not None:
                declaration["gaussian_sigma"] = float(gaussian_sigma)
                declaration["gaussian_self_energy"] = bool(gaussian_self_energy)
            if coulomb_constant is not None:
                declaration["constant"] = float(coulomb_constant)
                arch["format_version"] = 5
            if truncated_reciprocal_dl is not None:
                declaration["periodic"] = {"method": "truncated_reciprocal", "dl": float(truncated_reciprocal_dl)}
                arch["format_version"] = 5
        elif gaussian_sigma is not None:
            raise ValueError("gaussian_sigma damps the model's own Coulomb term: pass coulomb=True")
        arch["charge_head"]["coulomb"] = declaration
    for l1, l2, l3 in sorted(w3j):
        tensors[f"w3j.{l1}.{l2}.{l3}"] = o3.wigner_3j(l1, l2, l3)
    return arch, tensors


def write_random_model(path, **kwargs):
    arch, tensors = random_model(**kwargs)
    modelfile.write(path, arch, tensors)
    return arch
