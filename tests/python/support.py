"""What several Python tests share: optional modules, and one model's energy and forces in MACE's units."""
import importlib
import os

import openmm
from openmm import unit

import openmmenn
from openmmenn import modelfile

EV = modelfile.ENERGY_UNITS_IN_KJ_PER_MOL["eV"]  # kJ/mol


def require(name):
    """The module `name`, or None where it cannot be imported: a test skips then, except where
    ENN_REQUIRED_MODULES (comma-separated names) lists it, as CI's OpenMM 8 leg does: there it fails."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if name in os.environ.get("ENN_REQUIRED_MODULES", "").split(","):
            raise
        return None


def energy_forces_ev(path, numbers, positions_angstrom, platform="Reference", box_angstrom=None, total_charge=0, multiplicity=1):
    """Energy (eV) and forces (eV/A, numpy) of one molecule under the model file `path`, with the total charge and spin
    multiplicity of the ML region (what a model with charge and spin inputs reads); with box_angstrom (3 box vectors,
    OpenMM's reduced form) a periodic crystal."""
    system = openmm.System()
    force = openmmenn.ENNForce(path)
    if total_charge or not force.hasLatentCharges():  # (latent charges take no total charge)
        force.setTotalCharge(total_charge)
    force.setSpinMultiplicity(multiplicity)
    for z in numbers:
        force.addParticle(system.addParticle(1.0), int(z))
    if box_angstrom is not None:
        force.setUsesPeriodicBoundaryConditions(True)
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*(0.1 * v)) for v in box_angstrom])
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    context.setPositions(positions_angstrom * 0.1)
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) / EV
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.angstrom) / EV
    return energy, forces
