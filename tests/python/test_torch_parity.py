"""Parity: the PyTorch implementation (openmmenn.torch_model) and the C++ Reference platform agree on
energies, forces and charges to 1e-10 relative in float64, for random models over every configuration
kind (layers, irreps, correlation, residual or not, readouts, activations, charge head on or off,
O(3)/SO(3), periodic or not), and the PyTorch model reproduces the MACE fixtures.
Both sides are double precision; 1e-10 leaves a wide margin over round-off (~1e-14 measured)."""
import json
import os
import tempfile
import unittest

import numpy as np
import openmm
from openmm import unit

import openmmenn
from openmmenn import builder, modelfile

try:
    import torch
    from openmmenn.torch_model import TorchENNModel
except ImportError:  # pragma: no cover - torch is a test dependency on CI
    TorchENNModel = None

EV = modelfile.ENERGY_UNITS_IN_KJ_PER_MOL["eV"]  # kJ/mol
FIXTURES = os.environ.get("ENN_FIXTURES_DIR", "")

MOLECULE_Z = [6, 6, 8, 7, 1, 1, 1, 1, 1, 1]
MOLECULE = np.array([[0.000, 0.010, -0.005], [0.151, -0.004, 0.012], [0.212, 0.101, 0.003], [0.208, -0.125, 0.021],
                     [-0.038, 0.112, 0.004], [-0.036, -0.045, 0.083], [-0.041, -0.036, -0.096], [0.305, -0.131, 0.037],
                     [0.160, -0.210, 0.018], [0.302, 0.092, -0.010]]) * 10.0  # Angstrom
SMALL_CELL = np.array([[5.2, 0, 0], [1.1, 5.5, 0], [-0.7, 1.2, 5.8]])  # smaller than 2 r_max

CONFIGURATIONS = {
    "mace_like": dict(channels=4, hidden=("4x0e+4x1o", "4x0e"), residual=(False, True), seed=11),
    "correlation1_linear_readout": dict(channels=4, hidden=("4x0e", "4x0e"), residual=(True, True), correlation=1,
                                        readout_hidden=0, seed=12),
    "correlation2_three_layers_tanh": dict(channels=3, hidden=("3x0e+3x1o+3x2e", "3x0e+3x1o", "3x0e"),
                                           residual=(True, False, True), correlation=2, sh_lmax=2, message_lmax=2,
                                           activation="tanh", seed=13),
    "unnatural_parities_charges": dict(channels=3, hidden=("3x0e+3x0o+3x1e+3x1o", "3x0e"), residual=(False, True),
                                       message_parities="both", message_lmax=1, sh_lmax=2, charge_head=True,
                                       charge_offsets=[0.2, -0.1, -0.3, -0.4], seed=14),
    "so3_lmax1": dict(channels=4, hidden=("4x0e+4x1o", "4x0e"), residual=(True, True), symmetry="SO3", sh_lmax=1,
                      message_lmax=1, charge_head=True, seed=15),
    "single_layer_l3_output": dict(channels=3, hidden=("3x0e",), residual=(False,), seed=16, charge_head=True),
}


def cpp_evaluate(path, z, positions_angstrom, cell=None, total_charge=0.0, pme_tolerance=None):
    """Energy (eV), forces (eV/A) and charges on the Reference platform. pme_tolerance: the PME error
    tolerance with which a model's own Coulomb term is summed in a periodic cell (cutoff 0.45 of the cell)."""
    system = openmm.System()
    force = openmmenn.ENNForce(path)
    for zi in z:
        force.addParticle(system.addParticle(1.0), zi)
    force.setTotalCharge(total_charge)
    if cell is not None:
        force.setUsesPeriodicBoundaryConditions(True)
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) * 0.1 for row in cell])
        if pme_tolerance is not None:
            force.setElectrostaticsMethod(openmmenn.ENNForce.PME)
            force.setCutoffDistance(0.045 * min(cell[k][k] for k in range(3)))
            force.setEwaldErrorTolerance(pme_tolerance)
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions_angstrom * 0.1)
    state = context.getState(getEnergy=True, getForces=True)
    out = {"energy": state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / EV,
           "forces": state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer) * 0.1 / EV}
    if force.hasChargeHead():
        out["charges"] = np.array(force.getCharges(context))
    return out


