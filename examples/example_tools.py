"""Helpers the ML/MM examples share: where the structures are, the platform to run on, dihedral angles, plots."""
import os

import numpy as np
import openmm

HERE = os.path.dirname(os.path.abspath(__file__))
STRUCTURES = os.path.join(HERE, "..", "models", "structures")


def structure(name):
    """Path of a structure shipped in models/structures."""
    return os.path.join(STRUCTURES, name)


def platform(name):
    """The named OpenMM platform (CPU by default in the examples: OpenCL on PoCL is much slower)."""
    return openmm.Platform.getPlatformByName(name)


def dihedral(x, i, j, k, l):
    """The dihedral angle (degrees) of atoms i-j-k-l in positions x (N x 3)."""
    b0, b1, b2 = x[i] - x[j], x[k] - x[j], x[l] - x[k]
    b1 = b1 / np.linalg.norm(b1)
    v, w = b0 - np.dot(b0, b1) * b1, b2 - np.dot(b2, b1) * b1
    return np.degrees(np.arctan2(np.dot(np.cross(b1, v), w), np.dot(v, w)))


def backbone_dihedrals(topology):
    """Atom indices of phi (C-N-CA-C) and psi (N-CA-C-N) of the first residue that has both."""
    atoms = list(topology.atoms())
    by_name = lambda residue, name: next(a.index for a in residue.atoms() if a.name == name)
    residues = list(topology.residues())
    for previous, residue, following in zip(residues, residues[1:], residues[2:]):
        try:
            phi = (by_name(previous, "C"), by_name(residue, "N"), by_name(residue, "CA"), by_name(residue, "C"))
            psi = (by_name(residue, "N"), by_name(residue, "CA"), by_name(residue, "C"), by_name(following, "N"))
            return phi, psi
        except StopIteration:
            continue
    raise ValueError(f"no residue with phi and psi among {len(atoms)} atoms")


def pyplot():
    """matplotlib's pyplot, drawing to files (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
