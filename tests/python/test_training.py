"""The training loop demonstrably learns: on a small GFN2-xTB dataset built here (a few dozen
configurations of water, a water dimer and methanol), the validation force error falls well below the
trivial baseline of predicting zero forces. Also: training is reproducible from its seed, the metrics
file has one line per epoch, and the exported model evaluates identically in C++ and PyTorch."""
import json
import os
import shutil
import tempfile
import unittest

import numpy as np

from support import EV, energy_forces_ev

try:
    import torch  # noqa: F401
    from openmmenn import train, xtb
    from openmmenn.torch_model import TorchENNModel
except ImportError:  # pragma: no cover
    train = None

SMALL_MODEL = ["--channels", "8", "--hidden", "8x0e+8x1o", "8x0e", "--correlation", "2", "--lmax", "2",
               "--radial-hidden", "16", "16", "--readout-hidden", "8", "--batch-size", "4", "--lr", "1e-2",
               "--valid-fraction", "0.25", "--threads", "2"]


@unittest.skipIf(train is None or shutil.which("xtb") is None, "needs PyTorch (python3-torch) and xtb")
class TestTraining(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.data = os.path.join(cls.tmp, "data.extxyz")
        xtb.main(["--molecules", "H2O", "CH3OH", "--water-clusters", "2", "--samples", "14", "--sigma", "0.1",
                  "--seed", "3", "--out", cls.data])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_learns_forces_well_below_baseline(self):
        out = os.path.join(self.tmp, "model.enn")
        metrics = os.path.join(self.tmp, "metrics.jsonl")
        history = train.train(train.parser().parse_args(
            ["--data", self.data, "--out", out, "--metrics", metrics, "--epochs", "30", "--seed", "1"] + SMALL_MODEL))
        with open(metrics) as f:
            rows = [json.loads(line) for line in f]
        self.assertEqual(len(rows), len(history))
        # Baseline: predicting zero forces on the validation configurations.
        import ase.io
        configs = ase.io.read(self.data, ":")
        order = np.random.default_rng(1).permutation(len(configs))[:int(round(0.25 * len(configs)))]
        baseline = np.mean([np.abs(configs[i].arrays["xtb_forces"]).mean() for i in order])
        best = min(r["forces_mae"] for r in rows)
        print(f"\nvalidation force MAE {best:.3f} eV/A against a zero-force baseline of {baseline:.3f} eV/A; "
              f"charges MAE {rows[-1].get('charges_mae', float('nan')):.3f} e")
        self.assertLess(best, 0.35 * baseline)
        # Charges against the trivial baseline of predicting zero charges.
        charge_baseline = np.mean([np.abs(configs[i].arrays["xtb_charges"]).mean() for i in order])
        self.assertLess(rows[-1]["charges_mae"], 0.5 * charge_baseline)
        # The exported model runs in C++ with the same energy as in PyTorch.
        cfg = configs[0]
        torch_energy = TorchENNModel.from_file(out).evaluate(cfg.positions, cfg.numbers, forces=False)["energy"]
        cpp_energy = energy_forces_ev(out, cfg.numbers, cfg.positions)[0]
        self.assertAlmostEqual(cpp_energy, torch_energy, delta=1e-9 * abs(torch_energy))

    def test_reproducible_from_seed(self):
        runs = []
        for _ in range(2):
            out = os.path.join(self.tmp, "repro.enn")
            runs.append(train.train(train.parser().parse_args(
                ["--data", self.data, "--out", out, "--epochs", "2", "--seed", "7"] + SMALL_MODEL)))
        for a, b in zip(*runs):
            for key in ("train_loss", "valid_loss", "forces_mae"):
                self.assertEqual(a[key], b[key])


if __name__ == "__main__":
    unittest.main()


@unittest.skipIf(shutil.which("xtb") is None, "needs xtb")
class TestShippedModel(unittest.TestCase):
    def test_shipped_model_against_fresh_xtb_data(self):
        """The shipped model, through the C++ Reference platform, on new xtb samples of water, a water
        trimer and acetamide: forces well below the zero-force baseline, charges close to xtb's."""
        import ase.io
        import openmm
        import openmmenn
        from openmmenn import xtb as xtb_tool
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "fresh.extxyz")
            xtb_tool.main(["--molecules", "H2O", "CH3CONH2", "--water-clusters", "3", "--samples", "4", "--seed", "99",
                           "--out", data])
            configs = ase.io.read(data, ":")
        force_errors, baselines, charge_errors = [], [], []
        for cfg in configs:
            system = openmm.System()
            force = openmmenn.ENNForce(openmmenn.shipped_model())
            for z in cfg.numbers:
                force.addParticle(system.addParticle(1.0), int(z))
            system.addForce(force)
            context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
            context.setPositions(cfg.positions * 0.1)
            f = context.getState(getForces=True).getForces(asNumpy=True)._value * 0.1 / EV  # eV/A
            force_errors.append(np.abs(f - cfg.arrays["xtb_forces"]).mean())
            baselines.append(np.abs(cfg.arrays["xtb_forces"]).mean())
            charge_errors.append(np.abs(np.array(force.getCharges(context)) - cfg.arrays["xtb_charges"]).mean())
        print(f"\nshipped model on fresh xtb data: force MAE {np.mean(force_errors):.3f} eV/A (baseline "
              f"{np.mean(baselines):.3f}), charge MAE {np.mean(charge_errors):.3f} e")
        self.assertLess(np.mean(force_errors), 0.2 * np.mean(baselines))
        self.assertLess(np.mean(charge_errors), 0.05)
