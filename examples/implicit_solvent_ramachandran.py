#!/usr/bin/python3
"""Alanine dipeptide in OBC2 implicit solvent, all of it ML with predicted charges: a Ramachandran plot.

    /usr/bin/python3 examples/implicit_solvent_ramachandran.py [--steps 20000] [--solvent obc2|gbn2|...] [--out results]
                                                               [--platform CPU]

From a PDB file and ForceField('amber14-all.xml', 'implicit/obc2.xml'): the whole peptide is the ML region
(createMixedSystem), so the MM force field keeps only the solvent model, whose CustomGBForce ENNForce takes
over with the predicted charges. Langevin dynamics at 300 K (1 fs, no constraints), phi/psi sampled every
--report steps, written to ramachandran.png.

With --solvent gbn2 the shipped model does not survive minimization: the minimizer finds geometries where
the predicted charges grow (-10 e), because the GB self energy -k/2 (1 - 1/eps) q^2/B outweighs the model's
Gaussian self energy k q^2/(sigma sqrt(2 pi)) once a Born radius B is below ~0.12 nm; the charge guard then
stops the run with an OpenMMException. The model was not trained in a solvent (docs/mlmm.md).
"""
import argparse
import os
import time

import numpy as np
import openmm
from openmm import app, unit

import openmmenn
from example_tools import backbone_dihedrals, dihedral, platform, pyplot, structure

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--steps", type=int, default=20000)
parser.add_argument("--report", type=int, default=100)
parser.add_argument("--solvent", default="obc2", choices=["obc2", "gbn2", "gbn", "obc1", "hct"])
parser.add_argument("--out", default="results")
parser.add_argument("--platform", default="CPU")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)

pdb = app.PDBFile(structure("alanine_dipeptide.pdb"))
forcefield = app.ForceField("amber14-all.xml", f"implicit/{args.solvent}.xml")
system = forcefield.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=None)
mixed = openmmenn.createMixedSystem(pdb.topology, system, range(pdb.topology.getNumAtoms()))
integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond)
simulation = app.Simulation(pdb.topology, mixed, integrator, platform(args.platform))
simulation.context.setPositions(pdb.positions)
simulation.minimizeEnergy()
simulation.context.setVelocitiesToTemperature(300 * unit.kelvin, 2)
phi_atoms, psi_atoms = backbone_dihedrals(pdb.topology)
angles = []
start = time.time()
for block in range(args.steps // args.report):
    simulation.step(args.report)
    x = simulation.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    angles.append((dihedral(x, *phi_atoms), dihedral(x, *psi_atoms)))
    if block % 20 == 0:
        elapsed = time.time() - start
        print(f"{(block + 1) * args.report * 1e-3:7.2f} ps  phi {angles[-1][0]:7.1f}  psi {angles[-1][1]:7.1f}  "
              f"({(block + 1) * args.report * 1e-6 / elapsed * 86400:.2f} ns/day)")
angles = np.array(angles)
elapsed = time.time() - start
print(f"{args.steps} steps in {elapsed:.1f} s: {args.steps * 1e-6 / elapsed * 86400:.2f} ns/day")

plt = pyplot()
fig, ax = plt.subplots(figsize=(5, 5))
ax.scatter(angles[:, 0], angles[:, 1], s=4, c=np.arange(len(angles)), cmap="viridis")
ax.set_xlim(-180, 180)
ax.set_ylim(-180, 180)
ax.set_xlabel("phi (degrees)")
ax.set_ylabel("psi (degrees)")
ax.set_title(f"Alanine dipeptide, ML in {args.solvent.upper()}, {args.steps * 1e-3:g} ps")
fig.tight_layout()
fig.savefig(os.path.join(args.out, "ramachandran.png"), dpi=120)
print(f"plot in {args.out}/ramachandran.png")
