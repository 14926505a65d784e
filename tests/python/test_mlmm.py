"""ML/MM from openmm.app: createMixedSystem and createSystem, against hand-built Systems, OpenMM's own forces with
frozen charges, finite differences and the MM System itself (interpolation). All on the Reference platform
(double precision): "round-off" below means 1e-9 relative, the sums being over ~10^3-10^5 terms of O(10^3) kJ/mol.
"""
import os
import unittest
import warnings

import numpy as np
import openmm
from openmm import app, unit

import openmmenn

HERE = os.path.dirname(os.path.abspath(__file__))
PDB = os.path.join(HERE, "..", "..", "models", "structures", "alanine_dipeptide.pdb")
MODELS = os.environ.get("ENN_TEST_MODELS_DIR", "")
KJ = unit.kilojoule_per_mole
FORCE_UNIT = KJ / unit.nanometer
REFERENCE = openmm.Platform.getPlatformByName("Reference")
ALA = list(range(6, 16))  # the ALA residue: bonds to ACE and NME cross the boundary
PEPTIDE = list(range(22))


def model(name):
    return os.path.join(MODELS, name + ".enn")


def peptide():
    pdb = app.PDBFile(PDB)
    return pdb.topology, pdb.positions


def solvated(edge=1.67):
    """The peptide in a cubic TIP3P box of the given edge (nm). A box size, not a padding: OpenMM 8 makes
    smaller boxes than 7.7 for the same padding."""
    top, pos = peptide()
    ff = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    modeller = app.Modeller(top, pos)
    modeller.addSolvent(ff, boxSize=openmm.Vec3(edge, edge, edge) * unit.nanometer)
    return ff, modeller.topology, modeller.positions


def evaluate(system, positions, platform=REFERENCE, groups=-1, parameters=None):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform)
    context.setPositions(positions)
    for name, value in (parameters or {}).items():
        context.setParameter(name, value)
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    return state.getPotentialEnergy().value_in_unit(KJ), state.getForces(asNumpy=True).value_in_unit(FORCE_UNIT)


def assert_same(test, a, b, what):
    (ea, fa), (eb, fb) = a, b
    scale = max(1.0, abs(eb))
    test.assertLess(abs(ea - eb) / scale, 1e-9, f"{what}: energy {ea} vs {eb}")
    test.assertLess(np.abs(fa - fb).max() / max(1.0, np.abs(fb).max()), 1e-9, f"{what}: forces")


def ml_charges(system, positions):
    force = enn_force(system)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), REFERENCE)
    context.setPositions(positions)
    return force.getCharges(context, asNumpy=True)


def enn_force(system):
    return openmmenn.findENNForce(system)


def with_region_charges(system, ml, charges):
    """A copy of an MM System in which the ML atoms carry `charges` in the NonbondedForce and the GB force."""
    copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    for f in copy.getForces():
        if isinstance(f, openmm.NonbondedForce):
            old = [f.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge) for i in range(f.getNumParticles())]
            new = list(old)
            for i, q in zip(ml, charges):
                _, sigma, epsilon = f.getParticleParameters(i)
                f.setParticleParameters(i, q, sigma, epsilon)
                new[i] = q
            for e in range(f.getNumExceptions()):  # scaled 1-4 pairs keep their scale
                p1, p2, qq, sigma, epsilon = f.getExceptionParameters(e)
                qq = qq.value_in_unit(unit.elementary_charge**2)
                if qq != 0 and (new[p1], new[p2]) != (old[p1], old[p2]):
                    f.setExceptionParameters(e, p1, p2, qq * new[p1] * new[p2] / (old[p1] * old[p2]), sigma, epsilon)
        elif isinstance(f, openmm.CustomGBForce):
            for i, q in zip(ml, charges):
                p = list(f.getParticleParameters(i))
                p[0] = q
                f.setParticleParameters(i, p)
        elif isinstance(f, openmm.GBSAOBCForce):
            for i, q in zip(ml, charges):
                _, radius, scale = f.getParticleParameters(i)
                f.setParticleParameters(i, q, radius, scale)
    return copy


