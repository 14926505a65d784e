"""The openmm-enn network in PyTorch: the same architecture the C++ platforms evaluate.

Built from a model file's architecture and tensors (any model the file format describes: converted
MACE models, openmmenn.builder models, trained models), it computes energies, forces (autograd),
charges and dipoles, and exports back to the model file. Works with PyTorch 1.13 (Debian) and newer.
Everything is in the model's own units; positions in, energies out.

    model = TorchENNModel.from_file("model.enn")
    result = model.evaluate(positions, atomic_numbers, cell=None, total_charge=0.0)
    result["energy"], result["forces"], result["charges"], result["dipole"]

A model whose charge head declares its own Coulomb term (charge_head.coulomb.included) adds
E_coul(q) to the network's energy, as every C++ platform does: the direct (optionally Gaussian-damped)
sum over all pairs of a configuration in vacuum, the Ewald sum of point charges plus the short-range
damping correction in a periodic cell.
"""
import numpy as np
import torch

from . import modelfile
from .o3 import parse_irreps

# Tensors that training may change; everything else (Wigner 3j, U, frequencies) is a fixed buffer.
_TRAINABLE_SUFFIXES = (".weight",)


def _irreps(text):
    """[(multiplicity, degree, offset in the feature vector)], and the total dimension."""
    entries, offset = [], 0
    for mul, l, _ in parse_irreps(text):
        entries.append((mul, l, offset))
        offset += mul * (2 * l + 1)
    return entries, offset


def neighbor_list(positions, cutoff, cell=None):
    """Edges (receiver, sender, shift) with |x_r - x_s + shift| < cutoff; every periodic image when
    `cell` (rows are lattice vectors) is given, so cells smaller than 2 cutoff work."""
    pos = np.asarray(positions, dtype=float)
    n = len(pos)
    receivers, senders, shifts = [], [], []
    if cell is None:
        d = pos[:, None, :] - pos[None, :, :]
        r = np.linalg.norm(d, axis=-1)
        mask = (r < cutoff) & ~np.eye(n, dtype=bool)
        rec, sen = np.nonzero(mask)
        return rec, sen, np.zeros((len(rec), 3))
    cell = np.asarray(cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)]
    ranges = [int(np.ceil(cutoff / w + 0.5)) for w in widths]
    # Pair differences wrapped to fractional coordinates in [-0.5, 0.5], so unwrapped positions work.
    raw = pos[:, None, :] - pos[None, :, :]
    wrap = -np.round(raw @ np.linalg.inv(cell)) @ cell
    for a in range(-ranges[0], ranges[0] + 1):
        for b in range(-ranges[1], ranges[1] + 1):
            for c in range(-ranges[2], ranges[2] + 1):
                shift = wrap + np.array([a, b, c]) @ cell
                r = np.linalg.norm(raw + shift, axis=-1)
                self_pair = np.eye(n, dtype=bool) & (np.linalg.norm(shift, axis=-1) == 0)
                mask = (r < cutoff) & ~self_pair
                rec, sen = np.nonzero(mask)
                receivers.append(rec)
                senders.append(sen)
                shifts.append(shift[rec, sen])
    return np.concatenate(receivers), np.concatenate(senders), np.concatenate(shifts)


