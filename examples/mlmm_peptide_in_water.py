#!/usr/bin/python3
"""ML/MM alanine dipeptide in TIP3P water with PME: electrostatic against mechanical embedding.

    /usr/bin/python3 examples/mlmm_peptide_in_water.py [--nvt-steps 2000] [--nve-steps 5000] [--out results]
                                                       [--platform CPU] [--padding 0.9] [--cutoff 0.9]

From a PDB file and amber14 + TIP3P (openmm.app): solvate, build the MM System, and let
openmmenn.createMixedSystem put the peptide into the shipped model. For each embedding: minimize,
Langevin NVT at 300 K, then NVE (Verlet, 0.5 fs), printing progress. Writes energy_conservation.png
(total energy drift in NVE, both embeddings) and charges.png (the predicted charges of the
peptide's backbone atoms over the electrostatic run).
"""
import argparse
import os
import time

import numpy as np
import openmm
from openmm import app, unit

import openmmenn
from example_tools import platform, pyplot, structure

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--nvt-steps", type=int, default=2000)
parser.add_argument("--nve-steps", type=int, default=5000)
parser.add_argument("--report", type=int, default=50, help="steps between samples")
parser.add_argument("--padding", type=float, default=0.9, help="water padding (nm)")
parser.add_argument("--cutoff", type=float, default=0.9, help="nonbonded cutoff (nm)")
parser.add_argument("--out", default="results")
parser.add_argument("--platform", default="CPU")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)

pdb = app.PDBFile(structure("alanine_dipeptide.pdb"))
forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
modeller = app.Modeller(pdb.topology, pdb.positions)
modeller.addSolvent(forcefield, padding=args.padding * unit.nanometer)
system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=args.cutoff * unit.nanometer,
                                 constraints=app.HBonds)
peptide = [atom.index for atom in modeller.topology.atoms() if atom.residue.name != "HOH"]
print(f"{modeller.topology.getNumAtoms()} atoms, {len(peptide)} in the ML region")

results = {}
for embedding in ("electrostatic", "mechanical"):
    mixed = openmmenn.createMixedSystem(modeller.topology, system, peptide, embedding=embedding)
    enn = openmmenn.findENNForce(mixed)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
    simulation = app.Simulation(modeller.topology, mixed, integrator, platform(args.platform))
    simulation.context.setPositions(modeller.positions)
    simulation.minimizeEnergy(maxIterations=200)
    simulation.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    start = time.time()
    simulation.step(args.nvt_steps)
    print(f"{embedding}: NVT {args.nvt_steps} steps in {time.time() - start:.1f} s")
    # NVE: the same state under Verlet.
    state = simulation.context.getState(getPositions=True, getVelocities=True)
    nve = openmm.Context(mixed, openmm.VerletIntegrator(0.5 * unit.femtosecond), platform(args.platform))
    nve.setPeriodicBoxVectors(*state.getPeriodicBoxVectors())
    nve.setPositions(state.getPositions())
    nve.setVelocities(state.getVelocities())
    times, energies, charges = [], [], []
    start = time.time()
    for step in range(0, args.nve_steps + 1, args.report):
        if step:
            nve.getIntegrator().step(args.report)
        s = nve.getState(getEnergy=True)
        times.append(step * 0.5e-3)
        energies.append((s.getPotentialEnergy() + s.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole))
        if enn.hasChargeHead():
            charges.append(enn.getCharges(nve, asNumpy=True))
        if step % (10 * args.report) == 0:
            print(f"  {embedding} NVE {times[-1]:7.3f} ps  total energy {energies[-1]:.2f} kJ/mol")
    elapsed = time.time() - start
    drift = np.polyfit(times, energies, 1)[0] if len(times) > 1 else 0.0
    ns_per_day = args.nve_steps * 0.5e-6 / max(elapsed, 1e-9) * 86400
    dof = 3 * mixed.getNumParticles() - mixed.getNumConstraints() - 3
    print(f"{embedding}: drift {drift:.3f} kJ/mol/ps ({drift * 1000 / dof:.4f} kJ/mol/ns/dof), {ns_per_day:.2f} ns/day")
    results[embedding] = (np.array(times), np.array(energies), np.array(charges), drift, ns_per_day)

plt = pyplot()
fig, ax = plt.subplots(figsize=(6, 4))
for embedding, (t, e, _, drift, _) in results.items():
    ax.plot(t, e - e[0], label=f"{embedding} ({drift:.2f} kJ/mol/ps)")
ax.set_xlabel("time in NVE (ps)")
ax.set_ylabel("total energy - initial (kJ/mol)")
ax.set_title("Energy conservation, ML/MM alanine dipeptide in TIP3P/PME")
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(args.out, "energy_conservation.png"), dpi=120)

t, _, q, _, _ = results["electrostatic"]
names = [a.name for a in modeller.topology.atoms() if a.index in peptide]
fig, ax = plt.subplots(figsize=(6, 4))
for k, name in enumerate(names):
    if name in ("N", "CA", "C", "O", "H") and len(q):
        ax.plot(t, q[:, k], label=f"{name} {k}")
ax.set_xlabel("time in NVE (ps)")
ax.set_ylabel("predicted charge (e)")
ax.set_title("Predicted charges of the backbone (electrostatic embedding)")
ax.legend(fontsize=7, ncol=2)
fig.tight_layout()
fig.savefig(os.path.join(args.out, "charges.png"), dpi=120)
print(f"plots in {args.out}/energy_conservation.png and {args.out}/charges.png")
