"""Benchmark ENNForce: one table of force-evaluation times, every platform side by side.

    /usr/bin/python3 -m openmmenn.bench [--systems ...] [--max-seconds 60] [--repeats 3]

Rows: each benchmark system on each OpenMM platform that has an ENNForce kernel, plus the PyTorch
implementation of the same model (openmmenn.torch_model) where torch is importable, as the baseline
a user would otherwise run. Columns: atoms, ms per force evaluation (energy + forces), atom-steps per
second, and the ratio to the Reference platform measured in this run. Systems:

* molecule      acetamide in vacuum, the shipped model
* water-300/3000/30000  water boxes at 1 g/cm^3 with random models the size of MACE-OFF23 small
                (96x0e, l_max 3, correlation 3, 2 layers, r_c 4.5 A) and medium (128x0e+128x1o, r_c 5 A)
* ligand-pme    acetamide with predicted charges in TIP3P water with PME (the shipped model)

A row whose first evaluation takes longer than --max-seconds is reported as skipped.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import openmm

import openmmenn
from openmmenn import builder, modelfile

MODEL_SIZES = {
    "small": dict(channels=96, hidden=("96x0e", "96x0e"), residual=(False, True), correlation=3, sh_lmax=3,
                  message_lmax=3, r_max=4.5, radial_hidden=(64, 64, 64), readout_hidden=16),
    "medium": dict(channels=128, hidden=("128x0e+128x1o", "128x0e"), residual=(False, True), correlation=3, sh_lmax=3,
                   message_lmax=3, r_max=5.0, radial_hidden=(64, 64, 64), readout_hidden=16),
}
ACETAMIDE_Z = [8, 6, 7, 6, 1, 1, 1, 1, 1]
ACETAMIDE = np.array([[-1.736, 0.107, -0.430], [-0.641, -0.142, -0.041], [-0.231, -1.210, 0.580], [0.542, 1.009, -0.411],
                      [0.693, -1.471, 0.777], [0.011, 1.903, -0.726], [1.122, 1.234, 0.584], [1.252, 0.492, -1.025],
                      [-1.012, -1.921, 0.693]])  # Angstrom


def water_box(num_waters, rng):
    """Waters on a cubic lattice at 1 g/cm^3, random orientations: (atomic numbers, positions A, edge A)."""
    edge = (num_waters * 29.9) ** (1 / 3)
    n = int(np.ceil(num_waters ** (1 / 3)))
    z, pos = [], []
    for i in range(num_waters):
        o = (np.array([i % n, (i // n) % n, i // (n * n)]) + 0.5) * edge / n
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        pos += [o, o + q @ [0.9572, 0, 0], o + q @ [-0.2400, 0.9266, 0]]
        z += [8, 1, 1]
    return z, np.array(pos), edge


def platforms():
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    order = ["Reference", "CPU", "OpenCL", "CUDA", "HIP"]
    return [p for p in order if p in names]


def make_context(model_path, z, pos_angstrom, edge, platform, ligand_pme=False):
    system = openmm.System()
    force = openmmenn.ENNForce(model_path)
    for zi in z:
        system.addParticle(1.0)
    ml = range(len(ACETAMIDE_Z)) if ligand_pme else range(len(z))
    for i in ml:
        force.addParticle(i, z[i])
    if edge is not None:
        system.setDefaultPeriodicBoxVectors(openmm.Vec3(edge / 10, 0, 0), openmm.Vec3(0, edge / 10, 0), openmm.Vec3(0, 0, edge / 10))
        force.setUsesPeriodicBoundaryConditions(True)
        if not ligand_pme and modelfile.coulomb_declaration(modelfile.read(model_path)[0])[0]:
            # A model whose energy includes its own Coulomb term (the shipped one) sums it with PME.
            force.setElectrostaticsMethod(openmmenn.ENNForce.PME)
            force.setCutoffDistance(min(0.9, 0.45 * edge / 10))
    system.addForce(force)
    if ligand_pme:
        nb = openmm.NonbondedForce()
        nb.setNonbondedMethod(openmm.NonbondedForce.PME)
        nb.setCutoffDistance(0.9)
        for i, zi in enumerate(z):
            water = i >= len(ACETAMIDE_Z)
            q = (-0.834 if zi == 8 else 0.417) if water else 0.0
            nb.addParticle(q, 0.315 if zi == 8 else 0.1, 0.636 if zi == 8 else 0.0)
        for first in range(len(ACETAMIDE_Z), len(z), 3):
            for a, b in ((0, 1), (0, 2), (1, 2)):
                nb.addException(first + a, first + b, 0.0, 1.0, 0.0)
        system.addForce(nb)
        force.coupleToNonbondedForce(system, nb)
        nb.setForceGroup(1)  # time ENNForce only
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    context.setPositions(pos_angstrom * 0.1)
    return context


def best_time(evaluate, repeats, budget):
    """(best of `repeats` timings, first timing); best is None when the first exceeds `budget` seconds."""
    start = time.time()
    evaluate()
    first = time.time() - start
    if first > budget:
        return None, first
    times = []
    for _ in range(repeats):
        start = time.time()
        evaluate()
        times.append(time.time() - start)
    return min(times), first


def time_openmm(context, repeats, budget):
    return best_time(lambda: context.getState(getForces=True, groups={0}), repeats, budget)


def time_torch(model_path, z, pos, edge, repeats, budget):
    from .torch_model import TorchENNModel
    model = TorchENNModel.from_file(model_path)
    cell = np.eye(3) * edge if edge is not None else None
    return best_time(lambda: model.evaluate(pos, z, cell), repeats, budget)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="*", default=["molecule", "water-300", "water-3000", "water-30000", "ligand-pme"])
    parser.add_argument("--sizes", nargs="*", default=["small", "medium"], choices=list(MODEL_SIZES))
    parser.add_argument("--max-seconds", type=float, default=60.0, help="skip rows whose first evaluation is slower")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--reference-max-atoms", type=int, default=5000,
                        help="skip the Reference platform above this size (its brute-force neighbour search is O(N^2))")
    parser.add_argument("--torch-max-atoms", type=int, default=1000,
                        help="skip the PyTorch model above this size (minutes per evaluation)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    try:
        import torch  # noqa: F401
        have_torch = not args.no_torch
    except ImportError:
        have_torch = False
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for name in args.systems:
            if name == "molecule":
                cases.append((name, "shipped", openmmenn.shipped_model(), ACETAMIDE_Z, ACETAMIDE, None, False))
            elif name.startswith("water-"):
                z, pos, edge = water_box(int(name.split("-")[1]) // 3, rng)
                for size in args.sizes:
                    path = os.path.join(tmp, size + ".enn")
                    if not os.path.exists(path):
                        builder.write_random_model(path, elements=(1, 8), seed=1, **MODEL_SIZES[size])
                    cases.append((name, size, path, z, pos, edge, False))
            elif name == "ligand-pme":
                wz, wpos, edge = water_box(300, rng)
                centre = np.array([edge / 2] * 3)
                keep = [i for i in range(0, len(wz), 3) if np.min(np.linalg.norm(wpos[i] - (ACETAMIDE + centre), axis=1)) > 2.6]
                z = ACETAMIDE_Z + [wz[i + k] for i in keep for k in range(3)]
                pos = np.concatenate([ACETAMIDE + centre] + [wpos[i:i + 3] for i in keep])
                cases.append((name, "shipped", openmmenn.shipped_model(), z, pos, edge, True))
        for system_name, size, path, z, pos, edge, ligand in cases:
            reference = None
            for platform in platforms():
                if platform == "Reference" and len(z) > args.reference_max_atoms:
                    rows.append((system_name, size, len(z), platform, None, None, None))
                    continue
                try:
                    context = make_context(path, z, pos, edge, platform, ligand)
                except Exception as e:  # a platform without an ENNForce kernel
                    if "required kernels" in str(e):
                        continue
                    raise
                best, first = time_openmm(context, args.repeats, args.max_seconds)
                del context
                if platform == "Reference":
                    reference = best
                rows.append((system_name, size, len(z), platform, best, first, reference))
                print(f"  {system_name} {size} {platform}: {'%.1f ms' % (best * 1e3) if best else 'skipped'}", file=sys.stderr)
            if have_torch and not ligand and len(z) > args.torch_max_atoms:
                rows.append((system_name, size, len(z), "PyTorch (CPU)", None, None, reference))
            elif have_torch and not ligand:
                best, first = time_torch(path, z, pos, edge, args.repeats, args.max_seconds)
                rows.append((system_name, size, len(z), "PyTorch (CPU)", best, first, reference))
                print(f"  {system_name} {size} PyTorch: {'%.1f ms' % (best * 1e3) if best else 'skipped'}", file=sys.stderr)
    print(f"\nopenmm-enn benchmark ({os.cpu_count()} cores; energy and forces per evaluation; best of {args.repeats})\n")
    print("| system | model | atoms | platform | ms/eval | atom-steps/s | speed vs Reference |")
    print("|---|---|---|---|---|---|---|")
    for system_name, size, atoms, platform, best, first, reference in rows:
        if best is None:
            why = f"first eval {first:.0f} s" if first is not None else "above --reference-max-atoms or --torch-max-atoms"
            print(f"| {system_name} | {size} | {atoms} | {platform} | skipped ({why}) | | |")
            continue
        ratio = f"{reference / best:.2f}x" if reference else "n/a"
        print(f"| {system_name} | {size} | {atoms} | {platform} | {best * 1e3:.1f} | {atoms / best:.3g} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
