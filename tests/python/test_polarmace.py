"""PolarMACE (mace-torch 0.3.16's mace.modules.extensions.PolarMACE, with graph-longrange 0.4.0) against the converter,
through an OpenMM Context on the Reference platform, with open boundaries (molecules: graph-longrange's real-space sums)
and in periodic cells (water boxes, one smaller than 2 r_max: its reciprocal sums).

The models are built with mace-torch itself, with random weights, in the MACE-POLAR-1-M layout of mace's own tests
(tests/extensions/polar/test_polar_models.py, `_build_full_model`: three non-linear layers with l <= 2 hidden features, an
agnostic product of correlation 3, max_ell 3, r_max 6 A, Gaussian multipoles of width 1.5 A up to l = 1 in two spin
channels, field features up to l = 1 on probes of 1.5 and 3 A with norms (20, 20, 0.5, 0.5), two field-update steps, the
electrostatic self interaction and the local electron energy), with 8 channels instead of 512, and in variants (charges
only, field self interaction, no electron energy, one update step). The multipole sources' last weights are scaled so that
the charges are of a realistic size (|q| ~ 0.01-1 e: random weights give tens of e, energies the sanity bounds refuse), and the Fukui weights given
a positive bias (their sum divides: near zero it amplifies the charges without bound, a hazard of the architecture).

Compared in float64 for float64 and float32 saved files (bounds as test_mace_torch.py: 1e-7 eV, 1e-8 eV/A, charges
1e-9 e; the issue asks for 1e-6), at (total charge, multiplicity) (0, 1), (1, 2), (-1, 1) and (0, 3): neutral, charged and
open-shell. The forces are also checked against finite differences of the energy (independent of mace-torch).
"""
import os
import unittest

import numpy as np

import test_mace_torch
from support import EV, energy_forces_ev, require

mace = require("mace")
graph_longrange = require("graph_longrange")
if mace is not None and graph_longrange is not None:
    import ase
    import ase.build
    import openmm
    import openmmenn
    import torch
    from e3nn import o3 as e3nn_o3
    from mace.modules.extensions import PolarMACE
    from openmm import unit

    from openmmenn import mace as converter
    from test_mace_torch import convert_for_test
    from test_maceles import water_box

ELEMENTS = [1, 6, 7, 8]
ENERGIES_E0 = [-13.6, -1029.8, -1484.9, -2041.8]
STATES = ((0, 1), (1, 2), (-1, 1), (0, 3))
NONLINEAR = "RealAgnosticResidualNonLinearInteractionBlock"

# MACE-POLAR-1-M's layout with 8 channels (mace's tests/extensions/polar/test_polar_models.py, _build_full_model)
POLAR_M = dict(first=NONLINEAR, rest=NONLINEAR, interactions=3, hidden="8x0e+8x1o+8x2e", edge_irreps="4x0e+4x1o+4x2e",
               max_ell=3, correlation=3, r_max=6.0, num_polynomial_cutoff=6, mlp_irreps="16x0e", radial_mlp=(16, 16, 16),
               kspace_cutoff_factor=1.0, atomic_multipoles_max_l=1, atomic_multipoles_smearing_width=1.5, field_feature_max_l=1,
               field_feature_widths=[1.5, 3.0], field_feature_norms=[20.0, 20.0, 0.5, 0.5], num_recursion_steps=2, field_si=False,
               include_electrostatic_self_interaction=True, add_local_electron_energy=True, field_norm_factor=1.0,
               fixedpoint_update_config={"type": "AgnosticEmbeddedOneBodyVariableUpdate",
                                         "potential_embedding_cls": "AgnosticChargeBiasedLinearPotentialEmbedding",
                                         "nonlinearity_cls": "MLPNonLinearity"},
               field_readout_config={"type": "OneBodyMLPFieldReadout"})


