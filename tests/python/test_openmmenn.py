"""Python tests: the SWIG module from Debian's /usr/bin/python3, and the numpy-only tools.

Run by ctest with PYTHONPATH pointing at the build tree's package and OPENMM_PLUGIN_DIR at a folder
with OpenMM's plugins and the Reference plugin just built.
"""
import json
import os
import tempfile
import unittest

import numpy as np
import openmm
from openmm import unit

import openmmenn
from openmmenn import builder, mace, modelfile, o3

MODELS = os.environ.get("ENN_TEST_MODELS_DIR", "")
FIXTURES = os.environ.get("ENN_FIXTURES_DIR", "")
EV = modelfile.ENERGY_UNITS_IN_KJ_PER_MOL["eV"]  # kJ/mol


def model(name):
    return os.path.join(MODELS, name + ".enn")


def molecule():
    z = [6, 6, 8, 7, 1, 1, 1, 1, 1, 1]
    pos = np.array([[0.000, 0.010, -0.005], [0.151, -0.004, 0.012], [0.212, 0.101, 0.003], [0.208, -0.125, 0.021],
                    [-0.038, 0.112, 0.004], [-0.036, -0.045, 0.083], [-0.041, -0.036, -0.096], [0.305, -0.131, 0.037],
                    [0.160, -0.210, 0.018], [0.302, 0.092, -0.010]])
    return z, pos


def make_context(path, z, pos, total_charge=0.0):
    system = openmm.System()
    force = openmmenn.ENNForce(path)
    for zi in z:
        force.addParticle(system.addParticle(1.0), zi)
    force.setTotalCharge(total_charge)
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(pos)
    return system, force, context


def energy(context):
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


