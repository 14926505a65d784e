"""openmm-enn: equivariant neural-network potentials (MACE family) as a native OpenMM force.

``ENNForce`` comes from the compiled module; ``modelfile``, ``o3``, ``mace`` and ``builder``
need only numpy.
"""
import os

from .enn import ENNForce  # noqa: F401
from .mlmm import INTERPOLATION_PARAMETER, createMixedSystem, createSystem, findENNForce  # noqa: F401

__all__ = ["ENNForce", "createSystem", "createMixedSystem", "findENNForce", "INTERPOLATION_PARAMETER", "shipped_model"]


def shipped_model(name="hcno-xtb-small"):
    """Path of a model shipped with openmm-enn (see models/README.md)."""
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (os.path.join(here, "models"), os.path.join(here, "..", "..", "..", "models")):
        path = os.path.join(folder, name + ".enn")
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"shipped model {name!r} not found")
