#!/usr/bin/python3
"""A pure-ML box of water under a Monte Carlo barostat: density over time and the O-O radial distribution.

    /usr/bin/python3 examples/water_box_barostat.py [--box 1.6] [--steps 10000] [--out results] [--platform CPU]

Water from openmm.app (Modeller.addSolvent fills an empty periodic box with TIP3P geometry); then
openmmenn.createSystem makes every atom ML (the shipped model, with its own Coulomb term summed by PME).
Langevin at 300 K, 0.5 fs, MonteCarloBarostat at 1 bar every 25 steps. Writes density.png and rdf.png.
Each water molecule is a charge group (createSystem), so no charge moves between molecules.

Use --model with a model fit for liquid water (a converted MACE-OFF model, say). The shipped model was
trained on molecules and clusters of up to six waters, not on the liquid: here it falls into a hole of its
energy surface within about 0.1 ps (the potential energy drops by thousands of kJ/mol, then a predicted
charge exceeds 10 e and ENNForce stops the run with an OpenMMException). The example then reports how far
it got, plots that, and exits with status 3.
"""
import argparse
import os
import time

import numpy as np
import openmm
from openmm import app, unit

import openmmenn
from example_tools import platform, pyplot

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--box", type=float, default=1.6, help="edge of the cubic box (nm)")
parser.add_argument("--steps", type=int, default=10000)
parser.add_argument("--report", type=int, default=100)
parser.add_argument("--out", default="results")
parser.add_argument("--platform", default="CPU")
parser.add_argument("--model", default=None, help="a model file (default: the shipped model)")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)

modeller = app.Modeller(app.Topology(), [])
modeller.addSolvent(app.ForceField("amber14/tip3p.xml"), boxSize=openmm.Vec3(args.box, args.box, args.box) * unit.nanometer)
topology = modeller.topology
cutoff = min(0.9, 0.45 * args.box) * unit.nanometer
system = openmmenn.createSystem(topology, model=args.model, cutoff=cutoff)
system.addForce(openmm.MonteCarloBarostat(1 * unit.bar, 300 * unit.kelvin, 25))
integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
simulation = app.Simulation(topology, system, integrator, platform(args.platform))
simulation.context.setPositions(modeller.positions)
# No minimization: from TIP3P geometry the minimizer steps into geometries the model never saw.
simulation.context.setVelocitiesToTemperature(300 * unit.kelvin, 3)
oxygens = [a.index for a in topology.atoms() if a.element.symbol == "O"]
mass = sum(system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles()))
print(f"{len(oxygens)} waters, {system.getNumParticles()} atoms, cutoff {cutoff}")

times, densities, rdf_frames = [], [], []
start = time.time()
failure = None
for block in range(args.steps // args.report):
    try:
        simulation.step(args.report)
    except openmm.OpenMMException as error:
        failure = str(error)
        print(f"stopped after {block * args.report} steps ({block * args.report * 0.5e-3:.3f} ps): {failure}")
        break
    state = simulation.context.getState(getPositions=True)
    box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
    volume = np.linalg.det(box)
    times.append((block + 1) * args.report * 0.5e-3)
    densities.append(mass / volume * 1.66053906660)  # Da/nm^3 -> g/L
    x = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)[oxygens]  # the RDF uses the second half
    d = x[:, None] - x[None]
    d -= np.round(d / np.diag(box)) * np.diag(box)
    rdf_frames.append((np.linalg.norm(d, axis=-1)[np.triu_indices(len(x), 1)], volume))
    if block % 10 == 0:
        print(f"{times[-1]:7.2f} ps  density {densities[-1]:7.1f} g/L  "
              f"({times[-1] * 1e-3 / (time.time() - start) * 86400:.3f} ns/day)")
elapsed = time.time() - start
done = len(times) * args.report
print(f"{done} steps in {elapsed:.1f} s: {done * 0.5e-6 / max(elapsed, 1e-9) * 86400:.3f} ns/day; "
      f"mean density of the second half {np.mean(densities[len(densities) // 2:]) if densities else float('nan'):.1f} g/L")

plt = pyplot()
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(times, densities)
ax.set_xlabel("time (ps)")
ax.set_ylabel("density (g/L)")
ax.set_title(f"Pure-ML water, {len(oxygens)} molecules, MonteCarloBarostat 1 bar")
fig.tight_layout()
fig.savefig(os.path.join(args.out, "density.png"), dpi=120)

edges = np.linspace(0.0, 0.5 * args.box * 0.95, 60)
centers = 0.5 * (edges[1:] + edges[:-1])
g = np.zeros(len(centers))
rdf_frames = rdf_frames[len(rdf_frames) // 2:]
for distances, volume in rdf_frames:
    counts, _ = np.histogram(distances, bins=edges)
    shell = 4 / 3 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g += counts / (shell * 0.5 * len(oxygens) * (len(oxygens) - 1) / volume)
g /= max(1, len(rdf_frames))
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(centers, g)
ax.set_xlabel("r (nm)")
ax.set_ylabel("g_OO(r)")
ax.set_title("O-O radial distribution function")
fig.tight_layout()
fig.savefig(os.path.join(args.out, "rdf.png"), dpi=120)
print(f"plots in {args.out}/density.png and {args.out}/rdf.png")
if failure:
    print("the model could not simulate this liquid; see the docstring (--model for another model)")
    raise SystemExit(3)
