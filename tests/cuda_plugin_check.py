"""The CUDA plugin against OpenMM's CUDA platform: it loads, registers ENNForce's kernel for that platform, and a
Context either works (a GPU: energy and forces against Reference) or, without one, fails for want of a GPU only.

    cuda_plugin_check.py <libOpenMMENNCUDA.so> <model.enn>

On a machine without an NVIDIA driver, ctest puts the CUDA toolkit's stub libcuda.so.1 on LD_LIBRARY_PATH (and
sets ENN_CUDA_STUB=1) so that OpenMM's own CUDA plugin can be loaded at all; every driver call then fails, and the
Context must fail with OpenMM's CUDA initialisation error, not with a missing kernel or symbol.
Exit status 0 on success; messages go to stdout.
"""
import os
import sys

import numpy as np
import openmm
from openmm import unit

import openmmenn


def acetamide_system(model):
    numbers = [6, 6, 8, 7, 1, 1, 1, 1, 1]
    positions = np.array([[0.0, 0.0, 0.0], [1.52, 0.0, 0.0], [2.15, 1.05, 0.0], [2.2, -1.15, 0.0], [-0.4, 1.0, 0.1],
                          [-0.35, -0.55, 0.88], [-0.38, -0.5, -0.9], [3.2, -1.1, 0.05], [1.75, -2.05, 0.0]]) * 0.1
    system = openmm.System()
    force = openmmenn.ENNForce(model)
    for z in numbers:
        force.addParticle(system.addParticle(1.0), z)
    system.addForce(force)
    return system, positions


def evaluate(system, positions, platform, properties=None):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform, properties or {})
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    return (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


def main(plugin, model):
    failures = [f for f in openmm.Platform.getPluginLoadFailures() if "CUDA" in f]
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if "CUDA" not in names:
        print("OpenMM's CUDA platform did not load:", failures)
        return 1
    # Ours: the CUDA plugin first (it needs no other plugin of ours), then the Reference one for the comparison; each
    # raises naming a missing symbol or library.
    openmm.Platform.loadPluginLibrary(plugin)
    openmm.Platform.loadPluginLibrary(os.path.join(os.path.dirname(plugin), "libOpenMMENNReference.so"))
    cuda = openmm.Platform.getPlatformByName("CUDA")
    if not cuda.supportsKernels(["CalcENNForce"]):
        print("the plugin loaded but registered no ENNForce kernel for the CUDA platform")
        return 1
    print(f"loaded {plugin}; CUDA platform of OpenMM {openmm.Platform.getOpenMMVersion()} has CalcENNForce")
    system, positions = acetamide_system(model)
    try:
        energy, forces = evaluate(system, positions, cuda, {"Precision": "double"})
    except openmm.OpenMMException as error:
        message = str(error)
        if os.environ.get("ENN_CUDA_STUB") != "1":
            print("a CUDA driver is present, but the Context failed:", message)
            return 1
        if "initializing CUDA" not in message or "kernel" in message.lower() or "ENN" in message:
            print("the Context failed, but not for want of a GPU:", message)
            return 1
        print("without a GPU, the Context fails as OpenMM's CUDA platform does:", message)
        return 0
    if os.environ.get("ENN_CUDA_STUB") == "1":
        print("a Context was created through the stub driver: the check is not what it claims")
        return 1
    ref_energy, ref_forces = evaluate(system, positions, openmm.Platform.getPlatformByName("Reference"))
    energy_error = abs(energy - ref_energy) / max(1.0, abs(ref_energy))
    force_error = np.abs(forces - ref_forces).max() / max(1.0, np.abs(ref_forces).max())
    print(f"CUDA (double) against Reference: energy {energy_error:.2e}, forces {force_error:.2e} (relative)")
    return 0 if energy_error < 1e-10 and force_error < 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
