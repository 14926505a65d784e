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
from openmmenn import builder

try:
    import torch  # noqa: F401
    from openmmenn.torch_model import TorchENNModel
except ImportError:  # pragma: no cover - torch is a test dependency on CI
    TorchENNModel = None

EV = 96.4853321233100184  # kJ/mol
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


def cpp_evaluate(path, z, positions_angstrom, cell=None, total_charge=0.0):
    system = openmm.System()
    force = openmmenn.ENNForce(path)
    for zi in z:
        force.addParticle(system.addParticle(1.0), zi)
    force.setTotalCharge(total_charge)
    if cell is not None:
        force.setUsesPeriodicBoundaryConditions(True)
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) * 0.1 for row in cell])
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
            if not os.path.isdir(folder) or not os.path.exists(model_path):
                self.skipTest("MACE fixtures not available")
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