@unittest.skipIf(TorchENNModel is None, "PyTorch is not installed (Debian: python3-torch)")
class TestTorchParity(unittest.TestCase):
    def compare(self, path, label, z, pos, cell=None, total_charge=0.0):
        torch_model = TorchENNModel.from_file(path)
        expected = cpp_evaluate(path, z, pos, cell, total_charge)
        actual = torch_model.evaluate(pos, z, cell, total_charge)
        self.assertAlmostEqual(actual["energy"], expected["energy"], delta=1e-10 * abs(expected["energy"]), msg=label)
        scale = np.abs(expected["forces"]).max()
        self.assertGreater(scale, 1e-3, label)
        np.testing.assert_allclose(actual["forces"], expected["forces"], atol=1e-10 * scale, rtol=0, err_msg=label)
        if "charges" in expected:
            np.testing.assert_allclose(actual["charges"], expected["charges"], atol=1e-10, rtol=0, err_msg=label)
            self.assertAlmostEqual(actual["charges"].sum(), total_charge, places=12)
            np.testing.assert_allclose(actual["dipole"], (actual["charges"][:, None] * pos).sum(0), atol=1e-12)

    def test_random_models_every_configuration_kind(self):
        with tempfile.TemporaryDirectory() as tmp:
            for name, kwargs in CONFIGURATIONS.items():
                path = os.path.join(tmp, name + ".enn")
                builder.write_random_model(path, **kwargs)
                self.compare(path, name + " vacuum", MOLECULE_Z, MOLECULE, total_charge=-1.0)
                self.compare(path, name + " small periodic cell", MOLECULE_Z, MOLECULE, SMALL_CELL, total_charge=0.5)

    def test_models_with_their_own_coulomb_term(self):
        # The model's energy includes the Coulomb energy of its charges: point charges, or Gaussian-damped.
        # In vacuum both sides sum all pairs directly (1e-10, as everywhere here). That the term is really
        # there: the same network without it differs by exactly the torch Coulomb energy of the charges.
        # In a periodic cell C++ uses PME (tolerance 1e-6) and torch an Ewald sum (1e-9): bound 1e-6 of the
        # Coulomb energy, the PME tolerance (measured 5e-9 and 6e-9).
        cubic = np.diag([20.0, 20.0, 20.0])
        with tempfile.TemporaryDirectory() as tmp:
            for sigma in (None, 0.5):
                kwargs = dict(channels=4, hidden=("4x0e+4x1o", "4x0e"), residual=(False, True), charge_head=True,
                              charge_offsets=[0.3, -0.1, -0.45, -0.5], seed=21)
                path, plain = os.path.join(tmp, "coulomb.enn"), os.path.join(tmp, "plain.enn")
                builder.write_random_model(path, coulomb=True, gaussian_sigma=sigma, **kwargs)
                builder.write_random_model(plain, **kwargs)
                label = f"own Coulomb term, sigma {sigma}"
                self.compare(path, label + " vacuum", MOLECULE_Z, MOLECULE, total_charge=-1.0)
                model = TorchENNModel.from_file(path)
                with_term = cpp_evaluate(path, MOLECULE_Z, MOLECULE, total_charge=-1.0)
                without = cpp_evaluate(plain, MOLECULE_Z, MOLECULE, total_charge=-1.0)
                e_coul = float(model.coulomb_energy(torch.tensor(MOLECULE), torch.tensor(with_term["charges"])))
                self.assertGreater(abs(e_coul), 0.1, label)
                self.assertAlmostEqual(with_term["energy"] - without["energy"], e_coul, delta=1e-10 * abs(with_term["energy"]), msg=label)
                periodic = cpp_evaluate(path, MOLECULE_Z, MOLECULE, cubic, total_charge=-1.0, pme_tolerance=1e-6)
                torch_periodic = model.evaluate(MOLECULE, MOLECULE_Z, cubic, total_charge=-1.0)
                e_coul_periodic = float(model.coulomb_energy(torch.tensor(MOLECULE), torch.tensor(periodic["charges"]), cubic))
                error = abs(periodic["energy"] - torch_periodic["energy"]) / abs(e_coul_periodic)
                print(f"{label}: periodic cell, C++ PME vs torch Ewald: {error:.2e} of the Coulomb energy {e_coul_periodic:.4f} eV")
                self.assertLess(error, 1e-6, label)

    def test_export_round_trip(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.enn")
            builder.write_random_model(path, **CONFIGURATIONS["mace_like"])
            model = TorchENNModel.from_file(path)
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(1.1)
            exported = os.path.join(tmp, "exported.enn")
            model.export(exported)
            self.compare(exported, "exported after a parameter change", MOLECULE_Z, MOLECULE)
            self.assertNotAlmostEqual(TorchENNModel.from_file(path).evaluate(MOLECULE, MOLECULE_Z)["energy"],
                                      TorchENNModel.from_file(exported).evaluate(MOLECULE, MOLECULE_Z)["energy"])

    def test_mace_fixtures(self):
        for name in ("public_A", "public_B"):
            folder = os.path.join(FIXTURES, "mace", name)
            model_path = os.path.join(os.environ.get("ENN_TEST_MODELS_DIR", ""), name + ".enn")
            self.assertTrue(os.path.isdir(folder) and os.path.exists(model_path),
                            "MACE reference data missing (tests/data/README.md)")
            model = TorchENNModel.from_file(model_path)
            with open(os.path.join(folder, "references.json")) as f:
                configs = json.load(f)["configs"]
            for c in configs:
                cell = np.array(c["cell"]) if c["pbc"][0] else None
                r = model.evaluate(c["positions"], c["numbers"], cell)
                self.assertAlmostEqual(r["energy"], c["energy"], delta=1e-8, msg=f"{name} {c['name']}")
                np.testing.assert_allclose(r["forces"], c["forces"], atol=1e-8, rtol=0, err_msg=f"{name} {c['name']}")


if __name__ == "__main__":
    unittest.main()
