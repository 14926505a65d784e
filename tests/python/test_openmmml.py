"""openmm-enn through openmm-ml (the real openmmml package): the "enn" potential and the "enn-electrostatic"
embedding, found through entry points, against openmmenn's own createSystem/createMixedSystem and, for openmm-ml's
mechanical embedding, against openmmenn's. Reference platform, double precision: "round-off" is 1e-9 relative
(assert_same), as in test_mlmm.

Skipped where openmmml is not installed (it needs OpenMM 8.6.1 or later: not on Debian's 7.7), except where
ENN_REQUIRED_MODULES names it (CI's OpenMM 8 leg), where its absence fails the test.
"""
import os
import unittest

import openmm
from openmm import app, unit

import openmmenn
from test_mlmm import PEPTIDE, assert_same, evaluate, model, peptide, solvated
from support import require

openmmml = require("openmmml")


def mm_system(ff, top, **options):
    return ff.createSystem(top, constraints=None, rigidWater=False, **options)


def pme(ff, top):
    system = mm_system(ff, top, nonbondedMethod=app.PME, nonbondedCutoff=0.7 * unit.nanometer)
    for f in system.getForces():
        if isinstance(f, openmm.NonbondedForce):
            f.setEwaldErrorTolerance(1e-5)
    return system


@unittest.skipIf(openmmml is None, "openmmml is not installed (pip install openmmml; it needs OpenMM >= 8.6.1)")
class TestOpenMMML(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.potential = openmmml.MLPotential("enn")  # the shipped model
        cls.model = openmmenn.shipped_model()

    def test_found_through_entry_points(self):
        self.assertIn("enn-electrostatic", self.potential.getSupportedEmbeddings())
        self.assertIn("mechanical", self.potential.getSupportedEmbeddings())
        explicit = openmmml.MLPotential("enn", modelPath=self.model)
        self.assertEqual(explicit._impl.modelPath, self.model)

    def test_create_system_is_openmmenns(self):
        top, pos = peptide()
        assert_same(self, evaluate(self.potential.createSystem(top), pos), evaluate(openmmenn.createSystem(top), pos),
                    "vacuum")
        ff, top, pos = solvated(1.47)  # several molecules (charge groups), periodic: the model's Coulomb with PME
        ours = openmmenn.createSystem(top, cutoff=0.6 * unit.nanometer)
        theirs = self.potential.createSystem(top, cutoff=0.6 * unit.nanometer)
        assert_same(self, evaluate(theirs, pos), evaluate(ours, pos), "periodic water and peptide")

    def test_electrostatic_embedding_is_openmmenns(self):
        ff, top, pos = solvated(1.47)
        system = pme(ff, top)
        for interpolate in (False, True):
            with self.subTest(interpolate=interpolate):
                theirs = self.potential.createMixedSystem(top, system, PEPTIDE, embedding="enn-electrostatic",
                                                          interpolate=interpolate)
                ours = openmmenn.createMixedSystem(top, system, PEPTIDE, interpolate=interpolate)
                assert_same(self, evaluate(theirs, pos), evaluate(ours, pos), "enn-electrostatic, PME")
        top, pos = peptide()
        system = mm_system(app.ForceField("amber14-all.xml", "implicit/obc2.xml"), top)
        theirs = self.potential.createMixedSystem(top, system, PEPTIDE, embedding="enn-electrostatic", charge=0)
        assert_same(self, evaluate(theirs, pos), evaluate(openmmenn.createMixedSystem(top, system, PEPTIDE), pos),
                    "enn-electrostatic, OBC2")

    def test_latent_charges_in_the_electrostatic_embedding(self):
        """A MACELES-type model (the test model latent_charges): openmm-ml's enn-electrostatic embedding, with and
        without interpolation, is createMixedSystem's; no charge is needed or set."""
        models = os.environ.get("ENN_TEST_MODELS_DIR", "")
        path = os.path.join(models, "latent_charges.enn")
        if not os.path.exists(path):
            self.skipTest("test models not built")
        potential = openmmml.MLPotential("enn", modelPath=path)
        ff, top, pos = solvated(1.47)
        system = pme(ff, top)
        for interpolate in (False, True):
            with self.subTest(interpolate=interpolate):
                theirs = potential.createMixedSystem(top, system, PEPTIDE, embedding="enn-electrostatic", interpolate=interpolate)
                ours = openmmenn.createMixedSystem(top, system, PEPTIDE, model=path, interpolate=interpolate)
                assert_same(self, evaluate(theirs, pos), evaluate(ours, pos), "latent charges, enn-electrostatic, PME")

    def test_openmmmls_mechanical_embedding_is_openmmenns(self):
        # openmm-ml's own mechanical embedding calls addForces; the shipped model sums its own Coulomb term over
        # periodic images (getMLLongRange), so in PME openmm-ml subtracts the MM charges' ML-ML Ewald energy, as
        # openmmenn does.
        top, pos = peptide()
        vacuum = mm_system(app.ForceField("amber14-all.xml", "implicit/obc2.xml"), top)
        ff, wtop, wpos = solvated(1.47)
        for name, (t, p, system) in {"OBC2": (top, pos, vacuum), "PME": (wtop, wpos, pme(ff, wtop))}.items():
            with self.subTest(environment=name):
                theirs = self.potential.createMixedSystem(t, system, PEPTIDE)
                ours = openmmenn.createMixedSystem(t, system, PEPTIDE, embedding="mechanical")
                assert_same(self, evaluate(theirs, p), evaluate(ours, p), f"mechanical, {name}")

    def test_openmmmls_interpolation_needs_the_charge(self):
        ff, top, pos = solvated(1.47)
        system = pme(ff, top)
        with self.assertRaisesRegex(TypeError, "charge="):
            self.potential.createMixedSystem(top, system, PEPTIDE, interpolate=True)
        # openmm-ml's interpolation hands addForces an empty System: the charge and the NonbondedForce's PME
        # settings (for the model's own Coulomb term) are given, so that lambda 1 is the plain mixed System.
        mixed = self.potential.createMixedSystem(top, system, PEPTIDE, interpolate=True, charge=0,
                                                 cutoff=0.7 * unit.nanometer, ewaldErrorTolerance=1e-5)
        plain = self.potential.createMixedSystem(top, system, PEPTIDE)
        assert_same(self, evaluate(mixed, pos), evaluate(plain, pos), "lambda 1")
        # (lambda 0 is openmm-ml's own construction, not checked here: in PME it differs from the MM System by
        # 6e-7 relative, openmm-ml rebuilding the ML-MM interactions in forces of its own.)

    def test_charge_and_multiplicity_reach_a_model_that_reads_them(self):
        """An OMOL-type model (the charge and spin embedding): openmm-ml passes charge= and multiplicity= to it, in a
        whole System and in its mechanical embedding, as openmmenn's own functions do."""
        potential = openmmml.MLPotential("enn", modelPath=model("nonlinear"))
        top, pos = peptide()
        system = mm_system(app.ForceField("amber14-all.xml"), top)
        for multiplicity in (1, 3):
            theirs = potential.createMixedSystem(top, system, PEPTIDE, multiplicity=multiplicity)
            ours = openmmenn.createMixedSystem(top, system, PEPTIDE, model=model("nonlinear"), embedding="mechanical",
                                               multiplicity=multiplicity)
            self.assertEqual(openmmenn.findENNForce(theirs).getSpinMultiplicity(), multiplicity)
            assert_same(self, evaluate(theirs, pos), evaluate(ours, pos), f"mechanical, multiplicity {multiplicity}")
        whole = openmmenn.findENNForce(potential.createSystem(top, charge=1, multiplicity=2))
        self.assertEqual((whole.getTotalCharge(), whole.getSpinMultiplicity()), (1.0, 2))

    def test_errors(self):
        top, pos = peptide()
        system = mm_system(app.ForceField("amber14-all.xml"), top)
        with self.assertRaisesRegex(TypeError, "unexpected arguments .'modelpath'."):
            openmmml.MLPotential("enn", modelpath="x.enn")
        with self.assertRaisesRegex(openmm.OpenMMException, "cannot open"):
            openmmml.MLPotential("enn", modelPath="/nonexistent/model.enn")
        with self.assertRaisesRegex(TypeError, "unexpected arguments .'cutof'."):
            self.potential.createSystem(top, cutof=1.0)
        with self.assertRaisesRegex(TypeError, "unexpected arguments .'totalCharge'."):
            self.potential.createMixedSystem(top, system, PEPTIDE, embedding="enn-electrostatic", totalCharge=0)

        class Other(openmmml.mlpotential.MLPotentialImpl):
            pass

        class OtherFactory(openmmml.mlpotential.MLPotentialImplFactory):
            def createImpl(self, name, **args):
                return Other()
        openmmml.MLPotential.registerImplFactory("test-other", OtherFactory())
        with self.assertRaisesRegex(ValueError, "MLPotential.'enn'"):
            openmmml.MLPotential("test-other").createMixedSystem(top, system, PEPTIDE, embedding="enn-electrostatic")


if __name__ == "__main__":
    unittest.main()