class TestForce(unittest.TestCase):
    def test_energy_forces_and_charges(self):
        z, pos = molecule()
        system, force, context = make_context(model("mixed_charge"), z, pos, total_charge=-1.0)
        self.assertIsInstance(force, openmm.Force)
        self.assertEqual(force.getNumParticles(), len(z))
        self.assertEqual(force.getParticleParameters(3), [3, 7])
        state = context.getState(getEnergy=True, getForces=True)
        f = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        # Forces against a central difference of the energy through the Python API.
        h = 1e-5
        for i, k in [(0, 0), (3, 1), (7, 2)]:
            p = pos.copy()
            p[i, k] += h
            context.setPositions(p)
            e_plus = energy(context)
            p[i, k] -= 2 * h
            context.setPositions(p)
            e_minus = energy(context)
            self.assertAlmostEqual(f[i, k], -(e_plus - e_minus) / (2 * h), delta=1e-4 * np.abs(f).max())
        context.setPositions(pos)
        self.assertTrue(force.hasChargeHead())
        q = np.array(force.getCharges(context))
        self.assertEqual(q.shape, (len(z),))
        self.assertAlmostEqual(q.sum(), -1.0, places=12)
        # The charges are invariant under a rotation.
        c, s = np.cos(0.7), np.sin(0.7)
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        context.setPositions(pos @ rot.T)
        np.testing.assert_allclose(force.getCharges(context), q, atol=1e-12)

    def test_fixture_energy_through_python(self):
        refs = os.path.join(FIXTURES, "mace", "public_A", "references.json")
        self.assertTrue(os.path.exists(refs) and os.path.exists(model("public_A")),
                        "MACE reference data missing (tests/data/README.md)")
        with open(refs) as f:
            config = json.load(f)["configs"][0]
        _, _, context = make_context(model("public_A"), config["numbers"], np.array(config["positions"]) * 0.1)
        self.assertAlmostEqual(energy(context) / EV, config["energy"], delta=1e-8)

    def test_xml_serializer_round_trip(self):
        z, pos = molecule()
        system, force, context = make_context(model("mixed_charge"), z, pos)
        copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
        context2 = openmm.Context(copy, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context2.setPositions(pos)
        self.assertEqual(energy(context), energy(context2))

    def test_cpu_platform_loads_from_plugin_folder(self):
        # libOpenMMENNCPU is found through OpenMM's plugin loading (its RPATH reaches libOpenMMCPU),
        # registers on "CPU" only, and runs in float: close to Reference (1e-5, the CPU tolerance),
        # but not bitwise equal, which would mean the Reference kernel had been picked.
        names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
        if "CPU" not in names:
            self.skipTest("OpenMM's CPU platform is not installed")
        # Loading our plugins must not register any of OpenMM's platforms a second time.
        self.assertEqual(len(names), len(set(names)), names)
        z, pos = molecule()
        system = openmm.System()
        force = openmmenn.ENNForce(model("mixed_charge"))
        for zi in z:
            force.addParticle(system.addParticle(1.0), zi)
        system.addForce(force)
        energies = {}
        for name, properties in (("Reference", {}), ("CPU", {"Threads": "2"})):
            context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(name), properties)
            context.setPositions(pos)
            energies[name] = energy(context)
            if name == "CPU":
                self.assertEqual(context.getPlatform().getPropertyValue(context, "Threads"), "2")
        self.assertNotEqual(energies["CPU"], energies["Reference"])
        self.assertAlmostEqual(energies["CPU"], energies["Reference"], delta=1e-5 * abs(energies["Reference"]))

    def test_coupling_to_nonbonded_force_matches_openmm(self):
        # Frozen per-element charges: ENNForce coupled to the NonbondedForce, minus the ENNForce alone,
        # reproduces the classical Coulomb energy of the original System without its ML-ML pairs
        # (NoCutoff, no LJ): coupling adds the ML-MM terms, whether or not the model has its own
        # Coulomb term (which the ENNForce alone already holds).
        frozen = {1: 0.21, 6: -0.13, 7: -0.47, 8: -0.52}
        z, pos = molecule()
        rng = np.random.default_rng(3)
        mm = rng.uniform(-0.8, 0.8, size=(6, 3)) + np.array([0.1, 0.0, 0.0])
        mm = mm[np.min(np.linalg.norm(mm[:, None] - pos[None], axis=-1), axis=1) > 0.25]
        all_pos = np.concatenate([pos, mm])

        def classical():
            system = openmm.System()
            nb = openmm.NonbondedForce()
            for zi in z:
                nb.addParticle(frozen[zi], 0.3, 0.0)
                system.addParticle(1.0)
            for k in range(len(mm)):
                nb.addParticle(0.4 if k % 2 else -0.4, 0.3, 0.0)
                system.addParticle(1.0)
            system.addForce(nb)
            return system, nb

        def without_ml_pairs():
            system, nb = classical()
            for i in range(len(z)):
                for j in range(i):
                    nb.addException(i, j, 0.0, 0.3, 0.0)
            return system

        def energy_of(system):
            ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
            ctx.setPositions(all_pos)
            return energy(ctx)

        expected = energy_of(without_ml_pairs())
        for name in ("frozen_charges", "frozen_charges_coulomb"):
            with self.subTest(model=name):
                self.check_coupling_against(expected, classical, energy_of, name, z, frozen, len(mm), len(all_pos))

    def check_coupling_against(self, expected, classical, energy_of, name, z, frozen, num_mm, num_particles):
        system, nb = classical()
        force = openmmenn.ENNForce(model(name))
        for i, zi in enumerate(z):
            force.addParticle(i, zi)
        force.setTotalCharge(sum(frozen[zi] for zi in z))
        system.addForce(force)
        force.coupleToNonbondedForce(system, nb)
        self.assertEqual(force.getElectrostaticsMethod(), openmmenn.ENNForce.NoCutoff)
        self.assertEqual(force.getNumMMParticles(), num_mm)
        bare_system = openmm.System()
        for _ in range(num_particles):
            bare_system.addParticle(1.0)
        bare = openmmenn.ENNForce(model(name))
        for i, zi in enumerate(z):
            bare.addParticle(i, zi)
        bare.setTotalCharge(force.getTotalCharge())
        bare_system.addForce(bare)
        self.assertAlmostEqual(energy_of(system) - energy_of(bare_system), expected, delta=1e-8 * abs(expected))

    def test_errors_are_openmm_exceptions(self):
        force = openmmenn.ENNForce(model("mixed_charge"))
        with self.assertRaisesRegex(Exception, "atomic number 79 is not in the model"):
            force.addParticle(0, 79)
        with self.assertRaisesRegex(Exception, "cannot open"):
            openmmenn.ENNForce("/no/such/file.enn")
        with tempfile.NamedTemporaryFile(suffix=".enn") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
            f.flush()
            with self.assertRaisesRegex(Exception, "ENN model file"):
                openmmenn.ENNForce(f.name)


