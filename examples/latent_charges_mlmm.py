#!/usr/bin/python3
"""A peptide whose latent charges (MACELES's, e.g. MACE-LES-OFF) meet TIP3P water with PME: the electrostatic embedding.

    python3 examples/latent_charges_mlmm.py [--model FILE.enn] [--steps N] [--platform NAME] [--padding NM]

The ML region is the alanine dipeptide in a box of TIP3P water with PME (amber14), coupled with the electrostatic
embedding: the model's latent charges (a readout of every layer, not constrained to a total) interact with the MM
charges, their own Gaussian Coulomb term is the model's, and the forces carry the chain rule through every layer's
readout (docs/electrostatics.md, "Latent charges"). No total charge is given or inferred: latent charges take none.
The script prints the latent charges and their sum, the energy, and the energy after a short run.

--model takes a converted MACELES model (python3 -m openmmenn.mace MACE-LES-OFF.model les.enn; docs/mace-conversion.md).
Without it an untrained random model of that kind is built (the builder's latent charges with the les library's
constants: sigma 1 A, dl 2 A, MACE-LES-OFF's norm_factor): it shows the API, not chemistry, so the run is a few short
steps. --platform: Reference, CPU (default), OpenCL or CUDA.
"""
import argparse
import math
import os
import sys
import tempfile

import numpy as np
import openmm
from openmm import app, unit

import openmmenn
from openmmenn import builder


def random_latent_charge_model(path):
    """An untrained model with MACELES's charge head, its latent charges scaled to a realistic size (tenths of e)."""
    builder.write_random_model(path, elements=(1, 6, 7, 8), channels=8, hidden=("8x0e+8x1o", "8x0e"), residual=(False, True),
                               charge_head=True, latent_charges=True, coulomb=True, gaussian_sigma=1.0, gaussian_self_energy=False,
                               coulomb_constant=90.0474 / (2 * math.pi), truncated_reciprocal_dl=2.0, charge_scale=15.0, seed=2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a MACELES-type model file (default: an untrained random one)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--padding", type=float, default=0.8, help="water around the peptide (nm)")
    parser.add_argument("--platform", default="CPU")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model = os.path.join(tmp, "latent-charges.enn")
            random_latent_charge_model(model)
        pdb = app.PDBFile(openmmenn.shipped_structure("alanine_dipeptide.pdb"))
        forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
        modeller = app.Modeller(pdb.topology, pdb.positions)
        modeller.addSolvent(forcefield, model="tip3p", padding=args.padding * unit.nanometer)
        box = modeller.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)
        cutoff = min(0.9, 0.49 * min(box[k][k] for k in range(3)))  # (OpenMM's versions size the padded box differently)
        system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff * unit.nanometer,
                                         constraints=app.HBonds)
        region = [a.index for a in modeller.topology.atoms() if a.residue.name != "HOH"]
        mixed = openmmenn.createMixedSystem(modeller.topology, system, region, model=model, embedding="electrostatic")
        force = openmmenn.findENNForce(mixed)
        if not force.hasLatentCharges():
            sys.exit(f"{model} has no latent charges (a MACELES model converted with openmmenn.mace has)")
        integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.0005 * unit.picoseconds)
        context = openmm.Context(mixed, integrator, openmm.Platform.getPlatformByName(args.platform))
        context.setPositions(modeller.positions)
        charges = np.array(force.getCharges(context))
        kj = unit.kilojoule_per_mole
        energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(kj)
        print(f"{modeller.topology.getNumAtoms()} atoms; ML region: {len(region)} atoms with latent charges from "
              f"{charges.min():+.3f} to {charges.max():+.3f} e, summing to {charges.sum():+.3f} e")
        print(f"potential energy {energy:.3f} kJ/mol")
        integrator.step(args.steps)
        energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(kj)
        if not np.isfinite(energy):
            sys.exit("the run diverged")
        charges = np.array(force.getCharges(context))
        print(f"after {args.steps} steps of 0.5 fs: potential energy {energy:.3f} kJ/mol; latent charges sum to {charges.sum():+.3f} e")
    return 0


if __name__ == "__main__":
    sys.exit(main())
