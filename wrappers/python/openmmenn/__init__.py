"""openmm-enn: equivariant neural-network potentials (MACE family) as a native OpenMM force.

``ENNForce`` comes from the compiled module; ``modelfile``, ``o3``, ``mace`` and ``builder``
need only numpy.
"""
import os

from .enn import ENNForce  # noqa: F401
from .mlmm import INTERPOLATION_PARAMETER, createMixedSystem, createSystem, findENNForce  # noqa: F401

__all__ = ["ENNForce", "createSystem", "createMixedSystem", "findENNForce", "INTERPOLATION_PARAMETER", "shipped_model",
           "shipped_structure"]


def _shipped_file(relative):
    """A file shipped in models/: beside the installed package, or in the source tree."""
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (os.path.join(here, "models"), os.path.join(here, "..", "..", "..", "models")):
        path = os.path.join(folder, relative)
        if os.path.exists(path):
            return path
    return None


def shipped_model(name="hcno-xtb-small"):
    """Path of a model shipped with openmm-enn (see models/README.md)."""
    path = _shipped_file(name + ".enn")
    if path is None:
        raise FileNotFoundError(f"shipped model {name!r} not found")
    return path


def shipped_structure(name="alanine_dipeptide.pdb"):
    """Path of a structure shipped with openmm-enn (models/structures: the examples' and benchmarks' molecules)."""
    path = _shipped_file(os.path.join("structures", name))
    if path is None:
        raise FileNotFoundError(f"shipped structure {name!r} not found")
    return path
