"""What a user of the wheel runs, in the environment it was installed into (tools/test-wheel.sh).

    wheel_check.py evaluate OUT.json [FIXTURE_FOLDER]   energies and forces to compare between two installations
    wheel_check.py compare A.json B.json                 the wheel's against the ctest build's
    wheel_check.py openmm-ml                             openmm-ml finds the "enn" potential through its entry points

`evaluate` writes, for acetamide with the shipped model, the energy and forces on Reference and CPU, and for the MACE
fixture public_A converted here (numpy only), its energy on Reference. `compare`: Reference bitwise (the same code
and OpenMM), CPU within 1e-6 relative energy and 1e-5 relative RMS force (the wheel's CPU plugin is compiled for
x86-64-v3, the ctest build's for the machine that built it, so float sums may round differently), the converted
fixture within 1e-12 relative (the two environments' numpy, 1.24 and 2.x, round the converter's arithmetic apart in
the last bits). Exit status 0 on success.
"""
import json
import os
import sys
import tempfile

import numpy as np

ACETAMIDE_Z = [6, 6, 8, 7, 1, 1, 1, 1, 1]
ACETAMIDE = np.array([[0.0, 0.0, 0.0], [1.52, 0.0, 0.0], [2.15, 1.05, 0.0], [2.2, -1.15, 0.0], [-0.4, 1.0, 0.1],
                      [-0.35, -0.55, 0.88], [-0.38, -0.5, -0.9], [3.2, -1.1, 0.05], [1.75, -2.05, 0.0]]) * 0.1  # nm


def energy_forces(model, numbers, positions, platform):
    import openmm
    import openmmenn
    system = openmm.System()
    force = openmmenn.ENNForce(model)
    for z in numbers:
        force.addParticle(system.addParticle(1.0), int(z))
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    return state.getPotentialEnergy()._value, np.array(state.getForces(asNumpy=True)._value).tolist()


def evaluate(out, fixture=None):
    import openmmenn
    from openmmenn import mace
    result = {}
    for platform in ("Reference", "CPU"):
        result[platform] = energy_forces(openmmenn.shipped_model(), ACETAMIDE_Z, ACETAMIDE, platform)
    if fixture:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "public_A.enn")
            arch = mace.convert_fixture(fixture, path)
            numbers = [arch["elements"][i % len(arch["elements"])] for i in range(len(ACETAMIDE_Z))]
            result["converted fixture"] = energy_forces(path, numbers, ACETAMIDE, "Reference")
    with open(out, "w") as f:
        json.dump(result, f)
    print(f"evaluated: Reference {result['Reference'][0]} kJ/mol, CPU {result['CPU'][0]} kJ/mol")
    return 0


def compare(a_path, b_path):
    with open(a_path) as f:
        a = json.load(f)
    with open(b_path) as f:
        b = json.load(f)
    failures = []
    for key in a:
        (ea, fa), (eb, fb) = a[key], b[key]
        fa, fb = np.array(fa), np.array(fb)
        if key != "Reference":
            de = abs(ea - eb) / abs(eb)
            df = np.sqrt(((fa - fb) ** 2).sum() / (fb ** 2).sum())
            ok = de < 1e-6 and df < 1e-5 if key == "CPU" else de < 1e-12 and df < 1e-12
            print(f"{key}: relative energy difference {de:.2e}, relative RMS force difference {df:.2e}")
        else:
            ok = ea == eb and np.array_equal(fa, fb)
            print(f"{key}: energies {ea} and {eb} kJ/mol, {'identical' if ok else 'different'}")
        if not ok:
            failures.append(key)
    if set(a) != set(b):
        failures.append(f"different entries: {sorted(a)} and {sorted(b)}")
    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


def openmm_ml():
    from openmmml import MLPotential
    import openmm
    from openmm import app
    topology = app.Topology()
    chain = topology.addChain()
    residue = topology.addResidue("ACE", chain)
    for z in ACETAMIDE_Z:
        topology.addAtom(app.Element.getByAtomicNumber(z).symbol, app.Element.getByAtomicNumber(z), residue)
    system = MLPotential("enn").createSystem(topology)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(ACETAMIDE)
    energy = context.getState(getEnergy=True).getPotentialEnergy()._value
    print(f"openmm-ml MLPotential('enn'): {energy} kJ/mol")
    return 0 if np.isfinite(energy) else 1


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "evaluate":
        sys.exit(evaluate(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
    if command == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    if command == "openmm-ml":
        sys.exit(openmm_ml())
    sys.exit(f"unknown command {command}")