class TestRegion(unittest.TestCase):
    def test_bonded_terms_and_constraints_inside_removed_crossing_kept(self):
        top, pos = peptide()
        system = app.ForceField("amber14-all.xml").createSystem(top, constraints=app.HBonds)
        mixed = openmmenn.createMixedSystem(top, system, ALA, model=model("frozen_charges"))
        ml = set(ALA)

        def terms(s, cls, count, params):
            out = []
            for f in s.getForces():
                if isinstance(f, cls):
                    for k in range(getattr(f, count)()):
                        out.append(tuple(getattr(f, params)(k)[:{"getNumBonds": 2, "getNumAngles": 3}.get(count, 4)]))
            return out
        for cls, count, params in [(openmm.HarmonicBondForce, "getNumBonds", "getBondParameters"),
                                   (openmm.HarmonicAngleForce, "getNumAngles", "getAngleParameters"),
                                   (openmm.PeriodicTorsionForce, "getNumTorsions", "getTorsionParameters")]:
            before, after = terms(system, cls, count, params), terms(mixed, cls, count, params)
            inside = [t for t in before if set(t) <= ml]
            crossing = [t for t in before if set(t) & ml and not set(t) <= ml]
            self.assertGreater(len(inside), 0)
            self.assertGreater(len(crossing), 0)
            self.assertEqual(sorted(after), sorted(t for t in before if not set(t) <= ml), cls.__name__)
        constraints = [tuple(system.getConstraintParameters(c)[:2]) for c in range(system.getNumConstraints())]
        kept = [tuple(mixed.getConstraintParameters(c)[:2]) for c in range(mixed.getNumConstraints())]
        self.assertEqual(sorted(kept), sorted(c for c in constraints if not set(c) <= ml))
        self.assertLess(len(kept), len(constraints))
        # The original System is untouched.
        self.assertEqual(system.getNumConstraints(), len(constraints))

    def test_mechanical_embedding_against_hand_built_system(self):
        top, pos = peptide()
        system = app.ForceField("amber14-all.xml").createSystem(top, constraints=None)
        mixed = openmmenn.createMixedSystem(top, system, ALA, model=openmmenn.shipped_model(), embedding="mechanical")
        hand = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
        ml = set(ALA)
        for f in hand.getForces():
            if isinstance(f, openmm.HarmonicBondForce):
                for k in range(f.getNumBonds()):
                    i, j, r, _ = f.getBondParameters(k)
                    if {i, j} <= ml:
                        f.setBondParameters(k, i, j, r, 0.0)
            elif isinstance(f, openmm.HarmonicAngleForce):
                for k in range(f.getNumAngles()):
                    i, j, l, a, _ = f.getAngleParameters(k)
                    if {i, j, l} <= ml:
                        f.setAngleParameters(k, i, j, l, a, 0.0)
            elif isinstance(f, openmm.PeriodicTorsionForce):
                for k in range(f.getNumTorsions()):
                    i, j, l, m, n, phase, _ = f.getTorsionParameters(k)
                    if {i, j, l, m} <= ml:
                        f.setTorsionParameters(k, i, j, l, m, n, phase, 0.0)
            elif isinstance(f, openmm.NonbondedForce):
                for a in ALA:
                    for b in ALA:
                        if a < b:
                            f.addException(a, b, 0.0, 1.0, 0.0, True)
        force = openmmenn.ENNForce(openmmenn.shipped_model())
        for i in ALA:
            force.addParticle(i, list(top.atoms())[i].element.atomic_number)
        hand.addForce(force)
        assert_same(self, evaluate(mixed, pos), evaluate(hand, pos), "mechanical vs hand-built")

    def test_mechanical_ml_mm_coulomb_is_openmms_with_the_original_charges(self):
        # NonbondedForce of the mixed System = the original's minus the ML-ML pairs (OpenMM's own energy of
        # the region alone, with its exceptions).
        top, pos = peptide()
        system = app.ForceField("amber14-all.xml").createSystem(top, constraints=None)
        for k, f in enumerate(system.getForces()):
            f.setForceGroup(1 if isinstance(f, openmm.NonbondedForce) else 0)
        mixed = openmmenn.createMixedSystem(top, system, ALA, model=model("frozen_charges"), embedding="mechanical",
                                            force_group=2)
        region = openmm.System()
        nb = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)][0]
        alone = openmm.NonbondedForce()
        index = {a: region.addParticle(1.0) for a in ALA}
        for a in ALA:
            alone.addParticle(*nb.getParticleParameters(a))
        for e in range(nb.getNumExceptions()):
            p1, p2, q, s, eps = nb.getExceptionParameters(e)
            if p1 in index and p2 in index:
                alone.addException(index[p1], index[p2], q, s, eps)
        region.addForce(alone)
        e_mixed = evaluate(mixed, pos, groups={1})[0]
        e_original = evaluate(system, pos, groups={1})[0]
        e_region = evaluate(region, [pos[a] for a in ALA])[0]
        self.assertAlmostEqual(e_mixed, e_original - e_region, delta=1e-9 * abs(e_original))
        self.assertNotAlmostEqual(e_region, 0.0, delta=1.0)

    def test_mechanical_embedding_in_an_empty_periodic_box_keeps_the_models_energy(self):
        # The whole peptide is ML, alone in a periodic box with PME: nothing else is there, so the mixed System's
        # energy and forces must be the ENNForce's alone. The shipped model sums its own Coulomb term with PME,
        # images included; the MM charges' ML-ML image terms (about -0.09 kJ/mol here, which the NonbondedForce's
        # reciprocal sum holds even for excluded pairs) must not be counted again. They cancel to round-off:
        # the same charges on the same grid, subtracted (1e-6 kJ/mol against terms of about 1.5e3 kJ/mol).
        top, pos = peptide()
        edge = 2.5
        top.setPeriodicBoxVectors([openmm.Vec3(edge, 0, 0), openmm.Vec3(0, edge, 0), openmm.Vec3(0, 0, edge)] * unit.nanometer)
        system = app.ForceField("amber14-all.xml").createSystem(top, nonbondedMethod=app.PME,
                                                                 nonbondedCutoff=1.0 * unit.nanometer, constraints=None)
        for f in system.getForces():
            if isinstance(f, openmm.NonbondedForce):
                f.setUseDispersionCorrection(False)  # a constant over particle types, blind to exclusions
        for interpolate in (False, True):
            with self.subTest(interpolate=interpolate):
                mixed = openmmenn.createMixedSystem(top, system, PEPTIDE, model=openmmenn.shipped_model(),
                                                    embedding="mechanical", interpolate=interpolate, force_group=1)
                if interpolate:  # the ENNForce sits inside the interpolating CustomCVForce: compare with a copy
                    alone = openmm.System()
                    for i in range(mixed.getNumParticles()):
                        alone.addParticle(mixed.getParticleMass(i))
                    alone.setDefaultPeriodicBoxVectors(*mixed.getDefaultPeriodicBoxVectors())
                    alone.addForce(openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(enn_force(mixed))))
                    e_model, f_model = evaluate(alone, pos)
                    e_mixed, f_mixed = evaluate(mixed, pos)
                    e_rest, f_rest = e_mixed - e_model, f_mixed - f_model
                else:
                    e_rest, f_rest = evaluate(mixed, pos, groups={0})
                self.assertLess(abs(e_rest), 1e-6, "energy outside the model")
                self.assertLess(np.abs(f_rest).max(), 1e-6, "forces outside the model")

    def test_electrostatic_embedding_against_hand_built_system(self):
        top, pos = peptide()
        system = app.ForceField("amber14-all.xml", "implicit/obc2.xml").createSystem(top, constraints=None)
        mixed = openmmenn.createMixedSystem(top, system, PEPTIDE, model=openmmenn.shipped_model())
        hand = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
        for index in reversed(range(hand.getNumForces())):
            if isinstance(hand.getForce(index), (openmm.HarmonicBondForce, openmm.HarmonicAngleForce, openmm.PeriodicTorsionForce)):
                hand.removeForce(index)  # every term is inside the region
        force = openmmenn.ENNForce(openmmenn.shipped_model())
        for atom in top.atoms():
            force.addParticle(atom.index, atom.element.atomic_number)
        force.coupleToNonbondedForce(hand, [f for f in hand.getForces() if isinstance(f, openmm.NonbondedForce)][0])
        force.coupleToCustomGBForce(hand, [f for f in hand.getForces() if isinstance(f, openmm.CustomGBForce)][0])
        hand.addForce(force)
        assert_same(self, evaluate(mixed, pos), evaluate(hand, pos), "electrostatic vs hand-built")