def build_polar(seed=0, **changes):
    """A PolarMACE with random weights in the current default dtype, POLAR_M changed by `changes`."""
    options = dict(POLAR_M, **changes)
    options["edge_irreps"] = e3nn_o3.Irreps(options["edge_irreps"])
    model = converter.random_mace_model(ENERGIES_E0, elements=ELEMENTS, seed=seed, model_class=PolarMACE, **options)
    with torch.no_grad():  # multipoles of a realistic size, Fukui weights of one sign (a sum near zero divides)
        for source in model.lr_source_maps:
            source.linear.weight.mul_(0.01)
        model.fukui_source_map.linear_2.weight.mul_(0.1)
        model.fukui_source_map.linear_2.bias.add_(1.0)
        for update in model.field_dependent_charges_maps:
            update.readout.linear_2.weight.mul_(0.01)
            update.readout.linear_2.bias.mul_(0.01)
            update.readout.linear_2.bias[-2:].add_(1.0)  # its last two outputs are the step's Fukui weights
    return model


def molecules():
    out = []
    for k, name in enumerate(("CH3CONH2", "CH3CH2OH", "H2O", "C6H6")):
        atoms = ase.build.molecule(name)
        atoms.rattle(0.05, seed=k + 1)
        out.append(atoms)
    return out


def boxes():
    """Periodic water: a cubic 27-water box and a triclinic 8-water box smaller than 2 r_max."""
    return [water_box(3, 3.1, seed=5), water_box(2, 3.1, seed=6, tilt=(1.1, -0.9, 1.4))]


def polar_energy_forces(model, atoms, r_max, total_charge, multiplicity):
    """mace-torch's energy, forces and charges, periodic where `atoms` is (rcell 2 pi inv(cell)^T, as mace's AtomicData
    has it). With open boundaries PolarMACE's k-space set-up still needs a cell (a zero one fails in graph-longrange's
    compute_k_vectors_flat); with pbc False it is not used."""
    periodic = bool(atoms.pbc.any())
    data = converter.mace_graph(atoms.numbers, atoms.positions, atoms.cell.array if periodic else None, r_max, ELEMENTS)
    cell = torch.tensor(atoms.cell.array) if periodic else torch.eye(3) * 30.0
    data.update({"total_charge": torch.tensor([float(total_charge)]), "total_spin": torch.tensor([float(multiplicity)]),
                 "fermi_level": torch.tensor([0.0]), "external_field": torch.zeros(1, 3), "cell": cell,
                 "rcell": 2 * np.pi * torch.linalg.inv(cell.T), "volume": torch.linalg.det(cell).reshape(1),
                 "pbc": torch.tensor([[periodic] * 3])})
    out = model(data, compute_force=True, training=False)
    return float(out["energy"].item()), out["forces"].detach().numpy(), out["charges"].detach().numpy()


def periodic_setup(box):
    """A polar_context setup that makes the force periodic in `box` (A), or None."""
    if box is None:
        return None

    def setup(system, force):
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*(0.1 * row)) for row in box])
        force.setUsesPeriodicBoundaryConditions(True)
    return setup


def polar_context(path, atoms, total_charge=0, multiplicity=1, platform="Reference", setup=None):
    system = openmm.System()
    force = openmmenn.ENNForce(path)
    force.setTotalCharge(total_charge)
    force.setSpinMultiplicity(multiplicity)
    for z in atoms.numbers:
        force.addParticle(system.addParticle(1.0), int(z))
    if setup:
        setup(system, force)
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    context.setPositions(atoms.positions * 0.1)
    return context, force


