"""MACELES (mace-torch 0.3.16's mace.modules.extensions.MACELES) against the converter, through an OpenMM Context.

The `les` library MACELES calls is not on PyPI, so this test uses a stand-in `les` module (openmmenn.les_standin) written
from the published formula (B. Cheng, "Latent Ewald summation for machine learning of long-range interactions", arXiv:2408.15165,
npj Comput. Mater. 2025) and the les library's documented conventions: Gaussian charges of width sigma; in open boundaries the
energy (k/2) sum_{i != j} q_i q_j erf(r_ij / (sqrt(2) sigma)) / r_ij; in a periodic cell the reciprocal-space sum
(norm_factor / V) sum_k exp(-sigma^2 k^2 / 2) / k^2 |S(k)|^2 over the k vectors n . b (n in [-N_a, N_a]^3,
N_a = max(1, floor(|a_a| / dl))) with 0 < |k| <= 2 pi / dl, minus the self energies k sum_i q_i^2 / (sigma sqrt(2 pi)),
k = norm_factor / 2 pi. It is torch, vectorised over all k vectors (not the half set the C++ code sums), independent of
the plugin's code. MACELES is then built with mace-torch itself with random weights and the MACE-LES-OFF layout
(MACE-OFF's blocks: a non-residual first layer, l <= 1 hidden features, r_max 4.5 A, correlation 3; fewer channels).

Compared in float64 on the Reference platform (bounds as test_mace_torch.py: 1e-7 eV, 1e-8 eV/A; the issue asks for
1e-6 eV and 1e-6 relative), for float64 and float32 saved files, in open boundaries (molecules), and in periodic cells
(as trained): a cubic water box, a triclinic water box smaller than 2 r_max, and the NaCl cell (ions); CPU and OpenCL
against Reference in test_mlmm.py and the C++ tests.
"""
import os
import unittest

import numpy as np

import test_mace_torch
from support import energy_forces_ev, require

mace = require("mace")
if mace is not None:
    import ase
    import ase.build
    import torch

    from openmmenn import les_standin
    from openmmenn import mace as converter
    from test_mace_torch import convert_for_test, convert_live

    les_standin.install()

ELEMENTS = [1, 6, 7, 8, 11, 17]
ENERGIES_E0 = {1: -13.6, 6: -1029.8, 7: -1484.9, 8: -2041.8, 11: -4418.0, 17: -12580.0}



def water_box(n, spacing, seed, tilt=(0.0, 0.0, 0.0)):
    """n^3 randomly oriented waters on a grid of `spacing` A (a liquid's density at 3.1 A), slightly rattled; a box in
    OpenMM's reduced form, triclinic with tilt = (b_x, c_x, c_y)."""
    rng = np.random.default_rng(seed)
    atoms = ase.Atoms()
    for i in range(n):
        for j in range(n):
            for k in range(n):
                water = ase.build.molecule("H2O")
                water.euler_rotate(*rng.uniform(0, 360, size=3))
                water.translate(np.array([i, j, k]) * spacing)
                atoms += water
    length = n * spacing
    atoms.set_cell([[length, 0, 0], [tilt[0], length, 0], [tilt[1], tilt[2], length]])
    atoms.pbc = True
    atoms.rattle(0.05, seed=seed)
    return atoms


def configurations():
    molecules = []
    for k, name in enumerate(("CH3CONH2", "CH3CH2OH", "H2O")):
        atoms = ase.build.molecule(name)
        atoms.rattle(0.05, seed=k + 1)
        molecules.append(atoms)
    nacl = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    nacl.rattle(0.1, seed=12)
    return molecules + [water_box(3, 3.1, seed=5), water_box(2, 3.1, seed=6, tilt=(1.1, -0.9, 1.4)), nacl]