class TestElectrostaticEmbedding(unittest.TestCase):
    """Frozen charges: the electrostatic embedding must equal OpenMM's own forces with those charges on the ML atoms."""

    def frozen_check(self, system, top, pos, ml, what):
        mixed = openmmenn.createMixedSystem(top, system, ml, model=model("frozen_charges"))
        charges = ml_charges(mixed, pos)
        mechanical = openmmenn.createMixedSystem(top, with_region_charges(system, ml, charges), ml,
                                                 model=model("frozen_charges"), embedding="mechanical",
                                                 total_charge=enn_force(mixed).getTotalCharge())
        a, b = evaluate(mixed, pos), evaluate(mechanical, pos)
        assert_same(self, a, b, what)
        return a

    def test_implicit_solvent_models_match_openmm_with_frozen_charges(self):
        top, pos = peptide()
        for xml in ("obc2", "obc1", "hct", "gbn", "gbn2"):
            with self.subTest(model=xml):
                system = app.ForceField("amber14-all.xml", f"implicit/{xml}.xml").createSystem(top, constraints=None)
                self.frozen_check(system, top, pos, ALA, xml)
        system = app.ForceField("amber14-all.xml", "implicit/gbn2.xml").createSystem(
            top, constraints=None, implicitSolventKappa=1.0)  # 1/nm
        self.frozen_check(system, top, pos, ALA, "gbn2 with salt")
        system = app.ForceField("amber99sb.xml", "amber99_obc.xml").createSystem(top, constraints=None)
        self.frozen_check(system, top, pos, ALA, "GBSAOBCForce")

    def test_implicit_solvent_with_a_cutoff_matches_openmm_with_frozen_charges(self):
        # The cutoff (0.6 nm, shorter than the peptide) drops pairs from the Born radii and shifts each pair energy;
        # CutoffPeriodic also takes the nearest image, in a 2 nm box, and makes the ENNForce periodic.
        top, pos = peptide()
        cutoff = 0.6 * unit.nanometer
        for periodic in (False, True):
            method = app.CutoffPeriodic if periodic else app.CutoffNonPeriodic
            top.setPeriodicBoxVectors(np.eye(3) * 2.0 * unit.nanometer if periodic else None)
            for files in (("amber14-all.xml", "implicit/obc2.xml"), ("amber14-all.xml", "implicit/gbn2.xml"),
                          ("amber99sb.xml", "amber99_obc.xml")):
                with self.subTest(files=files[1], periodic=periodic):
                    system = app.ForceField(*files).createSystem(top, nonbondedMethod=method, nonbondedCutoff=cutoff,
                                                                 constraints=None)
                    mixed = openmmenn.createMixedSystem(top, system, ALA, model=model("frozen_charges"))
                    force = enn_force(mixed)
                    self.assertAlmostEqual(force.getImplicitSolventCutoff(), 0.6, places=12)
                    self.assertEqual(force.usesPeriodicBoundaryConditions(), periodic)
                    self.frozen_check(system, top, pos, ALA, f"{files[1]}, {method}")
        # Without the cutoff, the energy differs: the test above sees it.
        top.setPeriodicBoxVectors(None)
        system = app.ForceField("amber14-all.xml", "implicit/obc2.xml").createSystem(top, constraints=None)
        cut = app.ForceField("amber14-all.xml", "implicit/obc2.xml").createSystem(
            top, nonbondedMethod=app.CutoffNonPeriodic, nonbondedCutoff=cutoff, constraints=None)
        e_plain = self.frozen_check(system, top, pos, ALA, "obc2")[0]
        e_cut = self.frozen_check(cut, top, pos, ALA, "obc2 cut")[0]
        self.assertGreater(abs(e_plain - e_cut), 1.0)

    def test_pme_and_reaction_field_match_openmm_with_frozen_charges(self):
        ff, top, pos = solvated()
        for method in (app.PME, app.CutoffPeriodic):
            with self.subTest(method=str(method)):
                system = ff.createSystem(top, nonbondedMethod=method, nonbondedCutoff=0.7 * unit.nanometer, constraints=None)
                self.frozen_check(system, top, pos, PEPTIDE, str(method))

    def test_forces_are_the_gradient_with_predicted_charges(self):
        check_forces_are_the_gradient(self, openmmenn.shipped_model())


