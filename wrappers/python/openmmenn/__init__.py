"""openmm-enn: equivariant neural-network potentials (MACE family) as a native OpenMM force.

``ENNForce`` comes from the compiled module; ``modelfile``, ``o3``, ``mace`` and ``builder``
need only numpy.
"""
from .enn import ENNForce  # noqa: F401

__all__ = ["ENNForce"]
