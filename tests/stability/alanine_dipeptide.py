"""Stability of the shipped model with predicted charges in every coupling (issue: one consistent energy).

Alanine dipeptide (ACE-ALA-NME, 22 atoms), the shipped model over the whole peptide, every MM bonded term
of the peptide zeroed, amber99sb for nothing but the topology, LJ and the environment:
  vacuum   NonbondedForce (NoCutoff) coupled
  obc2     NonbondedForce and GBSAOBCForce (amber99_obc.xml) coupled
  tip3p    in TIP3P water with PME (cutoff 0.9 nm), NonbondedForce coupled
For each: minimizeEnergy must end with no atom pair of the peptide under 0.08 nm, then SEEDS runs of
STEPS steps of LangevinMiddleIntegrator (300 K, 1/ps, 1 fs) must not blow up: no OpenMMException (the
guards refuse NaN or far-flung positions, absurd charges and energies), no peptide pair under 0.08 nm
and no predicted charge beyond 2 e at any check (every 100 steps).

    /usr/bin/python3 tests/stability/alanine_dipeptide.py [vacuum|obc2|tip3p ...] [--seeds 10] [--steps 1000]
"""
import argparse
import os
import sys

import numpy as np
import openmm
from openmm import app, unit

import openmmenn

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.environ.get("ENN_SHIPPED_MODEL") or openmmenn.shipped_model()
XYZ = os.path.join(HERE, "..", "..", "models", "structures", "alanine_dipeptide.xyz")
# Atom names of the xyz file's order, per residue (amber's ACE, ALA, NME templates).
RESIDUES = [("ACE", ["CH3", "HH31", "HH32", "HH33", "C", "O"]),
            ("ALA", ["N", "H", "CA", "HA", "CB", "HB1", "HB2", "HB3", "C", "O"]),
            ("NME", ["N", "H", "CH3", "HH31", "HH32", "HH33"])]
SHORTEST_PAIR = 0.08  # nm
LARGEST_CHARGE = 2.0  # e


def peptide():
    """Topology and positions (nm) of the xyz structure, bonded by templates."""
    lines = open(XYZ).read().split("\n")
    coords = np.array([[float(x) for x in line.split()[1:4]] for line in lines[2:24]]) * 0.1
    top = app.Topology()
    chain = top.addChain()
    atoms = []
    for name, names in RESIDUES:
        residue = top.addResidue(name, chain)
        for atom_name in names:
            element = app.Element.getBySymbol(atom_name[0])
            atoms.append(top.addAtom(atom_name, element, residue))
    top.createStandardBonds()
    bonds = {(min(b[0].index, b[1].index), max(b[0].index, b[1].index)) for b in top.bonds()}
    for i in range(len(atoms)):
        for j in range(i):
            d = np.linalg.norm(coords[i] - coords[j])
            if d < 0.16 and (j, i) not in bonds and not (atoms[i].element.symbol == "H" and atoms[j].element.symbol == "H"):
                top.addBond(atoms[j], atoms[i])
    return top, coords * unit.nanometer


def build(environment):
    top, pos = peptide()
    if environment == "tip3p":
        ff = app.ForceField("amber99sb.xml", "tip3p.xml")
        modeller = app.Modeller(top, pos)
        modeller.addSolvent(ff, model="tip3p", padding=0.9 * unit.nanometer)
        top, pos = modeller.topology, modeller.positions
        system = ff.createSystem(top, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer, constraints=None, rigidWater=True)
    elif environment == "obc2":
        ff = app.ForceField("amber99sb.xml", "amber99_obc.xml")
        system = ff.createSystem(top, nonbondedMethod=app.NoCutoff, constraints=None)
    else:
        ff = app.ForceField("amber99sb.xml")
        system = ff.createSystem(top, nonbondedMethod=app.NoCutoff, constraints=None)
    # The peptide is the ML region, its predicted charges coupled to the water or the OBC2 solvent.
    system = openmmenn.createMixedSystem(top, system, range(22), model=MODEL, total_charge=0)
    return system, top, pos, openmmenn.findENNForce(system)


def check(context, force, label):
    """Raises AssertionError on a collapsed peptide or an absurd charge."""
    x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)[:22]
    d = np.linalg.norm(x[:, None] - x[None], axis=-1) + np.eye(22)
    q = np.array(force.getCharges(context))
    if d.min() < SHORTEST_PAIR:
        raise AssertionError(f"{label}: a peptide pair at {d.min():.3f} nm")
    if np.abs(q).max() > LARGEST_CHARGE:
        raise AssertionError(f"{label}: a predicted charge of {q[np.abs(q).argmax()]:.2f} e")
    return d.min(), np.abs(q).max()


def run(environment, seeds, steps, platform):
    system, top, pos, force = build(environment)
    failures = []
    platform = openmm.Platform.getPlatformByName(platform)
    context = openmm.Context(system, openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.001 * unit.picoseconds), platform)
    context.setPositions(pos)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 0)
    shortest, largest = check(context, force, f"{environment} after minimizeEnergy")
    minimized = context.getState(getPositions=True).getPositions()
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    print(f"{environment}: {system.getNumParticles()} particles; minimized: E {energy:.1f} kJ/mol, shortest peptide pair "
          f"{shortest:.4f} nm, largest |q| {largest:.3f} e", flush=True)
    for seed in range(seeds):
        integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.001 * unit.picoseconds)
        integrator.setRandomNumberSeed(seed + 1)
        ctx = openmm.Context(system, integrator, platform)
        ctx.setPositions(minimized)
        ctx.setVelocitiesToTemperature(300 * unit.kelvin, seed + 1)
        worst_pair, worst_charge = 1.0, 0.0
        try:
            for _ in range(steps // 100):
                integrator.step(100)
                pair, charge = check(ctx, force, f"{environment} seed {seed}")
                worst_pair, worst_charge = min(worst_pair, pair), max(worst_charge, charge)
        except (AssertionError, openmm.OpenMMException) as e:
            failures.append(f"{environment} seed {seed}: {e}")
            print("  BLOW-UP", failures[-1], flush=True)
            continue
        state = ctx.getState(getEnergy=True)
        temperature = 2 * state.getKineticEnergy() / (system.getNumParticles() * 3 * unit.MOLAR_GAS_CONSTANT_R)
        print(f"  seed {seed}: {steps} steps, shortest peptide pair {worst_pair:.4f} nm, largest |q| {worst_charge:.3f} e, "
              f"final T {temperature.value_in_unit(unit.kelvin):.0f} K", flush=True)
    return failures


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("environments", nargs="*", default=["vacuum", "obc2", "tip3p"])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--platform", default="CPU")
    args = p.parse_args(argv)
    failures = []
    for environment in args.environments:
        failures += run(environment, args.seeds, args.steps, args.platform)
    print(f"{len(failures)} blow-ups" + ("".join("\n  " + f for f in failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
