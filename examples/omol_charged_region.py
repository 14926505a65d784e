#!/usr/bin/python3
"""A charged ML region in water with a model that reads the total charge and spin (MACE-OMOL-0's kind).

    python3 examples/omol_charged_region.py [--model FILE.enn] [--steps N] [--platform NAME] [--padding NM]

The ML region is the alanine dipeptide with a sodium ion at its carbonyl oxygen (total charge +1), in a box of
TIP3P water with PME (amber14); the rest is MM, with the mechanical embedding (an OMOL-type model has no charge
head: its electrostatics are implicit in the network, the ML-MM Coulomb is the force field's). createMixedSystem
infers the region's charge (+1) from its MM charges and passes it, with the spin multiplicity, to the model's
charge and spin embedding; both can be changed in a running Context (updateParametersInContext), which is shown
for the multiplicity.

--model takes a converted OMOL-type model (python3 -m openmmenn.mace MACE-OMOL-0.model omol.enn: the non-linear
block family, docs/mace-conversion.md). Without it an untrained random model of that kind is built (the builder's
non-linear blocks, charge and spin embedding, elements H, C, N, O, Na): it shows the API, not chemistry, so the
run is a few short steps. --platform: Reference, CPU (default), OpenCL or CUDA.
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import openmm
from openmm import app, unit

import openmmenn
from openmmenn import builder


def solvated_peptide_with_sodium(padding):
    """The shipped alanine dipeptide, a Na+ 0.23 nm from its first carbonyl oxygen, in TIP3P: (modeller, forcefield)."""
    pdb = app.PDBFile(openmmenn.shipped_structure("alanine_dipeptide.pdb"))
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    modeller = app.Modeller(pdb.topology, pdb.positions)
    oxygen = next(a for a in pdb.topology.atoms() if a.name == "O")
    carbon = next(a for a in pdb.topology.atoms() if a.name == "C" and a.residue == oxygen.residue)
    positions = pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    direction = positions[oxygen.index] - positions[carbon.index]
    ion = app.Topology()
    residue = ion.addResidue("NA", ion.addChain())
    ion.addAtom("NA", app.element.sodium, residue)
    modeller.add(ion, [openmm.Vec3(*(positions[oxygen.index] + 0.23 * direction / np.linalg.norm(direction)))] * unit.nanometer)
    modeller.addSolvent(forcefield, model="tip3p", padding=padding * unit.nanometer, neutralize=False)
    return modeller, forcefield


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an OMOL-type model file (default: an untrained random one)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--padding", type=float, default=0.8, help="water around the region (nm)")
    parser.add_argument("--platform", default="CPU")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model = os.path.join(tmp, "omol-type.enn")
            builder.write_random_model(model, elements=(1, 6, 7, 8, 11), channels=8, hidden=("8x0e+8x1o", "8x0e"),
                                       residual=(True, True), nonlinear=True, apply_cutoff=False, joint_embedding=True,
                                       r_max=5.0, weight_std=0.3, seed=1)
        modeller, forcefield = solvated_peptide_with_sodium(args.padding)
        box = modeller.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)
        cutoff = min(0.9, 0.49 * min(box[k][k] for k in range(3)))  # (OpenMM's versions size the padded box differently)
        system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff * unit.nanometer,
                                         constraints=app.HBonds)
        region = [a.index for a in modeller.topology.atoms() if a.residue.name != "HOH"]
        mixed = openmmenn.createMixedSystem(modeller.topology, system, region, model=model, embedding="mechanical",
                                            multiplicity=1)
        force = openmmenn.findENNForce(mixed)
        print(f"{modeller.topology.getNumAtoms()} atoms; ML region: {len(region)} atoms, total charge "
              f"{force.getTotalCharge():+.0f} e, multiplicity {force.getSpinMultiplicity()}")
        integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.0005 * unit.picoseconds)
        context = openmm.Context(mixed, integrator, openmm.Platform.getPlatformByName(args.platform))
        context.setPositions(modeller.positions)
        kj = unit.kilojoule_per_mole
        for multiplicity in (3, 1):  # the model reads the multiplicity: a triplet, then back to the singlet
            force.setSpinMultiplicity(multiplicity)
            force.updateParametersInContext(context)
            energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(kj)
            print(f"multiplicity {multiplicity}: potential energy {energy:.3f} kJ/mol")
        integrator.step(args.steps)
        energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(kj)
        if not np.isfinite(energy):
            sys.exit("the run diverged")
        print(f"after {args.steps} steps of 0.5 fs: potential energy {energy:.3f} kJ/mol")
    return 0


if __name__ == "__main__":
    sys.exit(main())
