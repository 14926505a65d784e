#!/usr/bin/python3
"""An ensemble of independent ML/MM replicas through dask.distributed: one System XML, many workers.

    /usr/bin/python3 examples/replicas_dask.py [--replicas 4] [--steps 2000] [--workers 2] [--scheduler ADDRESS]

The ML/MM System (alanine dipeptide, ML, in OBC2 implicit solvent; createMixedSystem) is built once and
serialized with XmlSerializer; each task deserializes it (the model travels inside the XML), runs Langevin
dynamics from its own seed, and returns a row. Without --scheduler a LocalCluster of --workers processes
runs on this machine; with --scheduler tcp://host:8786 the tasks go to any dask scheduler whose workers
have openmm and openmm-enn installed. The rows are gathered into one table (printed, and written as CSV).
"""
import argparse
import csv
import os
import time

import numpy as np


def run_replica(system_xml, pdb_path, seed, steps, platform_name, threads):
    """One replica: deserialize, simulate, and report (runs on a dask worker)."""
    import openmm
    from openmm import app, unit

    import openmmenn
    from example_tools import backbone_dihedrals, dihedral

    system = openmm.XmlSerializer.deserialize(system_xml)
    enn = openmmenn.findENNForce(system)
    pdb = app.PDBFile(pdb_path)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    properties = {"Threads": str(threads)} if platform_name == "CPU" else {}
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform_name), properties)
    context.setPositions(pdb.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 200)
    context.setVelocitiesToTemperature(300 * unit.kelvin, seed)
    start = time.time()
    energies = []
    for _ in range(10):
        integrator.step(max(1, steps // 10))
        energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    elapsed = time.time() - start
    x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    phi, psi = backbone_dihedrals(pdb.topology)
    charges = enn.getCharges(context, asNumpy=True)
    return {"seed": seed, "steps": steps, "mean_potential_kJ_per_mol": float(np.mean(energies)),
            "final_phi_deg": float(dihedral(x, *phi)), "final_psi_deg": float(dihedral(x, *psi)),
            "charge_range_e": f"{charges.min():.3f}..{charges.max():.3f}",
            "ns_per_day": steps * 1e-6 / elapsed * 86400, "worker_pid": os.getpid()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster processes (without --scheduler)")
    parser.add_argument("--scheduler", default=None, help="address of a running dask scheduler")
    parser.add_argument("--platform", default="CPU")
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    import openmm
    from openmm import app
    from dask.distributed import Client, LocalCluster

    import openmmenn
    from example_tools import structure

    pdb_path = structure("alanine_dipeptide.pdb")
    pdb = app.PDBFile(pdb_path)
    system = app.ForceField("amber14-all.xml", "implicit/obc2.xml").createSystem(pdb.topology, constraints=None)
    mixed = openmmenn.createMixedSystem(pdb.topology, system, range(pdb.topology.getNumAtoms()))
    system_xml = openmm.XmlSerializer.serialize(mixed)
    print(f"System XML: {len(system_xml) / 1e3:.0f} kB (model included)")

    here = os.path.dirname(os.path.abspath(__file__))
    if args.scheduler:
        client = Client(args.scheduler)
        threads = 0
    else:
        # Workers as processes (each replica its own OpenMM), one thread each; they import example_tools from here.
        os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        threads = 1
    print(f"dask: {len(client.scheduler_info()['workers'])} workers at {client.scheduler.address}")
    start = time.time()
    futures = [client.submit(run_replica, system_xml, pdb_path, seed, args.steps, args.platform, threads, pure=False)
               for seed in range(1, args.replicas + 1)]
    rows = client.gather(futures)
    elapsed = time.time() - start
    client.close()

    columns = list(rows[0])
    width = {c: max(len(c), 12) for c in columns}
    print(" ".join(f"{c:>{width[c]}}" for c in columns))
    for row in rows:
        print(" ".join(f"{row[c]:>{width[c]}.3f}" if isinstance(row[c], float) else f"{str(row[c]):>{width[c]}}" for c in columns))
    print(f"{args.replicas} replicas x {args.steps} steps in {elapsed:.1f} s of wall time")
    with open(os.path.join(args.out, "replicas.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"table in {args.out}/replicas.csv")


if __name__ == "__main__":
    main()