def check_forces_are_the_gradient(test, model_path):
    """createMixedSystem's forces with `model_path`'s predicted charges (the ALA residue in GBn2, OBC2, PME and reaction
    field) against central differences of its energy, on ML and MM atoms."""
    top, pos = peptide()
    ff, wtop, wpos = solvated()
    cases = [("gbn2", top, pos, app.ForceField("amber14-all.xml", "implicit/gbn2.xml").createSystem(top, constraints=None)),
             ("obc2", top, pos, app.ForceField("amber14-all.xml", "implicit/obc2.xml").createSystem(top, constraints=None)),
             ("pme", wtop, wpos, ff.createSystem(wtop, nonbondedMethod=app.PME, nonbondedCutoff=0.7 * unit.nanometer,
                                                 constraints=None, ewaldErrorTolerance=1e-6)),
             ("rf", wtop, wpos, ff.createSystem(wtop, nonbondedMethod=app.CutoffNonPeriodic,
                                                nonbondedCutoff=0.7 * unit.nanometer, constraints=None))]
    for name, t, p, system in cases:
        with test.subTest(case=name):
            mixed = openmmenn.createMixedSystem(t, system, ALA, model=model_path)
            enn = enn_force(mixed)
            enn.setForceGroup(3)
            x = np.array(p.value_in_unit(unit.nanometer))
            context = openmm.Context(mixed, openmm.VerletIntegrator(0.001), REFERENCE)
            context.setPositions(x)
            f = context.getState(getForces=True, groups={3}).getForces(asNumpy=True).value_in_unit(FORCE_UNIT)
            q = np.array(enn.getCharges(context))
            test.assertGreater(np.ptp(q), 0.05)  # the charges move with the geometry
            # PME's real-space cutoff makes the energy jump by ~k q^2 erfc(alpha r_c)/r_c ~ 1e-5 kJ/mol when a pair
            # crosses it: h = 1e-4 nm keeps that below the tolerance, and the h^2 error terms far below.
            h = 1e-4 if name == "pme" else 1e-5
            for atom, k in [(ALA[0], 0), (ALA[4], 1), (ALA[-1], 2), (0, 2), (len(x) - 1, 0)]:
                def e(step):
                    y = x.copy()
                    y[atom, k] += step
                    context.setPositions(y)
                    return context.getState(getEnergy=True, groups={3}).getPotentialEnergy().value_in_unit(KJ)
                numeric = -(e(h) - e(-h)) / (2 * h)
                test.assertAlmostEqual(f[atom, k], numeric, delta=2e-5 * max(1.0, np.abs(f).max()), msg=f"{name} atom {atom}")



