#!/usr/bin/python3
"""A small molecule as the ML region, with charges predicted by the network, in solvent.

    /usr/bin/python3 examples/ligand_in_water.py [--solvent explicit|implicit] [--model FILE.enn]
                                                 [--nvt-steps N] [--nve-steps N] [--platform NAME]

explicit: acetamide in a periodic box of rigid TIP3P water with PME. ENNForce.coupleToNonbondedForce
moves every electrostatic term involving the ML atoms into ENNForce (ML-ML and ML-MM, with the
predicted charges and the exact chain-rule forces); water-water stays in OpenMM's NonbondedForce,
and the ML-water Lennard-Jones too. implicit: the same molecule in OBC2 implicit solvent, with
ENNForce.coupleToGBSAOBCForce taking over the generalized Born energy.

The run is a short NVT (Langevin) equilibration, then NVE (Verlet) reporting the energy drift.
Without --model it uses the shipped model trained on GFN2-xTB energies, forces and charges
(models/README.md). --model random builds an untrained random charge-aware model instead, for which
an elastic network keeps the molecule intact.
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
from openmmenn import builder

ACETAMIDE_Z = [8, 6, 7, 6, 1, 1, 1, 1, 1]
ACETAMIDE = np.array([[-0.1736, 0.0107, -0.0430], [-0.0641, -0.0142, -0.0041], [-0.0231, -0.1210, 0.0580],
                      [0.0542, 0.1009, -0.0411], [0.0693, -0.1471, 0.0777], [0.0011, 0.1903, -0.0726],
                      [0.1122, 0.1234, 0.0584], [0.1252, 0.0492, -0.1025], [-0.1012, -0.1921, 0.0693]])
MASSES = {1: 1.008, 6: 12.011, 7: 14.007, 8: 15.999}
# Lennard-Jones (sigma nm, epsilon kJ/mol) of the ML atoms against water, and OBC radii / scales.
LJ = {1: (0.25, 0.06), 6: (0.34, 0.36), 7: (0.325, 0.71), 8: (0.296, 0.88)}
GB = {1: (0.12, 0.85), 6: (0.17, 0.72), 7: (0.155, 0.79), 8: (0.15, 0.85)}
TIP3P = {"qO": -0.834, "qH": 0.417, "sigma": 0.315061, "epsilon": 0.636386, "rOH": 0.09572, "rHH": 0.15139}


def water_box(edge, center, solute, rng):
    """Rigid TIP3P waters on a lattice, randomly oriented, away from the solute (nm)."""
    n = int(edge / 0.31)
    waters = []
    for a in range(n):
        for b in range(n):
            for c in range(n):
                o = (np.array([a, b, c]) + 0.5) * edge / n
                d = solute - o
                d -= edge * np.round(d / edge)
                if np.min(np.linalg.norm(d, axis=1)) < 0.28:
                    continue
                q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
                h1 = o + q @ np.array([TIP3P["rOH"], 0, 0])
                h2 = o + q @ np.array([TIP3P["rOH"] * np.cos(1.8242), TIP3P["rOH"] * np.sin(1.8242), 0])
                waters.append((o, h1, h2))
    return waters


def build(args, model_path, springs_on):
    rng = np.random.default_rng(1)
    system = openmm.System()
    edge = 2.2
    solute = ACETAMIDE + edge / 2 if args.solvent == "explicit" else ACETAMIDE.copy()
    positions = list(solute)
    for z in ACETAMIDE_Z:
        system.addParticle(MASSES[z])
    force = openmmenn.ENNForce(model_path)
    for i, z in enumerate(ACETAMIDE_Z):
        force.addParticle(i, z)
    force.setTotalCharge(0.0)
    if springs_on:  # an untrained model does not hold the molecule together: an elastic network does
        springs = openmm.HarmonicBondForce()
        for i in range(len(ACETAMIDE_Z)):
            for j in range(i):
                springs.addBond(i, j, np.linalg.norm(ACETAMIDE[i] - ACETAMIDE[j]), 1.0e4)
        system.addForce(springs)
    if args.solvent == "explicit":
        nb = openmm.NonbondedForce()
        nb.setNonbondedMethod(openmm.NonbondedForce.PME)
        nb.setCutoffDistance(0.9)
        for z in ACETAMIDE_Z:
            nb.addParticle(0.0, *LJ[z])  # the network provides the charges
        for i in range(len(ACETAMIDE_Z)):
            for j in range(i):
                nb.addException(i, j, 0.0, 1.0, 0.0)
        for o, h1, h2 in water_box(edge, edge / 2, solute, rng):
            first = system.getNumParticles()
            for p, m in ((o, 15.999), (h1, 1.008), (h2, 1.008)):
                system.addParticle(m)
                positions.append(p)
            nb.addParticle(TIP3P["qO"], TIP3P["sigma"], TIP3P["epsilon"])
            nb.addParticle(TIP3P["qH"], 1.0, 0.0)
            nb.addParticle(TIP3P["qH"], 1.0, 0.0)
            for a, b, r in ((0, 1, TIP3P["rOH"]), (0, 2, TIP3P["rOH"]), (1, 2, TIP3P["rHH"])):
                system.addConstraint(first + a, first + b, r)
                nb.addException(first + a, first + b, 0.0, 1.0, 0.0)
        system.setDefaultPeriodicBoxVectors(openmm.Vec3(edge, 0, 0), openmm.Vec3(0, edge, 0), openmm.Vec3(0, 0, edge))
        system.addForce(nb)
        system.addForce(force)
        force.coupleToNonbondedForce(system, nb)
        print(f"explicit solvent: {(system.getNumParticles() - 9) // 3} TIP3P waters, PME, box {edge} nm")
    else:
        gb = openmm.GBSAOBCForce()
        for z in ACETAMIDE_Z:
            gb.addParticle(0.0, *GB[z])
        system.addForce(gb)
        system.addForce(force)
        force.coupleToGBSAOBCForce(system, gb)
        print("implicit solvent: GB-OBC2 with the ACE surface term")
    return system, force, np.array(positions)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--solvent", choices=["explicit", "implicit"], default="explicit")
    parser.add_argument("--model", help="a model file with a charge head, or 'random' (default: the shipped model)")
    parser.add_argument("--nvt-steps", type=int, default=400)
    parser.add_argument("--nve-steps", type=int, help="default 300 (explicit) or 2000 (implicit)")
    parser.add_argument("--timestep-fs", type=float, default=0.5, help="the ML molecule is flexible: 0.5 fs")
    parser.add_argument("--platform", default="CPU")
    args = parser.parse_args()
    if args.nve_steps is None:
        args.nve_steps = 400 if args.solvent == "explicit" else 4000
    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model
        if model_path == "random":
            model_path = os.path.join(tmp, "charges.enn")
            builder.write_random_model(model_path, channels=8, hidden=("8x0e+8x1o", "8x0e"), residual=(False, True),
                                       charge_head=True, charge_offsets=[0.25, -0.1, -0.45, -0.5], seed=7)
            print(f"model: an untrained random charge-aware model ({model_path})")
        elif model_path is None:
            model_path = openmmenn.shipped_model()
            print(f"model: the shipped model {model_path}")
        system, force, positions = build(args, model_path, springs_on=args.model == "random")
    platform = openmm.Platform.getPlatformByName(args.platform)
    dt = args.timestep_fs * 1e-3
    langevin = openmm.LangevinMiddleIntegrator(300, 5.0, dt)
    verlet = openmm.VerletIntegrator(dt)
    integrator = openmm.CompoundIntegrator()
    integrator.addIntegrator(langevin)
    integrator.addIntegrator(verlet)
    context = openmm.Context(system, integrator, platform)
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 100)
    context.setVelocitiesToTemperature(300, 2)
    dof = 3 * system.getNumParticles() - system.getNumConstraints()

    def report(label, step):
        state = context.getState(getEnergy=True)
        pe = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        ke = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        q = np.array(force.getCharges(context))
        print(f"{label} {step:6d} {state.getTime().value_in_unit(unit.picosecond):7.3f} ps  E_pot {pe:12.3f}  "
              f"E_tot {pe + ke:12.3f}  T {2 * ke / (dof * 0.00831446261815324):6.1f} K  q(O) {q[0]:+.3f} q(N) {q[2]:+.3f}",
              flush=True)
        return state.getTime().value_in_unit(unit.picosecond), pe + ke

    start = time.time()
    every = max(1, args.nvt_steps // 5)
    integrator.setCurrentIntegrator(0)
    for step in range(0, args.nvt_steps + 1, every):
        if step:
            integrator.step(every)
        report("NVT", step)
    integrator.setCurrentIntegrator(1)
    every = max(1, args.nve_steps // 10)
    times, totals = [], []
    for step in range(0, args.nve_steps + 1, every):
        if step:
            integrator.step(every)
        t, e = report("NVE", step)
        times.append(t)
        totals.append(e)
    elapsed = time.time() - start
    drift = np.polyfit(times, totals, 1)[0] * 1000 / dof
    print(f"\n{args.nvt_steps + args.nve_steps} steps of {args.timestep_fs} fs on {args.platform} in {elapsed:.1f} s")
    print(f"NVE energy drift: {drift:.4f} kJ/mol/ns per degree of freedom ({dof} degrees of freedom)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
