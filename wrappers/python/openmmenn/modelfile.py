"""Read and write openmm-enn model files (docs/model-format.md) with only numpy.

A model file is a safetensors container: an 8-byte little-endian header length, a JSON header
(each tensor's dtype, shape and byte range, plus ``__metadata__``), then the raw tensor bytes.
The architecture description is the JSON string ``__metadata__["openmm_enn"]``.
"""
import json
import struct

import numpy as np

FORMAT = "openmm-enn"
FORMAT_VERSION = 2

# Unit conversions and Coulomb's constant exactly as the C++ loader uses them (openmmapi/src/ENNModel.cpp,
# platforms/math/src/ENNEwald.h), so Python and C++ energies agree to round-off.
ENERGY_UNITS_IN_KJ_PER_MOL = {"eV": 96.4853321233100184, "kJ/mol": 1.0, "kcal/mol": 4.184, "Hartree": 2625.4996394798254}
LENGTH_UNITS_IN_NM = {"Angstrom": 0.1, "nm": 1.0, "Bohr": 0.0529177210903}
ONE_4PI_EPS0 = 1.0 / (4 * 3.141592653589793 * (1e-6 * 8.8541878128e-12 / (1.602176634e-19 * 1.602176634e-19 * 6.02214076e23)))


def coulomb_constant(architecture):
    """The constant k of the model's own Coulomb term in its units (energy unit x length unit / e^2): the one it declares
    (charge_head.coulomb.constant, version 5), else 1/(4 pi eps0)."""
    declared = (architecture.get("charge_head") or {}).get("coulomb", {}).get("constant")
    if declared is not None:
        return float(declared)
    units = architecture["units"]
    return ONE_4PI_EPS0 / (ENERGY_UNITS_IN_KJ_PER_MOL[units["energy"]] * LENGTH_UNITS_IN_NM[units["length"]])


def coulomb_declaration(architecture):
    """(included, gaussian_sigma or None, gaussian_self_energy) of a model's charge head, with version 1
    read as docs/model-format.md says."""
    head = architecture.get("charge_head")
    if head is None or architecture.get("format_version", FORMAT_VERSION) == 1:
        return False, None, False
    c = head["coulomb"]
    if not c["included"]:
        return False, None, False
    if c.get("damping") != "gaussian":
        return True, None, False
    return True, float(c["gaussian_sigma"]), bool(c["gaussian_self_energy"])
_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4")}


def to_bytes(architecture, tensors):
    """Serialise an architecture dict and a {name: array} dict into model-file bytes."""
    arch = dict(architecture)
    arch.setdefault("format", FORMAT)
    arch.setdefault("format_version", FORMAT_VERSION)
    header = {"__metadata__": {"openmm_enn": json.dumps(arch, sort_keys=True)}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(np.asarray(tensors[name], dtype="<f8"))
        raw = array.tobytes()
        header[name] = {"dtype": "F64", "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keep the data 8-byte aligned
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write(path, architecture, tensors):
    with open(path, "wb") as f:
        f.write(to_bytes(architecture, tensors))


def from_bytes(data):
    """Parse model-file bytes into (architecture dict, {name: float64 array})."""
    if len(data) < 8:
        raise ValueError("not a model file: shorter than 8 bytes")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise ValueError("not a model file: the header length exceeds the file")
    header = json.loads(data[8:8 + size])
    meta = header.pop("__metadata__", {})
    if "openmm_enn" not in meta:
        raise ValueError("not an openmm-enn model: __metadata__ has no 'openmm_enn' entry")
    arch = json.loads(meta["openmm_enn"])
    body = memoryview(data)[8 + size:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        tensors[name] = np.frombuffer(body[begin:end], dtype=dtype).astype(np.float64).reshape(info["shape"])
    return arch, tensors


def read(path):
    with open(path, "rb") as f:
        return from_bytes(f.read())