def available(name):
    try:
        openmm.Platform.getPlatformByName(name)
        return True
    except openmm.OpenMMException:
        return False


class TestPlatforms(unittest.TestCase):
    """The GB models on CPU and OpenCL against Reference. Tolerances: double precision 1e-9 relative (round-off);
    float (the CPU network, OpenCL single) those of tests/ENNPlatformComparison.h: 1e-5 energy, 1e-3 of the
    largest force for any component."""

    def compare(self, platform, properties, energy_tolerance, force_tolerance):
        top, pos = peptide()
        for xml, kappa in (("gbn2", 1.0), ("gbn", 0.0), ("obc1", 0.0), ("hct", 0.0)):
            with self.subTest(platform=platform, model=xml):
                system = app.ForceField("amber14-all.xml", f"implicit/{xml}.xml").createSystem(
                    top, constraints=None, implicitSolventKappa=kappa)
                # The ENNForce alone (group 3): OpenMM's own forces are OpenMM's business.
                mixed = openmmenn.createMixedSystem(top, system, ALA, model=openmmenn.shipped_model(), force_group=3)
                reference = evaluate(mixed, pos, groups={3})
                context = openmm.Context(mixed, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform),
                                         properties)
                context.setPositions(pos)
                state = context.getState(getEnergy=True, getForces=True, groups={3})
                e = state.getPotentialEnergy().value_in_unit(KJ)
                f = state.getForces(asNumpy=True).value_in_unit(FORCE_UNIT)
                self.assertLess(abs(e - reference[0]), energy_tolerance * abs(reference[0]))
                self.assertLess(np.abs(f - reference[1]).max(), force_tolerance * np.abs(reference[1]).max())

    def test_cpu(self):
        self.compare("CPU", {}, 1e-5, 1e-3)

    @unittest.skipUnless(available("OpenCL"), "no OpenCL platform (install pocl-opencl-icd to run it on the CPU)")
    def test_opencl(self):
        self.compare("OpenCL", {"Precision": "double"}, 1e-9, 1e-9)
        self.compare("OpenCL", {"Precision": "single"}, 1e-5, 1e-3)


class TestInterpolation(unittest.TestCase):
    def test_lambda_zero_is_mm_and_one_is_ml(self):
        top, pos = peptide()
        for xml, embedding in (("implicit/gbn2.xml", "electrostatic"), ("implicit/obc2.xml", "mechanical")):
            with self.subTest(embedding=embedding):
                system = app.ForceField("amber14-all.xml", xml).createSystem(top, constraints=None)
                plain = openmmenn.createMixedSystem(top, system, ALA, model=openmmenn.shipped_model(), embedding=embedding)
                mixed = openmmenn.createMixedSystem(top, system, ALA, model=openmmenn.shipped_model(), embedding=embedding,
                                                    interpolate=True)
                lam = openmmenn.INTERPOLATION_PARAMETER
                assert_same(self, evaluate(mixed, pos, parameters={lam: 0.0}), evaluate(system, pos), "lambda 0")
                assert_same(self, evaluate(mixed, pos, parameters={lam: 1.0}), evaluate(plain, pos), "lambda 1")
                e0, e1 = evaluate(system, pos)[0], evaluate(plain, pos)[0]
                self.assertAlmostEqual(evaluate(mixed, pos, parameters={lam: 0.25})[0], 0.75 * e0 + 0.25 * e1,
                                       delta=1e-9 * abs(e0))

    def test_interpolation_with_pme(self):
        ff, top, pos = solvated(1.47)
        system = ff.createSystem(top, nonbondedMethod=app.PME, nonbondedCutoff=0.6 * unit.nanometer, constraints=None)
        mixed = openmmenn.createMixedSystem(top, system, PEPTIDE, model=openmmenn.shipped_model(), interpolate=True)
        plain = openmmenn.createMixedSystem(top, system, PEPTIDE, model=openmmenn.shipped_model())
        lam = openmmenn.INTERPOLATION_PARAMETER
        assert_same(self, evaluate(mixed, pos, parameters={lam: 0.0}), evaluate(system, pos), "lambda 0, PME")
        assert_same(self, evaluate(mixed, pos, parameters={lam: 1.0}), evaluate(plain, pos), "lambda 1, PME")


