"""Long NVE runs of the shipped model (not in CI; the results are in docs/reliability.md).

  small-molecule  acetamide (9 atoms), ENNForce alone, minimized, velocities at 300 K, Verlet 0.5 fs, 1 ns
  tip3p           the ML/MM alanine dipeptide of alanine_dipeptide.py in TIP3P with PME (electrostatic embedding,
                  predicted charges coupled), minimized, 2 ps Langevin at 300 K, then Verlet 1 fs, 100 ps

Every --report steps it records the total energy, the largest force on an ML atom and on any atom, and the
range of the predicted charges; at the end it prints the drift (least-squares slope of the total energy, in
kJ/mol/ns per degree of freedom), the largest |E - E0|, and the extremes, as one markdown table row.

    /usr/bin/python3 tests/stability/long_runs.py small-molecule|tip3p [--ps 1000] [--report 2000] [--threads 1]
"""
import argparse
import os
import sys
import time

import numpy as np
import openmm
from openmm import unit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
import openmmenn  # noqa: E402
from alanine_dipeptide import build  # noqa: E402
from md_small_molecule import ACETAMIDE, ACETAMIDE_Z, MASSES  # noqa: E402

KJ = unit.kilojoule_per_mole


def small_molecule():
    force = openmmenn.ENNForce(openmmenn.shipped_model())
    system = openmm.System()
    for z in ACETAMIDE_Z:
        force.addParticle(system.addParticle(MASSES[z]), z)
    system.addForce(force)
    return system, ACETAMIDE * unit.nanometer, force, list(range(len(ACETAMIDE_Z)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", choices=["small-molecule", "tip3p"])
    p.add_argument("--ps", type=float, help="NVE length (default 1000 for small-molecule, 100 for tip3p)")
    p.add_argument("--report", type=int, default=2000, help="steps between records")
    p.add_argument("--threads", default="1")
    p.add_argument("--platform", default="CPU")
    args = p.parse_args(argv)
    platform = openmm.Platform.getPlatformByName(args.platform)
    properties = {"Threads": args.threads} if args.platform == "CPU" else {}
    if args.run == "small-molecule":
        system, positions, force, ml = small_molecule()
        dt, length = 0.5, args.ps or 1000.0
    else:
        system, _, positions, force = build("tip3p")
        ml = list(range(22))
        dt, length = 1.0, args.ps or 100.0
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, dt * unit.femtosecond)
    integrator.setRandomNumberSeed(1)
    context = openmm.Context(system, integrator, platform, properties)
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 0)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    if args.run == "tip3p":
        integrator.step(int(2000 / dt))
    state = context.getState(getPositions=True, getVelocities=True)
    nve = openmm.Context(system, openmm.VerletIntegrator(dt * unit.femtosecond), platform, properties)
    nve.setPeriodicBoxVectors(*state.getPeriodicBoxVectors())
    nve.setPositions(state.getPositions())
    nve.setVelocities(state.getVelocities())
    steps = int(round(length * 1000 / dt))
    dof = 3 * system.getNumParticles() - system.getNumConstraints() - (3 if args.run == "tip3p" else 0)
    times, totals, ml_force, any_force, q_min, q_max = [], [], [], [], [], []
    start = time.time()
    for step in range(0, steps + 1, args.report):
        if step:
            nve.getIntegrator().step(args.report)
        s = nve.getState(getEnergy=True, getForces=True)
        f = np.linalg.norm(s.getForces(asNumpy=True).value_in_unit(KJ / unit.nanometer), axis=1)
        q = np.array(force.getCharges(nve))
        times.append(step * dt * 1e-3)
        totals.append((s.getPotentialEnergy() + s.getKineticEnergy()).value_in_unit(KJ))
        ml_force.append(f[ml].max())
        any_force.append(f.max())
        q_min.append(q.min())
        q_max.append(q.max())
        if step % (10 * args.report) == 0:
            print(f"  {times[-1]:9.2f} ps  E {totals[-1]:12.4f} kJ/mol  max|F| ML {ml_force[-1]:8.1f} all {any_force[-1]:8.1f}"
                  f" kJ/mol/nm  q [{q_min[-1]:+.3f}, {q_max[-1]:+.3f}] e  {time.time() - start:7.0f} s", flush=True)
    elapsed = time.time() - start
    slope = np.polyfit(times, totals, 1)[0]  # kJ/mol/ps
    deviation = np.max(np.abs(np.array(totals) - totals[0]))
    print(f"| {args.run} | {system.getNumParticles()} | {dt} fs | {length:g} ps | {slope * 1000 / dof:.4f} | {deviation:.3f} | "
          f"{max(ml_force):.0f} | {max(any_force):.0f} | {min(q_min):+.3f} to {max(q_max):+.3f} | "
          f"{elapsed / steps * 1000:.2f} ms/step ({args.platform}, {args.threads} thread(s)) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