def build_maceles(dtype=torch.float64 if mace else None, les_arguments=None, seed=31, hidden="8x0e+8x1o"):
    """A MACELES model with random weights and the MACE-LES-OFF layout, in `dtype`."""
    from mace.modules.extensions import MACELES
    torch.set_default_dtype(dtype)
    try:
        model = converter.random_mace_model([ENERGIES_E0[z] for z in ELEMENTS], elements=ELEMENTS, hidden=hidden, seed=seed,
                                            model_class=MACELES, les_arguments=les_arguments or {"use_atomwise": False})
        with torch.no_grad():  # latent charges of a realistic size (|q| ~ 0.1-1 e)
            for readout in model.les_readouts:
                for p in readout.parameters():
                    p.mul_(20.0)
        return model.to(dtype)
    finally:
        torch.set_default_dtype(torch.float64)


@unittest.skipIf(mace is None, "mace-torch is not installed (pip install mace-torch)")
class TestMACELES(test_mace_torch.MACEComparison):

    def check(self, name, model, saved=False):
        path, model = convert_for_test(model, self.folder.name, name, saved)
        les_energies = []
        for atoms in configurations():
            periodic = atoms.pbc.any()
            data = converter.mace_graph(atoms.numbers, atoms.positions, atoms.cell.array if periodic else None, 4.5, ELEMENTS)
            out = model(data, compute_force=True, training=False)
            e_mace, f_mace = float(out["energy"].item()), out["forces"].detach().numpy()
            les_energies.append(abs(float(out["les_energy"].item())))
            e_enn, f_enn = energy_forces_ev(path, atoms.numbers, atoms.positions, box_angstrom=atoms.cell.array if periodic else None)
            label = f"{name} {atoms.get_chemical_formula()} {'periodic' if periodic else 'open'}"
            self.assertLess(abs(e_enn - e_mace), 1e-7, f"{label}: {e_enn} vs {e_mace} eV")
            self.assertLess(np.abs(f_enn - f_mace).max(), 1e-8, f"{label}: forces")
            if os.environ.get("ENN_PRINT_DIFFERENCES"):
                print(f"{label}: LES energy {float(out['les_energy'].item()):.4f} eV, latent charges up to "
                      f"{float(out['latent_charges'].abs().max()):.3f} e; differences {abs(e_enn - e_mace):.2e} eV, "
                      f"{np.abs(f_enn - f_mace).max():.2e} of {np.abs(f_mace).max():.2e} eV/A")
        self.assertGreater(max(les_energies), 1e-1)  # the long-range term takes part (eV; 1e6 x the bound)

    def test_maceles_matches_mace(self):
        """MACE-LES-OFF's layout with the les defaults (sigma 1 A, dl 2 A, self interaction removed, norm_factor of the
        2025 library that MACE-LES-OFF was trained with), from the live module and from float64 and float32 files."""
        self.check("les_live", build_maceles())
        for dtype in (torch.float64, torch.float32):
            with self.subTest(dtype=str(dtype)):
                self.check(f"les_{str(dtype)[-2:]}", build_maceles(dtype), saved=True)

    def test_les_constants_are_read_from_the_model(self):
        """Other widths, spacing, self interaction kept, and the corrected norm_factor of les >= 2026-04 (90.4756)."""
        arguments = {"use_atomwise": False, "sigma": 1.4, "dl": 1.6, "remove_self_interaction": False, "norm_factor": 90.4756}
        self.check("les_constants", build_maceles(les_arguments=arguments, seed=33))

    def test_an_unknown_les_library_is_refused(self):
        """An Ewald module without the constants the converter reads (another les version) is refused by name."""
        model = build_maceles(seed=37)
        del model.les.ewald.dl
        with self.assertRaisesRegex(ValueError, "the les module's Ewald has no dl"):
            convert_live(model, os.path.join(self.folder.name, "les_unknown.enn"))

    def test_latent_charges_refuse_a_total_charge(self):
        import openmmenn
        path = os.path.join(self.folder.name, "les_refuse.enn")
        convert_live(build_maceles(seed=35), path)
        force = openmmenn.ENNForce(path)
        self.assertTrue(force.hasLatentCharges())
        with self.assertRaisesRegex(Exception, "latent"):
            force.setTotalCharge(-1)
        with self.assertRaisesRegex(Exception, "latent"):
            force.addChargeGroup([0], 0.0)


if __name__ == "__main__":
    unittest.main()