class TestTools(unittest.TestCase):
    def test_model_file_round_trip(self):
        arch, tensors = builder.random_model(channels=2, hidden=("2x0e+2x1o", "2x0e"), correlation=2, seed=5)
        data = modelfile.to_bytes(arch, tensors)
        arch2, tensors2 = modelfile.from_bytes(data)
        self.assertEqual(arch2["layers"], json.loads(json.dumps(arch["layers"])))
        self.assertEqual(sorted(tensors), sorted(tensors2))
        for name in tensors:
            np.testing.assert_array_equal(tensors[name], tensors2[name])
        self.assertEqual(arch2["format_version"], modelfile.FORMAT_VERSION)

    def test_wigner_3j_and_harmonics_match_e3nn_fixtures(self):
        folder = os.path.join(FIXTURES, "mace", "public_A")
        self.assertTrue(os.path.isdir(folder), "MACE reference data missing (tests/data/README.md)")
        with np.load(os.path.join(folder, "wigner_3j.npz")) as w:
            self.assertEqual(len(w.files), 65)
            for key in w.files:
                l1, l2, l3 = map(int, key.split("_")[1:])
                np.testing.assert_allclose(o3.wigner_3j(l1, l2, l3), w[key], atol=1e-13, err_msg=key)
        with open(os.path.join(folder, "spherical_harmonics.json")) as f:
            sh = json.load(f)
        np.testing.assert_allclose(o3.spherical_harmonics(4, sh["vectors"]), sh["values"], atol=1e-13)

    def test_contraction_basis_is_equivariant(self):
        rng = np.random.default_rng(0)
        features = [(0, 1), (1, -1), (2, 1)]
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        if np.linalg.det(q) < 0:
            q = -q
        d = np.zeros((9, 9))
        offset = 0
        for l, _ in features:
            d[offset:offset + 2 * l + 1, offset:offset + 2 * l + 1] = o3.rotation_matrix_for_irrep(l, q)
            offset += 2 * l + 1
        x = rng.normal(size=9)
        for out in [(0, 1), (1, -1), (2, 1)]:
            u = o3.symmetric_contraction_basis(features, out, 3)
            self.assertGreater(u.shape[-1], 0)
            dout = o3.rotation_matrix_for_irrep(out[0], q)
            rotated_input = np.einsum("Mabck,a,b,c->Mk", u, d @ x, d @ x, d @ x)
            rotated_output = dout @ np.einsum("Mabck,a,b,c->Mk", u, x, x, x)
            np.testing.assert_allclose(rotated_input, rotated_output, atol=1e-10)

    def test_benchmark_tool_prints_its_table(self):
        # A smoke test that the benchmark runs end to end (no timing is asserted: speed belongs to benchmarks).
        import contextlib
        import io
        from openmmenn import bench
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            bench.main(["--systems", "molecule", "--repeats", "1", "--no-torch"])
        self.assertIn("| molecule | shipped | 9 | Reference |", out.getvalue())

    def test_converter_rejects_unsupported_blocks(self):
        folder = os.path.join(FIXTURES, "mace", "public_B")
        self.assertTrue(os.path.isdir(folder), "MACE reference data missing (tests/data/README.md)")
        with open(os.path.join(folder, "hyperparameters.json")) as f:
            hp = json.load(f)
        with np.load(os.path.join(folder, "state_dict.npz")) as npz:
            sd = {k: npz[k] for k in npz.files}
        hp["layers"][0]["interaction_class"] = "RealAgnosticAttResidualInteractionBlock"
        with self.assertRaisesRegex(ValueError, "RealAgnosticAttResidualInteractionBlock is not supported"):
            mace.convert(hp, sd)
        hp["layers"][0]["interaction_class"] = "RealAgnosticDensityInteractionBlock"  # without its density network
        with self.assertRaisesRegex(ValueError, "density network"):
            mace.convert(hp, sd)


if __name__ == "__main__":
    unittest.main()