class TestChargeAndErrors(unittest.TestCase):
    def test_total_charge_inferred_from_the_region(self):
        top, pos = peptide()
        system = app.ForceField("amber14-all.xml").createSystem(top)
        mixed = openmmenn.createMixedSystem(top, system, PEPTIDE)
        self.assertEqual(enn_force(mixed).getTotalCharge(), 0.0)
        # ALA alone carries the backbone's partial charges: its MM charges sum to a non-integer.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            openmmenn.createMixedSystem(top, system, ALA[:5], model=model("frozen_charges"))
        self.assertTrue(any("not an integer" in str(w.message) for w in caught), [str(w.message) for w in caught])
        mixed = openmmenn.createMixedSystem(top, system, PEPTIDE, total_charge=1 * unit.elementary_charge)
        self.assertEqual(enn_force(mixed).getTotalCharge(), 1.0)

    def test_charge_and_multiplicity_reach_a_model_that_reads_them(self):
        """A model with MACE's charge and spin embedding (no charge head) gets the region's inferred or given total
        charge and the multiplicity, and its energy depends on them; createSystem passes them too."""
        top, pos = peptide()
        system = app.ForceField("amber14-all.xml").createSystem(top)
        energies = {}
        for charge, multiplicity in ((None, 1), (1, 1), (None, 2)):
            mixed = openmmenn.createMixedSystem(top, system, PEPTIDE, model=model("nonlinear"), embedding="mechanical",
                                                total_charge=charge, multiplicity=multiplicity)
            force = enn_force(mixed)
            self.assertEqual((force.getTotalCharge(), force.getSpinMultiplicity()), (charge or 0.0, multiplicity))
            energies[charge, multiplicity] = evaluate(mixed, pos)[0]
        self.assertEqual(len(set(energies.values())), 3, energies)
        whole = openmmenn.createSystem(top, model=model("nonlinear"), total_charge=-1, multiplicity=3)
        self.assertEqual((enn_force(whole).getTotalCharge(), enn_force(whole).getSpinMultiplicity()), (-1.0, 3))

    def test_errors_name_the_problem(self):
        top, pos = peptide()
        system = app.ForceField("amber14-all.xml").createSystem(top)
        atom = list(top.atoms())[7]
        atom.element = None
        with self.assertRaisesRegex(openmm.OpenMMException, "atom 7 \\(H of residue ALA 2\\) has no element"):
            openmmenn.createMixedSystem(top, system, ALA)
        top, pos = peptide()
        with self.assertRaisesRegex(openmm.OpenMMException, "charge head"):
            openmmenn.createMixedSystem(top, system, ALA, model=model("chiral_so3"))
        openmmenn.createMixedSystem(top, system, ALA, model=model("chiral_so3"), embedding="mechanical")
        # A CustomGBForce that is not one of openmm.app's models.
        custom = openmm.CustomGBForce()
        custom.addPerParticleParameter("charge")
        custom.addComputedValue("B", "0.2", openmm.CustomGBForce.SingleParticle)
        custom.addEnergyTerm("-charge^2/B", openmm.CustomGBForce.SingleParticle)
        for i in range(system.getNumParticles()):
            custom.addParticle([0.1])
        system.addForce(custom)
        with self.assertRaisesRegex(openmm.OpenMMException, "not one of openmm.app's implicit-solvent models"):
            openmmenn.createMixedSystem(top, system, ALA)
        with self.assertRaisesRegex(openmm.OpenMMException, "embedding must be"):
            openmmenn.createMixedSystem(top, system, ALA, embedding="polarizable")
        # A GB force whose cutoff is not the one its energy expressions were written for.
        system = app.ForceField("amber14-all.xml", "implicit/gbn2.xml").createSystem(
            top, nonbondedMethod=app.CutoffNonPeriodic)
        [gb] = [f for f in system.getForces() if isinstance(f, openmm.CustomGBForce)]
        gb.setCutoffDistance(0.5)
        with self.assertRaisesRegex(openmm.OpenMMException, "does not state the force's cutoff"):
            openmmenn.createMixedSystem(top, system, ALA)


def water_cluster(n=3):
    """n waters of openmm.app's water box, as a Topology without a box, and their positions."""
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(app.ForceField("amber14/tip3p.xml"), boxSize=openmm.Vec3(1.2, 1.2, 1.2) * unit.nanometer)
    modeller.delete(list(modeller.topology.residues())[n:])
    modeller.topology.setPeriodicBoxVectors(None)
    return modeller.topology, modeller.positions