@unittest.skipIf(mace is None or graph_longrange is None, "mace-torch and graph-longrange 0.4.0 are needed")
class TestPolarMACE(test_mace_torch.MACEComparison):

    def check(self, name, model, saved=False, states=STATES, periodic_states=((0, 1), (1, 2))):
        path, model = convert_for_test(model, self.folder.name, name, saved)
        cases = [(a, s) for a in molecules() for s in states] + [(a, s) for a in boxes() for s in periodic_states]
        for atoms, (charge, multiplicity) in cases:
            e_mace, f_mace, q_mace = polar_energy_forces(model, atoms, float(model.r_max), charge, multiplicity)
            box = atoms.cell.array if atoms.pbc.any() else None
            e_enn, f_enn = energy_forces_ev(path, atoms.numbers, atoms.positions, box_angstrom=box, total_charge=charge,
                                            multiplicity=multiplicity)
            context, force = polar_context(path, atoms, charge, multiplicity, setup=periodic_setup(box))
            q_enn = np.array(force.getCharges(context))
            label = f"{name} {atoms.get_chemical_formula()}{' periodic' if box is not None else ''} charge {charge} multiplicity {multiplicity}"
            self.assertLess(abs(e_enn - e_mace), 1e-7, f"{label}: {e_enn} vs {e_mace} eV")
            self.assertLess(np.abs(f_enn - f_mace).max(), 1e-8, f"{label}: forces")
            self.assertLess(np.abs(q_enn - q_mace).max(), 1e-9, f"{label}: charges")
            self.assertAlmostEqual(q_enn.sum(), charge, delta=1e-9)  # the Fukui constraint
            self.assertGreater(np.abs(f_mace).max(), 1e-3)  # not two zeros
            self.assertGreater(np.abs(q_mace).max(), 1e-4)
            if os.environ.get("ENN_PRINT_DIFFERENCES"):
                print(f"{label}: energy {abs(e_enn - e_mace):.2e} eV, force {np.abs(f_enn - f_mace).max():.2e} of "
                      f"{np.abs(f_mace).max():.2e} eV/A, charge {np.abs(q_enn - q_mace).max():.2e} e")

    def test_polar_m_layout_matches_mace(self):
        self.check("polar_m", build_polar())

    def test_variants_match_mace(self):
        cases = {
            "charges_only": dict(atomic_multipoles_max_l=0, field_feature_max_l=0, field_feature_norms=[20.0, 20.0]),
            "dipoles_scalar_features": dict(field_feature_max_l=0, field_feature_norms=[20.0, 20.0]),
            "charges_vector_features": dict(atomic_multipoles_max_l=0),
            "field_self_interaction": dict(field_si=True, include_electrostatic_self_interaction=False, num_recursion_steps=1),
            "no_electron_energy": dict(add_local_electron_energy=False, hidden="8x0e+8x1o", edge_irreps="4x0e+4x1o",
                                       max_ell=2, interactions=2, correlation=2),
        }
        for name, changes in cases.items():
            with self.subTest(model=name):
                self.check(name, build_polar(seed=5, **changes), states=((0, 1), (1, 2)))

    def test_float32_saved_model_file(self):
        torch.set_default_dtype(torch.float32)
        try:
            model = build_polar(seed=5)
        finally:
            torch.set_default_dtype(torch.float64)
        self.check("polar_float32", model, saved=True, states=((0, 1), (-1, 2)))

    def test_forces_are_the_gradient(self):
        """Central differences of the Reference energy (h = 1e-4 A; error O(h^2) ~ 1e-7 relative) against its forces."""
        path, _ = convert_for_test(build_polar(seed=7), self.folder.name, "fd", False)
        atoms = molecules()[0]
        context, _ = polar_context(path, atoms, 1, 2)
        forces = context.getState(getForces=True).getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.angstrom)
        h = 1e-4
        worst = 0.0
        for i in range(len(atoms)):
            for a in range(3):
                energies = []
                for sign in (1, -1):
                    moved = atoms.positions.copy()
                    moved[i, a] += sign * h
                    context.setPositions(moved * 0.1)
                    energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
                worst = max(worst, abs(-(energies[0] - energies[1]) / (2 * h) - forces[i, a]))
        self.assertLess(worst, 1e-5 * np.abs(forces).max() + 1e-6, f"worst {worst} kJ/mol/A of {np.abs(forces).max()}")

    def test_unsupported_uses_are_refused(self):
        path, _ = convert_for_test(build_polar(seed=1, hidden="8x0e+8x1o", edge_irreps="4x0e+4x1o", max_ell=2, interactions=2,
                                               correlation=2), self.folder.name, "refused", False)
        atoms = molecules()[2]
        self.assertTrue(openmmenn.ENNForce(path).hasPolarHead())
        self.assertTrue(openmmenn.ENNForce(path).usesTotalCharge())
        for platform in ("CPU", "OpenCL"):
            if platform in [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]:
                with self.assertRaisesRegex(openmm.OpenMMException, "Reference platform"):
                    polar_context(path, atoms, platform=platform)

        def coupled(system, force):
            force.addMMParticle(system.addParticle(1.0), 0.4)

        with self.assertRaisesRegex(openmm.OpenMMException, "environment's charges"):
            polar_context(path, atoms, setup=coupled)
        with self.assertRaisesRegex(ValueError, "quadrupole_feature_corrections"):
            converter.describe_mace_model(build_polar(seed=1, quadrupole_feature_corrections=True, hidden="8x0e+8x1o",
                                                      edge_irreps="4x0e+4x1o", max_ell=2, interactions=2, correlation=2))

    def test_create_system(self):
        """openmmenn.createSystem gives the model the topology's total charge and multiplicity."""
        from openmm import app
        path, _ = convert_for_test(build_polar(seed=4, hidden="8x0e+8x1o", edge_irreps="4x0e+4x1o", max_ell=2, interactions=2,
                                               correlation=2), self.folder.name, "create", False)
        atoms = molecules()[0]
        topology = app.Topology()
        residue = topology.addResidue("MOL", topology.addChain())
        previous = None
        for k, z in enumerate(atoms.numbers):
            atom = topology.addAtom(f"A{k}", app.Element.getByAtomicNumber(int(z)), residue)
            if previous is not None:  # one molecule (bonds only join the atoms into one)
                topology.addBond(previous, atom)
            previous = atom
        system = openmmenn.createSystem(topology, path, total_charge=1, multiplicity=2)
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(atoms.positions * 0.1)
        energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / EV
        expected, _ = energy_forces_ev(path, atoms.numbers, atoms.positions, total_charge=1, multiplicity=2)
        self.assertAlmostEqual(energy, expected, delta=1e-9)

    def test_file_fields_are_checked(self):
        """The loader names the field of a polar head it cannot evaluate (docs/model-format.md, version 6)."""
        from openmmenn import modelfile
        path, _ = convert_for_test(build_polar(seed=2, hidden="8x0e+8x1o", edge_irreps="4x0e+4x1o", max_ell=2, interactions=2,
                                               correlation=2), self.folder.name, "fields", False)
        arch, tensors = modelfile.read(path)
        cases = {
            "format_version 5": (lambda a: a.update(format_version=5), "needs format_version 6"),
            "quadrupoles": (lambda a: a["polar"]["multipoles"].update(lmax=2), "polar.multipoles.lmax"),
            "norms": (lambda a: a["polar"]["field_features"]["norms"].pop(), "polar.field_features.norms"),
            "one source map": (lambda a: a["polar"]["spin_sources"].pop(), "polar.spin_sources"),
            "no steps": (lambda a: a["polar"].update(field_updates=[]), "polar.field_updates"),
            "self term": (lambda a: a["polar"]["electrostatics"]["energy_self_terms"].append([0, 9, 1.0]), "energy_self_terms"),
            "product kind": (lambda a: a["polar"]["field_updates"][0]["tp_out"]["paths"][-1].__setitem__(4, "dot"), "tp_out.paths"),
            "charge head too": (lambda a: a.update(charge_head={"readout": a["layers"][-1]["readout"], "coulomb": {"included": False}}), "charge head or a polar head"),
        }
        for name, (change, message) in cases.items():
            with self.subTest(case=name):
                broken = json_copy(arch)
                change(broken)
                bad = os.path.join(self.folder.name, "bad.enn")
                modelfile.write(bad, broken, tensors)
                with self.assertRaisesRegex(openmm.OpenMMException, message):
                    openmmenn.ENNForce(bad)


def json_copy(value):
    import json
    return json.loads(json.dumps(value))


if __name__ == "__main__":
    unittest.main()
