"""MACELES's latent charges in OpenMM (the test model latent_charges: a charge readout of every layer, unconstrained,
Gaussian charges of sigma = 1 A without self energies, MACE-LES-OFF's constant k = 90.0474 / 2 pi eV A, and the les
library's truncated reciprocal sum with dl = 2 A), on the Reference platform in double precision.

* As trained vs converged in periodic cells: the converged sum (PME of the Gaussian charges, with PME's neutralizing
  background) minus the truncated one must be the part of the Ewald sum the truncation leaves out,
  (2 pi k / V) sum_{k outside the set, k != 0} exp(-sigma^2 k^2 / 2) / k^2 |S(k)|^2, minus the background's
  k pi Q^2 sigma^2 / V (the les sum has no background for a net charge Q), computed here independently with numpy
  over all k vectors up to |k| = 9 / sigma (the Gaussian factor below 1e-17 beyond), on a water box and on water with
  Na+ and Cl-. Bound: 1e-6 of the two terms, PME's error at an Ewald tolerance of 1e-7 being about 1e-7 of them.
* ML/MM with createMixedSystem(..., embedding="electrostatic") (PME, reaction field, GB-OBC2): forces equal finite
  differences of the energy, and the empty-environment invariant (the region alone in its MM System: the energy it has
  in an ENNForce alone).
"""
import os
import unittest
from math import erfc

import numpy as np
import openmm
from openmm import app, unit

import openmmenn
from support import EV
from test_mlmm import ALA, KJ, REFERENCE, assert_same, check_forces_are_the_gradient, evaluate, model, peptide

MODEL = model("latent_charges")
SIGMA, DL, K_MODEL = 1.0, 2.0, 90.0474 / (2 * np.pi)  # A, A, eV A (the test model's, tests/make_test_models.py)


def water(edge, ions=0):
    """A cubic TIP3P box of `edge` nm (openmm.app's equilibrated water), with `ions` Na+ and Cl- each."""
    ff = app.ForceField("amber14/tip3p.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(ff, boxSize=openmm.Vec3(edge, edge, edge) * unit.nanometer, neutralize=False)
    top, pos = modeller.topology, modeller.positions
    if ions:  # replace waters by ions, far apart
        modeller = app.Modeller(top, pos)
        residues = list(top.residues())
        chosen = residues[::max(1, len(residues) // (2 * ions))][:2 * ions]
        positions = [pos[next(a for a in r.atoms() if a.element.symbol == "O").index] for r in chosen]
        modeller.delete(chosen)
        chain = modeller.topology.addChain()
        for k, p in enumerate(positions):
            residue = modeller.topology.addResidue("NA" if k % 2 == 0 else "CL", chain)
            modeller.topology.addAtom("NA" if k % 2 == 0 else "CL", app.element.sodium if k % 2 == 0 else app.element.chlorine, residue)
            modeller.positions.append(p)
        top, pos = modeller.topology, modeller.positions
    return top, np.array(pos.value_in_unit(unit.nanometer))


def ml_energy(top, x, method=None):
    """Energy (kJ/mol) and charges of an ENNForce over every atom of a periodic Topology."""
    system = openmmenn.createSystem(top, model=MODEL)
    force = openmmenn.findENNForce(system)
    if method is not None:  # the converged sum: PME of the Gaussian charges
        force.setElectrostaticsMethod(method)
        force.setCutoffDistance(0.8)
        force.setEwaldErrorTolerance(1e-7)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), REFERENCE)
    context.setPositions(x)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(KJ), np.array(force.getCharges(context))


def truncation_tail(x_nm, q, box_nm):
    """(eV) The part of the Gaussian charges' Ewald sum that the les library's truncation leaves out, with numpy."""
    x, box = x_nm * 10, box_nm * 10
    volume = abs(np.linalg.det(box))
    b = 2 * np.pi * np.linalg.inv(box).T
    kept = [max(1, int(np.linalg.norm(a) / DL)) for a in box]
    reach = [int(9 / SIGMA / np.linalg.norm(b[a]) * 1.2) + 1 for a in range(3)]
    grid = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in reach], indexing="ij"), -1).reshape(-1, 3)
    k = grid @ b
    k2 = (k * k).sum(1)
    inside = (np.abs(grid) <= kept).all(1) & (k2 <= (2 * np.pi / DL) ** 2)
    outside = (k2 > 0) & ~inside & (k2 <= (9 / SIGMA) ** 2)
    k, k2 = k[outside], k2[outside]
    total = 0.0
    for start in range(0, len(k), 2000):
        phase = x @ k[start:start + 2000].T
        s2 = (q @ np.cos(phase)) ** 2 + (q @ np.sin(phase)) ** 2
        total += (np.exp(-0.5 * SIGMA ** 2 * k2[start:start + 2000]) / k2[start:start + 2000] * s2).sum()
    return 2 * np.pi * K_MODEL / volume * total, volume


