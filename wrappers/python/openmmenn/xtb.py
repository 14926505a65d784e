"""Reference data from GFN2-xTB (Debian's `xtb` program): energies, forces, charges and dipoles.

    /usr/bin/python3 -m openmmenn.xtb --molecules H2O CH3OH CH3CONH2 --water-clusters 2 3 \\
        --samples 20 --sampling displace --sigma 0.08 --out data.extxyz --seed 0

Structures come from ASE's g2 collection (names such as CH3CONH2), xyz files (--structures), or
random water clusters (--water-clusters N ...). Conformations are sampled by random Gaussian
displacements around each structure (--sampling displace) or by Langevin MD with xtb forces at
--temperature (--sampling md). Each configuration is written to extxyz (eV, Angstrom) with
info['xtb_energy'], arrays['xtb_forces'], arrays['xtb_charges'] (xtb's partial charges, e) and
info['xtb_dipole'] (xtb's molecular dipole, e Angstrom). The keys avoid the names ASE treats
specially ('energy', 'forces', 'charges').
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HARTREE = 27.211386245988  # eV
BOHR = 0.529177210903      # Angstrom


def single_point(symbols, positions, charge=0, xtb="xtb"):
    """GFN2-xTB energy (eV), forces (eV/A), charges (e) and dipole (e A) of one structure."""
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "in.xyz"), "w") as f:
            f.write(f"{len(symbols)}\n\n")
            for s, p in zip(symbols, positions):
                f.write(f"{s} {p[0]:.10f} {p[1]:.10f} {p[2]:.10f}\n")
        env = dict(os.environ, OMP_NUM_THREADS="1", OMP_STACKSIZE="500M")
        run = subprocess.run([xtb, "in.xyz", "--grad", "--json", "--chrg", str(charge)], cwd=tmp, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if run.returncode != 0 or not os.path.exists(os.path.join(tmp, "gradient")):
            raise RuntimeError("xtb failed:\n" + run.stdout[-2000:])
        with open(os.path.join(tmp, "xtbout.json")) as f:
            out = json.load(f)
        with open(os.path.join(tmp, "gradient")) as f:
            lines = [line for line in f if not line.startswith("$")]
        n = len(symbols)
        grad = np.array([[float(x.replace("D", "E")) for x in line.split()] for line in lines[1 + n:1 + 2 * n]])
    return {"energy": out["total energy"] * HARTREE, "forces": -grad * HARTREE / BOHR,
            "charges": np.array(out["partial charges"]), "dipole": np.array(out["dipole"]) * BOHR}


def water_cluster(n, rng):
    """n water molecules at random orientations, O-O distances of at least 2.6 A."""
    from ase import Atoms
    from ase.build import molecule
    cluster = Atoms()
    centers = []
    while len(centers) < n:
        c = rng.normal(0, 1.0 + 0.6 * n ** (1 / 3), size=3)
        if all(np.linalg.norm(c - d) > 2.6 for d in centers) and (not centers or min(np.linalg.norm(c - d) for d in centers) < 3.2):
            centers.append(c)
            w = molecule("H2O")
            w.rotate(rng.uniform(0, 360), rng.normal(size=3))
            w.translate(c)
            cluster += w
    return cluster


def sample(atoms, count, method, sigma, temperature, rng, xtb="xtb", stride=5):
    """Configurations around `atoms`, each labelled with xtb."""
    out = []
    if method == "displace":
        for _ in range(count):
            a = atoms.copy()
            a.positions += rng.normal(0, sigma, size=a.positions.shape)
            out.append(a)
    else:
        from ase import units
        from ase.calculators.calculator import Calculator, all_changes
        from ase.md.langevin import Langevin
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        class XTB(Calculator):
            implemented_properties = ["energy", "forces"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                r = single_point(atoms.get_chemical_symbols(), atoms.positions, xtb=xtb)
                self.results = {"energy": r["energy"], "forces": r["forces"]}

        a = atoms.copy()
        a.calc = XTB()
        MaxwellBoltzmannDistribution(a, temperature_K=temperature, rng=rng)
        dyn = Langevin(a, 0.5 * units.fs, temperature_K=temperature, friction=0.02, rng=rng)
        for _ in range(count):
            dyn.run(stride)
            out.append(a.copy())
    labelled = []
    for a in out:
        r = single_point(a.get_chemical_symbols(), a.positions, xtb=xtb)
        a.calc = None
        a.info["xtb_energy"] = r["energy"]
        a.info["xtb_dipole"] = r["dipole"]
        a.arrays["xtb_forces"] = r["forces"]
        a.arrays["xtb_charges"] = r["charges"]
        labelled.append(a)
    return labelled


def main(argv=None):
    import ase.io
    from ase.build import molecule
    parser = argparse.ArgumentParser(description="Make GFN2-xTB reference data (extxyz)")
    parser.add_argument("--molecules", nargs="*", default=[], help="ASE g2 names, e.g. H2O CH3OH CH3CONH2")
    parser.add_argument("--structures", nargs="*", default=[], help="xyz/extxyz files")
    parser.add_argument("--water-clusters", nargs="*", type=int, default=[], help="cluster sizes")
    parser.add_argument("--samples", type=int, default=20, help="configurations per structure")
    parser.add_argument("--sampling", choices=["displace", "md"], default="displace")
    parser.add_argument("--sigma", type=float, default=0.08, help="displacement (A)")
    parser.add_argument("--temperature", type=float, default=500.0, help="MD temperature (K)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    structures = [molecule(name) for name in args.molecules]
    for path in args.structures:
        structures.extend(ase.io.read(path, ":"))
    structures.extend(water_cluster(n, rng) for n in args.water_clusters)
    data = []
    for i, s in enumerate(structures):
        data.extend(sample(s, args.samples, args.sampling, args.sigma, args.temperature, rng))
        print(f"\r{i + 1}/{len(structures)} structures, {len(data)} configurations", end="", flush=True)
    print()
    ase.io.write(args.out, data, format="extxyz")
    print(f"wrote {len(data)} configurations to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
