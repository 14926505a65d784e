"""Copy the parts of the MACE reference fixtures that the tests read into tests/data/mace, compactly.

Usage: python3 tools/compact-mace-fixtures.py SHARED_FIXTURES_MACE_DIR tests/data/mace

The fixtures (made with MACE 0.3.6 and e3nn 0.4.4, see tests/data/README.md) hold more than the tests
use. Kept: hyperparameters.json and state_dict.npz (the converter's input), references.json (energies,
forces, per-atom energies), and, for public_A only, wigner_3j.npz and spherical_harmonics.json (e3nn's
constants; the wigner_3j table is the same file in both folders). The state_dict is rewritten with
np.savez_compressed: same arrays, same float64 bits (checked below); its symmetric-contraction U matrices
are 99.5 % zeros and compress 10x.
"""
import os
import shutil
import sys

import numpy as np

KEEP = {"public_A": ["hyperparameters.json", "references.json", "wigner_3j.npz", "spherical_harmonics.json"],
        "public_B": ["hyperparameters.json", "references.json"]}

source, target = sys.argv[1], sys.argv[2]
for name, files in KEEP.items():
    os.makedirs(os.path.join(target, name), exist_ok=True)
    for file in files:
        shutil.copyfile(os.path.join(source, name, file), os.path.join(target, name, file))
    with np.load(os.path.join(source, name, "state_dict.npz"), allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    out = os.path.join(target, name, "state_dict.npz")
    np.savez_compressed(out, **arrays)
    with np.load(out, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(arrays)
        for key, value in arrays.items():
            assert npz[key].dtype == value.dtype and np.array_equal(npz[key], value), key
    print(name, "->", os.path.join(target, name), os.path.getsize(out), "bytes of state_dict")