class TestChargeGroups(unittest.TestCase):
    """Several molecules in one ENNForce: each molecule's charges sum to its own charge."""

    def test_each_molecule_keeps_its_charge_on_every_platform(self):
        top, pos = water_cluster(3)
        system = openmmenn.createSystem(top)
        force = enn_force(system)
        self.assertEqual(force.getNumChargeGroups(), 3)
        self.assertEqual(force.getChargeGroupParameters(1), [[3, 4, 5], 0.0])
        reference = evaluate(system, pos)
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), REFERENCE)
        context.setPositions(pos)
        q = force.getCharges(context, asNumpy=True)
        np.testing.assert_allclose(q.reshape(3, 3).sum(axis=1), 0.0, atol=1e-12)
        # One group for all would let charge move between the molecules.
        single = openmmenn.ENNForce(openmmenn.shipped_model())
        one = openmm.System()
        for atom in top.atoms():
            single.addParticle(one.addParticle(atom.element.mass), atom.element.atomic_number)
        one.addForce(single)
        context1 = openmm.Context(one, openmm.VerletIntegrator(0.001), REFERENCE)
        context1.setPositions(pos)
        self.assertGreater(np.abs(single.getCharges(context1, asNumpy=True).reshape(3, 3).sum(axis=1)).max(), 1e-6)
        for name, properties, tolerance in (("CPU", {}, 1e-5), ("OpenCL", {"Precision": "double"}, 1e-9)):
            if not available(name):
                continue
            with self.subTest(platform=name):
                context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(name), properties)
                context.setPositions(pos)
                state = context.getState(getEnergy=True, getForces=True)
                self.assertLess(abs(state.getPotentialEnergy().value_in_unit(KJ) - reference[0]), tolerance * abs(reference[0]))
                f = state.getForces(asNumpy=True).value_in_unit(FORCE_UNIT)
                self.assertLess(np.abs(f - reference[1]).max(), 100 * tolerance * np.abs(reference[1]).max())
                np.testing.assert_allclose(force.getCharges(context, asNumpy=True), q, atol=100 * tolerance)
        copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
        self.assertEqual(enn_force(copy).getNumChargeGroups(), 3)
        assert_same(self, evaluate(copy, pos), reference, "charge groups after XML")

    def test_forces_with_groups_are_the_gradient(self):
        # The peptide and its two nearest waters as the ML region, in its water without cutoff (an energy without
        # the small jumps of pairs crossing a cutoff, which a central difference would see): three molecules, three groups.
        ff, top, pos = solvated()
        system = ff.createSystem(top, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
        x = np.array(pos.value_in_unit(unit.nanometer))
        waters = [r for r in top.residues() if r.name == "HOH"]
        nearest = sorted(waters, key=lambda r: np.linalg.norm(x[[a.index for a in r.atoms()]].mean(0) - x[:22].mean(0)))[:2]
        ml = PEPTIDE + [a.index for r in nearest for a in r.atoms()]
        mixed = openmmenn.createMixedSystem(top, system, ml, force_group=3)
        enn = enn_force(mixed)
        self.assertEqual(enn.getNumChargeGroups(), 3)
        context = openmm.Context(mixed, openmm.VerletIntegrator(0.001), REFERENCE)
        context.setPositions(x)
        q = enn.getCharges(context, asNumpy=True)
        self.assertAlmostEqual(q[22:25].sum(), 0.0, places=12)
        self.assertAlmostEqual(q[:22].sum(), 0.0, places=12)
        f = context.getState(getForces=True, groups={3}).getForces(asNumpy=True).value_in_unit(FORCE_UNIT)
        h = 1e-5
        for atom, k in [(ml[0], 0), (ml[23], 1), (ml[-1], 2), (0, 1)]:
            def e(step):
                y = x.copy()
                y[atom, k] += step
                context.setPositions(y)
                return context.getState(getEnergy=True, groups={3}).getPotentialEnergy().value_in_unit(KJ)
            self.assertAlmostEqual(f[atom, k], -(e(h) - e(-h)) / (2 * h), delta=2e-5 * np.abs(f).max(), msg=f"atom {atom}")

    def test_bad_groups_are_refused(self):
        top, pos = water_cluster(2)
        for groups, total, message in (([[0, 1, 2], [2, 3, 4, 5]], 0.0, "is in charge groups 0 and 1"),
                                       ([[0, 1, 2], [3, 4]], 0.0, "particle 5 is in no charge group"),
                                       ([[0, 1, 2], [3, 4, 5]], 1.0, "add up to 0.000000 e, but the total charge is 1.000000"),
                                       ([[0, 1, 2], [3, 4, 9]], 0.0, "names particle 9")):
            system = openmm.System()
            force = openmmenn.ENNForce(openmmenn.shipped_model())
            for atom in top.atoms():
                force.addParticle(system.addParticle(1.0), atom.element.atomic_number)
            for g in groups:
                force.addChargeGroup(g, 0.0)
            force.setTotalCharge(total)
            system.addForce(force)
            with self.assertRaisesRegex(openmm.OpenMMException, message):
                openmm.Context(system, openmm.VerletIntegrator(0.001), REFERENCE)
        with self.assertRaisesRegex(openmm.OpenMMException, "give each its charge with molecule_charges"):
            openmmenn.createSystem(top, total_charge=1)
        system = openmmenn.createSystem(top, molecule_charges=[1, -1])
        self.assertEqual(enn_force(system).getChargeGroupParameters(0)[1], 1.0)
        with self.assertRaisesRegex(openmm.OpenMMException, "add up to 0.0 e, not to total_charge = 1.0 e"):
            openmmenn.createSystem(top, total_charge=1, molecule_charges=[1, -1])


class TestPureML(unittest.TestCase):
    def test_create_system(self):
        top, pos = peptide()
        system = openmmenn.createSystem(top)
        force = enn_force(system)
        self.assertEqual(force.getNumParticles(), 22)
        self.assertFalse(force.usesPeriodicBoundaryConditions())
        e, f = evaluate(system, pos)
        direct = openmm.System()
        alone = openmmenn.ENNForce(openmmenn.shipped_model())
        for atom in top.atoms():
            alone.addParticle(direct.addParticle(atom.element.mass), atom.element.atomic_number)
        direct.addForce(alone)
        assert_same(self, (e, f), evaluate(direct, pos), "createSystem")
        ff, wtop, wpos = solvated(1.27)
        water = app.Modeller(wtop, wpos)
        water.delete([r for r in water.topology.residues() if r.name != "HOH"])
        periodic = openmmenn.createSystem(water.topology, cutoff=0.5 * unit.nanometer)
        force = enn_force(periodic)
        self.assertTrue(force.usesPeriodicBoundaryConditions())
        self.assertEqual(force.getElectrostaticsMethod(), openmmenn.ENNForce.PME)  # the shipped model's own Coulomb term
        evaluate(periodic, water.positions)


class TestSerialization(unittest.TestCase):
    def test_coupled_gb_models_survive_xml(self):
        top, pos = peptide()
        for xml, method in (("gbn2", app.NoCutoff), ("hct", app.CutoffNonPeriodic)):
            with self.subTest(model=xml):
                system = app.ForceField("amber14-all.xml", f"implicit/{xml}.xml").createSystem(
                    top, constraints=None, implicitSolventKappa=0.5, nonbondedMethod=method, nonbondedCutoff=0.7 * unit.nanometer)
                mixed = openmmenn.createMixedSystem(top, system, ALA, model=openmmenn.shipped_model())
                copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(mixed))
                force = openmmenn.findENNForce(copy)
                self.assertEqual(force.getImplicitSolventModel(), getattr(openmmenn.ENNForce, xml.upper() if xml == "hct" else "GBn2"))
                self.assertEqual(force.getGBFormulation(), openmmenn.ENNForce.AppCustomGBFormulation)
                self.assertEqual(force.getImplicitSolventKappa(), 0.5)
                self.assertEqual(force.getImplicitSolventCutoff(), 0.0 if method is app.NoCutoff else 0.7)
                assert_same(self, evaluate(copy, pos), evaluate(mixed, pos), f"{xml} after XML")


