"""Memory per Context of ENNForce (not in CI; the result is in docs/reliability.md).

Writes bench.py's medium-size random model (MODEL_SIZES["medium"]) and, for water boxes of --waters molecules,
reports how much the process's resident memory (VmRSS) grows with each of --contexts Contexts on each platform
(each platform and size in its own process), with the ENNForce and, for OpenMM's own share, for the same System
without it. The model's tensors are held once by the ENNForce and shared read-only by every Context's kernel.

    /usr/bin/python3 tests/stability/context_memory.py [--contexts 4] [--waters 100 1000] [--platforms Reference CPU OpenCL]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import openmm
from openmm import unit

import openmmenn
from openmmenn import bench, builder


def rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(platform_name, path, z, pos, edge, num_contexts):
    """RSS increments (MiB) of num_contexts Contexts, with the ENNForce and without it (OpenMM's own cost)."""
    def system_of(with_force):
        system = openmm.System()
        force = openmmenn.ENNForce(path)
        for element in z:
            force.addParticle(system.addParticle(1.0 if element == 1 else 16.0), int(element))
        force.setUsesPeriodicBoundaryConditions(True)
        system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) * edge / 10 for row in np.eye(3)))
        if with_force:
            system.addForce(force)
        else:  # a force that costs nothing, so that the Context is periodic like the other
            system.addForce(openmm.CustomExternalForce("0"))
        return system

    platform = openmm.Platform.getPlatformByName(platform_name)
    steps = {}
    for with_force in (False, True):
        system = system_of(with_force)
        contexts, sizes = [], [rss_mib()]
        for _ in range(num_contexts):
            integrator = openmm.VerletIntegrator(0.001)
            context = openmm.Context(system, integrator, platform)
            context.setPositions(pos / 10 * unit.nanometer)
            context.getState(getEnergy=True, getForces=True)
            contexts.append((context, integrator))
            sizes.append(rss_mib())
        steps[with_force] = np.diff(sizes)
    return steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contexts", type=int, default=4)
    parser.add_argument("--waters", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--platforms", nargs="*", default=["Reference", "CPU", "OpenCL"])
    parser.add_argument("--one", nargs=3, metavar=("PLATFORM", "MODEL", "WATERS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # a child process: one platform, one system, so that no measurement reuses another's freed memory
        z, pos, edge = bench.water_box(int(args.one[2]), np.random.default_rng(0))
        steps = measure(args.one[0], args.one[1], z, pos, edge, args.contexts)
        own, total = steps[False][1:].mean(), steps[True][1:].mean()
        print(f"| {args.one[0]} | {len(z)} | {steps[True][0]:.1f} | {total:.1f} | {own:.1f} | {total - own:.1f} |")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "medium.enn")
        builder.write_random_model(path, elements=(1, 8), seed=1, **bench.MODEL_SIZES["medium"])
        print(f"medium model (bench.MODEL_SIZES): file {os.path.getsize(path) / 2**20:.1f} MiB; RSS increments of "
              f"{args.contexts} Contexts in one process, the first and the mean of the others")
        print("| platform | atoms | first Context (MiB) | each further Context (MiB) | of which OpenMM's own "
              "(same System without the ENNForce) | ENNForce's share |")
        print("|---|---|---|---|---|---|")
        for waters in args.waters:
            for name in args.platforms:
                subprocess.run([sys.executable, __file__, "--contexts", str(args.contexts), "--one", name, path, str(waters)],
                               check=False)


if __name__ == "__main__":
    main()
