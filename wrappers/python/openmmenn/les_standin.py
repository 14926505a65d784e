"""A stand-in for the les library (github.com/ChengUCB/les, not on PyPI) that mace-torch's MACELES calls, written for
openmm-enn's tests and benchmarks from the published formula (B. Cheng, "Latent Ewald summation for machine learning of
long-range interactions", arXiv:2408.15165, npj Comput. Mater. 2025) and the library's documented conventions; torch, independent
of the plugin's C++ code. Only what MACELES uses: Les(les_arguments)(latent_charges, positions, cell, batch) -> E_lr.

* open boundaries (cell None or of zero volume): (k/2) sum_{i != j} q_i q_j erf(r_ij / (sqrt(2) sigma)) / r_ij;
* periodic cells: (norm_factor / V) sum_k exp(-sigma^2 k^2 / 2) / k^2 |S(k)|^2 over the k vectors n . b, n in
  [-N_a, N_a]^3 with N_a = max(1, floor(|a_a| / dl)), 0 < |k| <= 2 pi / dl (all of them, both k and -k);
* minus the Gaussian self energies k sum_i q_i^2 / (sigma sqrt(2 pi)) where remove_self_interaction (in open
  boundaries, added where not), with k = norm_factor / 2 pi (the library's default norm_factor was 90.0474 until
  2026-04, 90.4756 since; a model keeps the one it was built with).

install() makes it importable as `les` (unless the real library is).
"""
import math
import sys

import torch


class Ewald(torch.nn.Module):
    def __init__(self, sigma=1.0, dl=2.0, norm_factor=90.0474, remove_self_interaction=True):
        super().__init__()
        self.sigma, self.dl, self.norm_factor, self.remove_self_interaction = sigma, dl, norm_factor, remove_self_interaction

    def forward(self, q, r, cell):
        k_coulomb = self.norm_factor / (2 * math.pi)
        self_energy = k_coulomb * (q * q).sum() / (self.sigma * math.sqrt(2 * math.pi))
        if cell is None or torch.linalg.det(cell) < 1e-6:  # open boundaries: every pair
            d = torch.linalg.norm(r[:, None, :] - r[None, :, :] + torch.eye(len(q), dtype=r.dtype)[..., None], dim=-1)
            pair = torch.special.erf(d / (math.sqrt(2) * self.sigma)) / d * (1 - torch.eye(len(q), dtype=r.dtype))
            energy = 0.5 * k_coulomb * (q[:, None] * q[None, :] * pair).sum()
            return energy if self.remove_self_interaction else energy + self_energy
        reciprocal = 2 * math.pi * torch.linalg.inv(cell).T
        extent = [max(1, int(float(torch.linalg.norm(a)) / self.dl)) for a in cell]
        grid = torch.stack(torch.meshgrid(*[torch.arange(-m, m + 1, dtype=r.dtype) for m in extent], indexing="ij"), -1).reshape(-1, 3)
        k = grid @ reciprocal
        k2 = (k * k).sum(-1)
        keep = (k2 > 0) & (k2 <= (2 * math.pi / self.dl) ** 2)
        k, k2 = k[keep], k2[keep]
        phase = r @ k.T
        s2 = (q @ torch.cos(phase)) ** 2 + (q @ torch.sin(phase)) ** 2
        energy = self.norm_factor / torch.linalg.det(cell) * (torch.exp(-0.5 * self.sigma ** 2 * k2) / k2 * s2).sum()
        return energy - self_energy if self.remove_self_interaction else energy


class Les(torch.nn.Module):
    def __init__(self, les_arguments=None):
        super().__init__()
        a = dict(les_arguments or {})
        self.ewald = Ewald(sigma=a.get("sigma", 1.0), dl=a.get("dl", 2.0), norm_factor=a.get("norm_factor", 90.0474),
                           remove_self_interaction=a.get("remove_self_interaction", True))

    def forward(self, latent_charges, positions, cell, batch=None, compute_energy=True, compute_bec=False, bec_output_index=None, **_):
        if batch is None:
            batch = torch.zeros(len(positions), dtype=torch.long)
        energies = [self.ewald(latent_charges[batch == g], positions[batch == g], cell[g]) for g in range(int(batch.max()) + 1)]
        return {"E_lr": torch.stack(energies), "latent_charges": latent_charges, "BEC": None}


def install():
    """Make this module importable as `les`, unless the les library is installed; returns the module used."""
    try:
        import les  # noqa: F401
        return sys.modules["les"]
    except ImportError:
        sys.modules["les"] = sys.modules[__name__]
        return sys.modules[__name__]
