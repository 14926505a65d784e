#!/usr/bin/python3
"""Main example: molecular dynamics of a small molecule with ENNForce.

    /usr/bin/python3 examples/md_small_molecule.py [--model FILE.enn] [--molecule acetamide|alanine-dipeptide]
                                                   [--steps N] [--platform NAME]

Without --model it uses the shipped model trained on GFN2-xTB data (models/README.md): the ENNForce
alone is the potential. With --model mace-fixture it converts the MACE reference model in
tests/data/mace/public_A (made with the real MACE code, with untrained weights). Untrained
models have no short-range repulsion and pull atoms onto each other, so for them the example adds an
elastic network (harmonic springs between all atom pairs at their starting lengths) and uses 0.25 fs
steps. The geometry is minimized, then run NVE (Verlet), and the script reports the drift of the
total energy per ns per degree of freedom and the predicted charges.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import openmm
from openmm import unit

import openmmenn
from openmmenn import builder, mace

HERE = os.path.dirname(os.path.abspath(__file__))
ALANINE_DIPEPTIDE = os.path.join(HERE, "..", "models", "structures", "alanine_dipeptide.xyz")
FIXTURE = os.path.join(HERE, "..", "tests", "data", "mace", "public_A")
MASSES = {1: 1.008, 6: 12.011, 7: 14.007, 8: 15.999, 16: 32.06}
# Acetamide (nm), atomic numbers O C N C H H H H H.
ACETAMIDE_Z = [8, 6, 7, 6, 1, 1, 1, 1, 1]
ACETAMIDE = np.array([[-0.1736, 0.0107, -0.0430], [-0.0641, -0.0142, -0.0041], [-0.0231, -0.1210, 0.0580],
                      [0.0542, 0.1009, -0.0411], [0.0693, -0.1471, 0.0777], [0.0011, 0.1903, -0.0726],
                      [0.1122, 0.1234, 0.0584], [0.1252, 0.0492, -0.1025], [-0.1012, -0.1921, 0.0693]])


def fixture_model(folder):
    if os.path.isdir(FIXTURE):
        path = os.path.join(folder, "public_A.enn")
        mace.convert_fixture(FIXTURE, path)
        print(f"model: MACE fixture public_A converted to {path}")
    else:
        path = os.path.join(folder, "random.enn")
        builder.write_random_model(path, elements=(1, 6, 7, 8), seed=0)
        print(f"model: {FIXTURE} not found; using a random model written to {path}")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--model", help="a model file, or 'mace-fixture' (default: the shipped trained model)")
    parser.add_argument("--molecule", choices=["acetamide", "alanine-dipeptide"], default="acetamide")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--timestep-fs", type=float, help="default 0.5 (trained) or 0.25 (untrained models)")
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--platform", default="CPU")
    parser.add_argument("--springs", action=argparse.BooleanOptionalAction, default=None,
                        help="elastic network (default: only for untrained models)")
    parser.add_argument("--spring-constant", type=float, default=1.0e5, help="kJ/mol/nm^2")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        trained = args.model is None
        if args.model is None:
            try:
                path = openmmenn.shipped_model()
                print(f"model: the shipped model {path}")
            except FileNotFoundError:
                trained, args.model = False, "mace-fixture"
        if args.model == "mace-fixture":
            path = fixture_model(tmp)
        elif args.model is not None:
            path = args.model
        force = openmmenn.ENNForce(path)
    springs_on = (not trained) if args.springs is None else args.springs
    if args.timestep_fs is None:
        args.timestep_fs = 0.5 if trained else 0.25
    atomic_numbers, positions = ACETAMIDE_Z, ACETAMIDE
    if args.molecule == "alanine-dipeptide":
        import ase.io
        atoms = ase.io.read(ALANINE_DIPEPTIDE)
        atomic_numbers, positions = [int(z) for z in atoms.numbers], (atoms.positions - atoms.positions.mean(0)) * 0.1
    print(f"molecule: {args.molecule} ({len(atomic_numbers)} atoms)")
    system = openmm.System()
    for z in atomic_numbers:
        force.addParticle(system.addParticle(MASSES[z]), z)
    system.addForce(force)
    if springs_on:
        springs = openmm.HarmonicBondForce()
        for i in range(len(atomic_numbers)):
            for j in range(i):
                springs.addBond(i, j, np.linalg.norm(positions[i] - positions[j]), args.spring_constant)
        system.addForce(springs)
    dt = args.timestep_fs * 1e-3
    integrator = openmm.VerletIntegrator(dt)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(args.platform))
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 1.0, 500)
    print(f"minimized: potential energy {context.getState(getEnergy=True).getPotentialEnergy()}")
    context.setVelocitiesToTemperature(args.temperature, 1)

    dof = 3 * system.getNumParticles()
    report = max(1, args.steps // 20)
    times, totals = [], []
    start = time.time()
    print(f"{'step':>7} {'time/ps':>8} {'potential':>12} {'kinetic':>10} {'total':>12} {'T/K':>7}  (kJ/mol)")
    for step in range(0, args.steps + 1, report):
        if step:
            integrator.step(report)
        state = context.getState(getEnergy=True)
        pe = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        ke = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        t = state.getTime().value_in_unit(unit.picosecond)
        times.append(t)
        totals.append(pe + ke)
        temperature = 2 * ke / (dof * 0.00831446261815324)
        print(f"{step:7d} {t:8.3f} {pe:12.4f} {ke:10.4f} {pe + ke:12.4f} {temperature:7.1f}", flush=True)
    elapsed = time.time() - start
    slope = np.polyfit(times, totals, 1)[0]  # kJ/mol/ps
    print(f"\n{args.steps} steps of {args.timestep_fs} fs on {args.platform} in {elapsed:.1f} s "
          f"({elapsed / max(args.steps, 1) * 1000:.2f} ms/step)")
    print(f"energy drift: {slope * 1000 / dof:.4f} kJ/mol/ns per degree of freedom; "
          f"largest |E - E0|: {np.max(np.abs(np.array(totals) - totals[0])):.4f} kJ/mol")
    charges = force.getCharges(context) if force.hasChargeHead() else None
    if charges is not None:
        print("predicted charges (e):", " ".join(f"{q:+.3f}" for q in charges))
    return 0


if __name__ == "__main__":
    sys.exit(main())