class TestPythonAPI(unittest.TestCase):
    def test_quantities_cast_docstrings_numpy(self):
        force = openmmenn.ENNForce(openmmenn.shipped_model())
        force.setTotalCharge(-1 * unit.elementary_charge)
        force.setCutoffDistance(9 * unit.angstrom)
        force.setImplicitSolventKappa(0.5 / unit.angstrom)
        force.setImplicitSolventCutoff(12 * unit.angstrom)
        self.assertAlmostEqual(force.getImplicitSolventCutoff(), 1.2, places=14)
        with self.assertRaisesRegex(openmm.OpenMMException, "implicit-solvent cutoff must be zero"):
            force.setImplicitSolventCutoff(-1.0)
        self.assertEqual(force.getTotalCharge(), -1.0)
        self.assertAlmostEqual(force.getCutoffDistance(), 0.9, places=14)
        self.assertAlmostEqual(force.getImplicitSolventKappa(), 5.0, places=12)
        undocumented = [name for name in dir(openmmenn.ENNForce) if not name.startswith("_") and name[0].islower()
                        and callable(getattr(openmmenn.ENNForce, name)) and not (getattr(openmmenn.ENNForce, name).__doc__ or "").strip()]
        self.assertEqual(undocumented, [])
        for fn in (openmmenn.createSystem, openmmenn.createMixedSystem):
            self.assertIn("Parameters", fn.__doc__)
        top, pos = peptide()
        system = openmmenn.createSystem(top)
        system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
        recovered = openmmenn.ENNForce.cast(system.getForce(0))
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), REFERENCE)
        context.setPositions(pos)
        q = recovered.getCharges(context, asNumpy=True)
        self.assertIsInstance(q, np.ndarray)
        self.assertEqual(q.shape, (22,))
        self.assertAlmostEqual(q.sum(), 0.0, places=12)
        with self.assertRaisesRegex(openmm.OpenMMException, "not an ENNForce"):
            openmmenn.ENNForce.cast(system.getForce(1))
        # A cast of a temporary (the clone that owns the C++ object) keeps it alive: without that, the clone was freed
        # here and the calls below used freed memory (a crash, "free(): corrupted unsorted chunks", seen in use).
        import gc
        import weakref
        clone = openmm.XmlSerializer.clone(recovered)
        alive = weakref.ref(clone)
        cast = openmmenn.ENNForce.cast(clone)
        del clone
        gc.collect()
        self.assertIsNotNone(alive(), "the cast let its force be freed")
        cast.setTotalCharge(1.0)
        self.assertEqual(cast.getTotalCharge(), 1.0)
        self.assertIn("ENNForce", openmm.XmlSerializer.serialize(cast))


if __name__ == "__main__":
    unittest.main()