@unittest.skipUnless(os.path.exists(MODEL), "test models not built (ctest runs make_test_models first)")
class TestLatentCharges(unittest.TestCase):
    def test_converged_minus_trained_is_the_truncated_tail(self):
        for name, (top, x) in {"water": water(1.6), "water with NaCl": water(1.6, ions=3)}.items():
            with self.subTest(system=name):
                box = np.array(top.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
                trained, q = ml_energy(top, x)
                converged, q2 = ml_energy(top, x, openmmenn.ENNForce.PME)
                self.assertTrue(np.array_equal(q, q2))  # the charges do not depend on the sum
                tail, volume = truncation_tail(x, q, box)
                background = K_MODEL * np.pi * q.sum() ** 2 * SIGMA ** 2 / volume
                predicted = (tail - background) * EV
                # A random-phase estimate of the tail (|S(k)|^2 ~ sum q^2 at large k): k sum q^2 erfc(sqrt(2) pi sigma / dl) / (sigma sqrt(2 pi))
                estimate = K_MODEL * (q * q).sum() / (SIGMA * np.sqrt(2 * np.pi)) * erfc(SIGMA * 2 * np.pi / DL / np.sqrt(2)) * EV
                print(f"{name}: {len(q)} atoms, net latent charge {q.sum():.3f} e; converged - trained "
                      f"{converged - trained:.4f} kJ/mol, predicted {predicted:.4f} (tail {tail * EV:.4f}, background "
                      f"{-background * EV:.4f}; random-phase estimate of the tail {estimate:.4f})")
                self.assertGreater(abs(tail * EV), 1.0)  # the comparison is not between two zeros (kJ/mol)
                # PME at an Ewald tolerance of 1e-7: about 1e-7 of the terms' size (measured 1.1e-7 and 1.0e-7)
                self.assertLess(abs(converged - trained - predicted), 1e-6 * (abs(tail) + abs(background)) * EV)

    def test_mlmm_electrostatic_embedding(self):
        top, _ = peptide()
        mixed = openmmenn.createMixedSystem(top, app.ForceField("amber14-all.xml").createSystem(top), ALA, model=MODEL)
        self.assertEqual(openmmenn.findENNForce(mixed).getNumChargeGroups(), 0)  # (latent charges take none)
        check_forces_are_the_gradient(self, MODEL)

    def test_empty_environment_keeps_the_energy(self):
        """The whole peptide as the ML region of its own MM System (nothing else in it): the energy of the ENNForce
        alone, in vacuum (NoCutoff)."""
        top, pos = peptide()
        system = app.ForceField("amber14-all.xml").createSystem(top, nonbondedMethod=app.NoCutoff, constraints=None)
        mixed = openmmenn.createMixedSystem(top, system, list(range(top.getNumAtoms())), model=MODEL)
        assert_same(self, evaluate(mixed, pos), evaluate(openmmenn.createSystem(top, model=MODEL), pos), "the peptide alone in its MM System")

if __name__ == "__main__":
    unittest.main()
