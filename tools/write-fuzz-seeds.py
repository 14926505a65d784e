"""Seeds for the libFuzzer harnesses of tests/fuzz (tools/sanitize-and-fuzz.sh).

    python3 tools/write-fuzz-seeds.py OUT_DIR

OUT_DIR/models: tiny random models (2 channels; 2-6 kB, so that the fuzzers run thousands of inputs a second)
covering one and two layers, a charge head with its own Gaussian-damped Coulomb term, SO(3) symmetry and
tanh. OUT_DIR/xml: ENNForce XML (XmlSerializer) of the first of them with each kind of coupling: plain,
charge groups, cutoff, PME (with exceptions), implicit solvent; and the inputs of past findings. The script adds the shipped model and larger
test models to the model seeds itself.
"""
import os
import sys

import openmm
import openmmenn
from openmmenn import builder

out = sys.argv[1]
os.makedirs(os.path.join(out, "models"), exist_ok=True)
os.makedirs(os.path.join(out, "xml"), exist_ok=True)
tiny = dict(elements=(1, 6, 8), channels=2, hidden=("2x0e+2x1o", "2x0e"), residual=(False, True), correlation=2,
            sh_lmax=2, message_lmax=2, num_bessel=4, radial_hidden=(4,), readout_hidden=2)
models = {
    "tiny_charges": dict(tiny, charge_head=True, coulomb=True, gaussian_sigma=0.5),
    "tiny_one_layer": dict(tiny, hidden=("2x0e",), residual=(False,), correlation=3, seed=1),
    "tiny_so3_tanh": dict(tiny, symmetry="SO3", activation="tanh", seed=2),
}
for name, settings in models.items():
    builder.write_random_model(os.path.join(out, "models", name + ".enn"), **settings)
first = os.path.join(out, "models", "tiny_charges.enn")


def force(**settings):
    f = openmmenn.ENNForce(first)
    for i, z in enumerate([8, 6, 8, 1, 1]):
        f.addParticle(i, z)
    f.setTotalCharge(settings.get("charge", 0.0))
    return f


seeds = {"plain": force()}
seeds["groups"] = force()
seeds["groups"].addChargeGroup([0, 1, 2], -1.0)
seeds["groups"].addChargeGroup([3, 4], 1.0)
for name, method in (("cutoff", openmmenn.ENNForce.CutoffPeriodic), ("pme", openmmenn.ENNForce.PME)):
    f = force()
    f.setUsesPeriodicBoundaryConditions(True)
    f.setElectrostaticsMethod(method)
    f.setCutoffDistance(0.8)
    for j in range(5, 9):
        f.addMMParticle(j, 0.4 if j % 2 else -0.4)
    f.addElectrostaticException(0, 5, 0.5)
    if method == openmmenn.ENNForce.PME:
        f.setPMEParameters(3.1, 20, 21, 22)
    seeds[name] = f
gb = force()
gb.setUseImplicitSolvent(True)
for j in range(7):
    gb.addGBParticle(j, 0.1 * j - 0.3, 0.15, 0.8)
seeds["obc"] = gb
for name, f in seeds.items():
    with open(os.path.join(out, "xml", name + ".xml"), "w") as file:
        file.write(openmm.XmlSerializer.serialize(f))
# Findings kept as seeds, so that every fuzz run tries them again (docs/reliability.md): 11 bytes on which
# OpenMM 7.7's own XML reader reads past the end of the text and crashes.
with open(os.path.join(out, "xml", "finding_irrxml_overrun.xml"), "w") as file:
    file.write('<aaaaaaaa""')
sizes = sorted(os.path.getsize(os.path.join(out, "models", n + ".enn")) for n in models)
print(f"{len(models)} model seeds ({sizes[0]}-{sizes[-1]} bytes) and {len(os.listdir(os.path.join(out, 'xml')))} XML seeds in {out}")