class TorchENNModel(torch.nn.Module):
    def __init__(self, architecture, tensors, dtype=torch.float64):
        super().__init__()
        self.arch = architecture
        self.dtype = dtype
        self._names = {}
        for name, value in tensors.items():
            t = torch.as_tensor(np.asarray(value), dtype=dtype)
            key = name.replace(".", "__")
            self._names[name] = key
            if name.endswith(_TRAINABLE_SUFFIXES) and not name.startswith("w3j."):
                self.register_parameter(key, torch.nn.Parameter(t))
            else:
                self.register_buffer(key, t)
        a = architecture
        self.elements = list(a["elements"])
        self.r_max = float(a["r_max"])
        self.lmax = int(a["spherical_harmonics"]["lmax"])
        self.charge_head = a.get("charge_head")
        if self.charge_head is not None:
            latent = {"readouts": "charge readouts of every layer", "total_charge": "unconstrained charges"}
            for key, what in latent.items():
                if key in self.charge_head:
                    raise ValueError(f"openmmenn.torch_model: MACELES's charge head ({what}) is not implemented here")
            if "periodic" in self.charge_head.get("coulomb", {}):
                raise ValueError("openmmenn.torch_model: the truncated periodic sum (charge_head.coulomb.periodic) is not implemented here")
        self.coulomb_included, self.gaussian_sigma, self.gaussian_self_energy = modelfile.coulomb_declaration(a)
        self.coulomb_constant = modelfile.coulomb_constant(a)
        # |Y_l|^2 = 2l + 1 normalisation of the harmonics recursion, as the C++ computes it.
        self._sh_norm = [1.0] * (self.lmax + 1)
        with torch.no_grad():
            u = torch.tensor([[0.36, 0.48, 0.8]], dtype=dtype)
            for l in range(2, self.lmax + 1):
                y = self._harmonics(u, upto=l, normalized_upto=l - 1)[:, l * l:]
                self._sh_norm[l] = float(np.sqrt((2 * l + 1) / float((y * y).sum())))

    @classmethod
    def from_file(cls, path, dtype=torch.float64):
        arch, tensors = modelfile.read(path)
        return cls(arch, tensors, dtype)

    def t(self, name):
        return getattr(self, self._names[name])

    def export(self, path):
        """Write the model, with its current parameters, to a model file."""
        tensors = {name: self.t(name).detach().cpu().double().numpy() for name in self._names}
        modelfile.write(path, self.arch, tensors)

    # ---- building blocks ---------------------------------------------------------------------

    def _harmonics(self, u, upto=None, normalized_upto=None):
        upto = self.lmax if upto is None else upto
        ys = [torch.ones_like(u[:, :1])]
        if upto >= 1:
            ys.append(np.sqrt(3.0) * u)
        for l in range(2, upto + 1):
            c = self.t(f"w3j.1.{l - 1}.{l}")
            y = torch.einsum("ijk,ni,nj->nk", c, ys[1], ys[l - 1])
            if normalized_upto is None or l <= normalized_upto:
                y = y * self._sh_norm[l]
            ys.append(y)
        return torch.cat(ys, dim=1)

    def _activation(self, spec, x):
        f = torch.nn.functional.silu(x) if spec["function"] == "silu" else torch.tanh(x)
        return spec["scale"] * f

    def _linear(self, spec, x, species=None):
        ins, _ = _irreps(spec["irreps_in"])
        outs, dim_out = _irreps(spec["irreps_out"])
        w = self.t(spec["weight"])
        if spec.get("per_element"):
            w = w[species]  # (N, numel)
        out = x.new_zeros(x.shape[0], dim_out)
        offset = 0
        blocks = {}
        for i_in, i_out, pw in spec["paths"]:
            mul_in, l, o_in = ins[i_in]
            mul_out, _, o_out = outs[i_out]
            d = 2 * l + 1
            xin = x[:, o_in:o_in + mul_in * d].reshape(-1, mul_in, d)
            if spec.get("per_element"):
                wb = w[:, offset:offset + mul_in * mul_out].reshape(-1, mul_in, mul_out)
                y = torch.einsum("nud,nuw->nwd", xin, wb)
            else:
                wb = w[offset:offset + mul_in * mul_out].reshape(mul_in, mul_out)
                y = torch.einsum("nud,uw->nwd", xin, wb)
            blocks.setdefault((o_out, mul_out * d), []).append(pw * y.reshape(-1, mul_out * d))
            offset += mul_in * mul_out
        pieces = []
        for (o_out, size), ys in blocks.items():
            pieces.append((o_out, size, sum(ys)))
        if not pieces:
            return out
        out = out.clone()
        for o_out, size, y in pieces:
            out[:, o_out:o_out + size] = out[:, o_out:o_out + size] + y
        return out

    def _readout(self, spec, h):
        if spec["type"] == "linear":
            return self._linear(spec["linear"], h)[:, 0]
        hidden = self._activation(spec["activation"], self._linear(spec["linear_1"], h))
        return self._linear(spec["linear_2"], hidden)[:, 0]

    def _contraction(self, layer, m, species):
        """B[n, c, M] = sum_nu sum_k W_nu[z, k, c] U_nu[M, a.., k] A[n, c, a1]..A[n, c, a_nu]."""
        msg, _ = _irreps(layer["linear"]["irreps_out"])
        channels = msg[0][0]
        # A[n, c, f]: per channel, its components of every message irrep in order.
        parts = [m[:, o:o + mul * (2 * l + 1)].reshape(-1, mul, 2 * l + 1) for mul, l, o in msg]
        a = torch.cat(parts, dim=2)
        outs = []
        for con in layer["product"]["contractions"]:
            total = 0
            for nu in range(1, con["correlation"] + 1):
                u = self.t(con["U"][nu - 1])          # (M, D..., K)
                w = self.t(con["weights"][nu - 1])[species]  # (N, K, C)
                t = torch.einsum("...k,nkc->nc...", u, w)     # (N, C, M, D...)
                for _ in range(nu):
                    t = torch.einsum("ncM...a,nca->ncM...", t, a)
                total = total + t                              # (N, C, M)
            outs.append(total.reshape(m.shape[0], -1))
        return torch.cat(outs, dim=1)

    # ---- the network ---------------------------------------------------------------------

    def forward(self, positions, species, receivers, senders, shifts, total_charge=0.0, batch=None, num_graphs=1, cells=None):
        """Energies, per-atom energies and charges. positions (N, 3) requires_grad for forces.

        Several configurations can form one disjoint graph: batch[i] is atom i's configuration and
        total_charge a tensor of num_graphs values; out["energies"] then has one energy each.
        cells: None, or one entry per configuration (rows are lattice vectors; None for a molecule or
        cluster in vacuum), used by the model's own Coulomb term (Ewald sum where periodic)."""
        a = self.arch
        vec = positions[receivers] - positions[senders] + shifts
        r = torch.linalg.norm(vec, dim=1)
        u = vec / r[:, None]
        y = self._harmonics(u)
        rb = a["radial_basis"]
        p = float(rb["envelope_p"])
        x = r / self.r_max
        env = 1 - (p + 1) * (p + 2) / 2 * x ** p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
        freq = self.t(rb["frequencies"])
        basis = rb["prefactor"] * torch.sin(freq[None, :] * r[:, None]) / r[:, None] * env[:, None]
        n = positions.shape[0]
        onehot = torch.nn.functional.one_hot(species, len(self.elements)).to(self.dtype)
        h = self._linear(a["embedding"], onehot)
        energy_nodes = torch.zeros(n, dtype=self.dtype, device=positions.device)
        for layer in a["layers"]:
            residual = layer["interaction"] == "residual"
            sc = self._linear(layer["skip"], h, species) if residual else None
            hup = self._linear(layer["linear_up"], h)
            mlp = layer["radial_mlp"]
            t = basis
            for k, (wname, scale) in enumerate(zip(mlp["weights"], mlp["weight_scales"])):
                t = (t @ self.t(wname)) * scale
                if k + 1 < len(mlp["weights"]):
                    t = self._activation(mlp["activation"], t)
            tp = layer["conv_tp"]
            in1, _ = _irreps(tp["irreps_in1"])
            in2, _ = _irreps(tp["irreps_in2"])
            outs, dim_tp = _irreps(tp["irreps_out"])
            x1 = hup[senders]
            messages = [None] * len(outs)
            offset = 0
            for i1, i2, io, pw in tp["paths"]:
                mul, l1, o1 = in1[i1]
                _, l2, o2 = in2[i2]
                _, l3, _ = outs[io]
                c = self.t(f"w3j.{l1}.{l2}.{l3}")
                xa = x1[:, o1:o1 + mul * (2 * l1 + 1)].reshape(-1, mul, 2 * l1 + 1)
                yb = y[:, o2:o2 + 2 * l2 + 1]
                wu = t[:, offset:offset + mul]
                messages[io] = pw * wu[:, :, None] * torch.einsum("eui,ej,ijk->euk", xa, yb, c)
                offset += mul
            edge_msg = torch.cat([mm.reshape(mm.shape[0], -1) for mm in messages], dim=1)
            m = torch.zeros(n, dim_tp, dtype=self.dtype, device=positions.device).index_add(0, receivers, edge_msg)
            m = self._linear(layer["linear"], m) / layer["avg_num_neighbors"]
            if not residual:
                m = self._linear(layer["skip"], m, species)
            b = self._contraction(layer, m, species)
            h = self._linear(layer["product"]["linear"], b)
            if residual:
                h = h + sc
            energy_nodes = energy_nodes + a["energy"]["scale"] * self._readout(layer["readout"], h)
        e0 = torch.as_tensor(a["energy"]["e0"], dtype=self.dtype, device=positions.device)
        energy_nodes = energy_nodes + e0[species] + a["energy"]["shift"]
        if batch is None:
            batch = torch.zeros(n, dtype=torch.long, device=positions.device)
        energies = torch.zeros(num_graphs, dtype=self.dtype, device=positions.device).index_add(0, batch, energy_nodes)
        out = {"energy": energies.sum(), "energies": energies, "node_energy": energy_nodes}
        if self.charge_head is not None:
            q = self._readout(self.charge_head["readout"], h)
            offsets = self.charge_head.get("element_offsets")
            if offsets is not None:
                q = q + torch.as_tensor(offsets, dtype=self.dtype, device=positions.device)[species]
            # q_i = raw_i + (Q - sum raw) / N within each configuration
            counts = torch.zeros(num_graphs, dtype=self.dtype, device=positions.device).index_add(
                0, batch, torch.ones_like(q))
            sums = torch.zeros(num_graphs, dtype=self.dtype, device=positions.device).index_add(0, batch, q)
            target = torch.as_tensor(total_charge, dtype=self.dtype, device=positions.device).expand(num_graphs)
            out["charges"] = q + ((target - sums) / counts)[batch]
            if self.coulomb_included:
                coulomb = torch.stack([self.coulomb_energy(positions[batch == g], out["charges"][batch == g],
                                                           None if cells is None else cells[g]) for g in range(num_graphs)])
                out["coulomb"] = coulomb
                out["energies"] = energies + coulomb
                out["energy"] = out["energies"].sum()
        return out

    def coulomb_energy(self, pos, q, cell=None, tolerance=1e-9):
        """The model's own Coulomb energy of one configuration (model units). In vacuum the sum over all
        pairs of k q_i q_j f(r), f = 1/r or erf(r / (sqrt(2) sigma)) / r. In a periodic cell the Ewald sum
        of point charges (with the neutralizing background), accurate to about `tolerance` relative,
        plus k q_i q_j (f(r) - 1/r) over the pairs within the real-space cutoff. Gaussian charges with
        their self energy add k q_i^2 / (sigma sqrt(2 pi)) each."""
        k = self.coulomb_constant
        n = pos.shape[0]
        i, j = torch.triu_indices(n, n, 1)

        def damped(r):
            if self.gaussian_sigma is None:
                return 1.0 / r
            return torch.erf(r / (np.sqrt(2.0) * self.gaussian_sigma)) / r

        self_energy = 0.0
        if self.gaussian_self_energy:
            self_energy = k * (q * q).sum() / (self.gaussian_sigma * np.sqrt(2 * np.pi))
        if cell is None:
            r = torch.linalg.norm(pos[i] - pos[j], dim=1)
            return k * (q[i] * q[j] * damped(r)).sum() + self_energy
        cell_np = np.asarray(cell, dtype=float)
        box = torch.as_tensor(cell_np, dtype=pos.dtype)
        volume = abs(np.linalg.det(cell_np))
        spacing = [volume / np.linalg.norm(np.cross(cell_np[(d + 1) % 3], cell_np[(d + 2) % 3])) for d in range(3)]
        cutoff = 0.5 * min(spacing)
        alpha = np.sqrt(-np.log(tolerance)) / cutoff
        # Real space: every image within the cutoff (pairs wrapped to the nearest image first).
        frac = (pos[:, None, :] - pos[None, :, :]) @ torch.linalg.inv(box)
        d0 = (frac - torch.round(frac)) @ box
        energy = 0.0
        for a in (-1, 0, 1):
            for b in (-1, 0, 1):
                for c in (-1, 0, 1):
                    d = d0 + torch.as_tensor([a, b, c], dtype=pos.dtype) @ box
                    r2 = (d * d).sum(-1)
                    mask = r2 < cutoff * cutoff
                    if a == 0 and b == 0 and c == 0:
                        mask = mask & ~torch.eye(n, dtype=torch.bool)
                    r = torch.sqrt(torch.where(mask, r2, torch.ones_like(r2)))
                    qq = (q[:, None] * q[None, :])[mask]
                    pair = torch.erfc(alpha * r[mask]) / r[mask] + (damped(r[mask]) - 1.0 / r[mask])
                    energy = energy + 0.5 * k * (qq * pair).sum()
        # Reciprocal space over k = 2 pi m G (G the reciprocal lattice), |k| up to where exp(-k^2/4a^2) < tolerance.
        recip = 2 * np.pi * np.linalg.inv(cell_np).T
        kmax = 2 * alpha * np.sqrt(-np.log(tolerance))
        mmax = [int(np.ceil(kmax / np.linalg.norm(recip[d]))) for d in range(3)]
        grid = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in mmax], indexing="ij"), -1).reshape(-1, 3)
        kvec = grid @ recip
        k2 = (kvec ** 2).sum(1)
        keep = (k2 > 0) & (k2 <= kmax * kmax)
        kvec, k2 = torch.as_tensor(kvec[keep], dtype=pos.dtype), torch.as_tensor(k2[keep], dtype=pos.dtype)
        phase = pos @ kvec.T
        s2 = (q[:, None] * torch.cos(phase)).sum(0) ** 2 + (q[:, None] * torch.sin(phase)).sum(0) ** 2
        energy = energy + k * 2 * np.pi / volume * (torch.exp(-k2 / (4 * alpha * alpha)) / k2 * s2).sum()
        energy = energy - k * alpha / np.sqrt(np.pi) * (q * q).sum() - k * np.pi * q.sum() ** 2 / (2 * volume * alpha * alpha)
        return energy + self_energy

    def species_of(self, atomic_numbers):
        index = {z: i for i, z in enumerate(self.elements)}
        return torch.as_tensor([index[int(z)] for z in atomic_numbers], dtype=torch.long)

    def evaluate(self, positions, atomic_numbers, cell=None, total_charge=0.0, forces=True):
        """Energy, forces (autograd), charges and dipole (sum q_i x_i) of one configuration."""
        pos = torch.tensor(np.asarray(positions, dtype=float), dtype=self.dtype, requires_grad=forces)
        rec, sen, shifts = neighbor_list(np.asarray(positions, dtype=float), self.r_max, cell)
        out = self.forward(pos, self.species_of(atomic_numbers), torch.as_tensor(rec, dtype=torch.long),
                           torch.as_tensor(sen, dtype=torch.long), torch.as_tensor(shifts, dtype=self.dtype), total_charge,
                           cells=[cell])
        result = {"energy": float(out["energy"])}
        if forces:
            (grad,) = torch.autograd.grad(out["energy"], pos)
            result["forces"] = -grad.detach().numpy()
        if "charges" in out:
            q = out["charges"].detach()
            result["charges"] = q.numpy()
            result["dipole"] = (q[:, None] * pos.detach()).sum(0).numpy()
        return result
