"""Benchmark ENNForce: tables of force-evaluation and MD-step times, every platform side by side.

    /usr/bin/python3 -m openmmenn.bench [--systems ...] [--max-seconds 60] [--repeats 3]

Force evaluations: each benchmark system on each OpenMM platform that has an ENNForce kernel, plus the
PyTorch implementation of the same model (openmmenn.torch_model) where torch is importable, as the
baseline a user would otherwise run. Columns: atoms, ms per force evaluation (energy + forces), atom-steps
per second, and the ratio to the Reference platform measured in this run. Systems:

* molecule      acetamide in vacuum, the shipped model
* water-12/300/3000/30000  water boxes at 1 g/cm^3 with random models the size of MACE-OFF23 small
                (96x0e, l_max 3, correlation 3, 2 layers, r_c 4.5 A) and medium (128x0e+128x1o, r_c 5 A)
* water-charged-3000/30000  the same boxes with the shipped model, whose predicted charges carry its own
                Coulomb term, summed with PME (pure-ML charged water)
* ligand-pme    acetamide with predicted charges in TIP3P water with PME (the shipped model)
* crystal-1000  a rattled NaCl crystal of 1,000 atoms (5 x 5 x 5 cubic cells), periodic, with a random mace-torch model
                the size of MACE-OMAT-0 medium (density blocks, ZBL, Agnesi, 128x0e+128x1o, r_max 6 A, 10 Bessel
                functions, correlation 3, 2 layers), converted; beside the platforms, mace-torch itself in float32
                (its forward and force pass on a graph built beforehand) on as many threads as OpenMM's CPU
                platform. Needs mace-torch.
* les-water-3000  a 3,000-atom water box (periodic) with a random mace-torch MACELES model of MACE-LES-OFF small's
                architecture (192x0e+192x1o, r_max 4.5 A, MACE-OFF's blocks, the les library's sigma 1 A and dl 2 A),
                converted, its long-range term as trained (the truncated reciprocal sum); beside mace-torch float32 with
                openmmenn.les_standin (the les library is not on PyPI) as for crystal-1000. Needs mace-torch.
* omol-peptide, omol-water-300  alanine dipeptide (22 atoms) in vacuum and a 300-atom water box (periodic) with a
                random mace-torch model of MACE-OMOL-0's architecture and fewer channels (non-linear blocks, 3 layers,
                correlation 2, hidden 64x0e+64x1o+64x2e, edge irreps 32x0e+32x1o+32x2e, l_max 3, r_max 6 A,
                apply_cutoff=False, the charge and spin embedding; OMOL-0 itself has 1024 and 128 channels),
                converted; beside mace-torch float32 as for crystal-1000. Needs mace-torch.

MD steps (ms per Verlet step of the whole System, and ns/day at 1 fs): water-12, and the systems below.
openmm.app builds them: alanine dipeptide (22 atoms, amber99sb, the whole peptide ML with the shipped model):

* peptide-vacuum  coupled to the NonbondedForce (NoCutoff)
* peptide-obc2    coupled to the NonbondedForce and amber99_obc.xml's GBSAOBCForce
* mlmm-1800, mlmm-20000  in a cubic box of TIP3P (PME, cutoff 0.9 nm) of about that many atoms, each with the
                  electrostatic and the mechanical embedding of createMixedSystem; a third table sets the cost of
                  the predicted-charge terms (ENNForce minus the same network alone) beside OpenMM's
                  NonbondedForce for the whole box, measured in the same run
* les-mlmm-1800   mlmm-1800 with the MACELES model of les-water-3000: its latent charges in the electrostatic
                  embedding (needs mace-torch)
* polar-peptide   alanine dipeptide (open boundaries) with a random mace-torch PolarMACE of MACE-POLAR-1-M's layout
                  (64 channels instead of 512; needs mace-torch and graph-longrange 0.4.0), against mace-torch
* polar-mlmm-1800, polar-mlmm-20000  mlmm-1800/20000 with that model: the MM charges inside its update steps
                  (the electrostatic embedding, PME: the model's reciprocal sums) or the mechanical embedding

A row whose first evaluation takes longer than --max-seconds is reported as skipped.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import openmm

import openmmenn
from openmmenn import builder, modelfile

MODEL_SIZES = {
    "small": dict(channels=96, hidden=("96x0e", "96x0e"), residual=(False, True), correlation=3, sh_lmax=3,
                  message_lmax=3, r_max=4.5, radial_hidden=(64, 64, 64), readout_hidden=16),
    "medium": dict(channels=128, hidden=("128x0e+128x1o", "128x0e"), residual=(False, True), correlation=3, sh_lmax=3,
                   message_lmax=3, r_max=5.0, radial_hidden=(64, 64, 64), readout_hidden=16),
}
# MACE-OMAT-0 medium's architecture as published (ACEsuit's mace-foundations), for openmmenn.mace.random_mace_model.
OMAT_MEDIUM = dict(first="RealAgnosticDensityInteractionBlock", rest="RealAgnosticDensityResidualInteractionBlock",
                   hidden="128x0e+128x1o", r_max=6.0, num_bessel=10, radial_mlp=(64, 64, 64), mlp_irreps="16x0e", correlation=3,
                   interactions=2, pair_repulsion=True, distance_transform="Agnesi")
CRYSTAL_ELEMENTS = (1, 6, 7, 8, 11, 14, 16, 17)
# MACE-OMOL-0's architecture (ACEsuit's mace-foundations) with fewer channels; the embedding specs as published.
OMOL_ARCHITECTURE = dict(first="RealAgnosticResidualNonLinearInteractionBlock", rest="RealAgnosticResidualNonLinearInteractionBlock",
                         hidden="64x0e+64x1o+64x2e", edge_irreps="32x0e+32x1o+32x2e", r_max=6.0, num_bessel=8,
                         radial_mlp=(64, 64, 64), mlp_irreps="16x0e", correlation=2, interactions=3, apply_cutoff=False,
                         use_embedding_readout=True, embedding_specs={
                             "total_charge": {"type": "categorical", "per": "graph", "in_dim": 1, "emb_dim": 64, "num_classes": 201, "offset": 100},
                             "total_spin": {"type": "categorical", "per": "graph", "in_dim": 1, "emb_dim": 64, "num_classes": 101, "offset": 0}})
# MACE-LES-OFF small's architecture (MACE-OFF's blocks, 192x0e+192x1o, r_max 4.5 A, the MACE-OFF elements) with MACELES's
# long-range term (the les library's defaults: sigma 1 A, dl 2 A); mace-torch evaluates it with openmmenn.les_standin.
LES_OFF_ARCHITECTURE = dict(first="RealAgnosticInteractionBlock", rest="RealAgnosticResidualInteractionBlock", hidden="192x0e+192x1o",
                            r_max=4.5, num_bessel=8, radial_mlp=(64, 64, 64), mlp_irreps="16x0e", correlation=3, interactions=2,
                            model_class="MACELES", les_arguments={"use_atomwise": False}, elements=(1, 6, 7, 8, 9, 11, 15, 16, 17, 35, 53))
# MACE-POLAR-1-M's layout (mace's tests/extensions/polar: 3 non-linear layers, l <= 2, correlation 3, r_max 6 A, multipoles
# and field features l <= 1, probes 1.5 and 3 A, 2 update steps, electron energy) with 64 channels instead of 512.
POLAR_M_ARCHITECTURE = dict(first="RealAgnosticResidualNonLinearInteractionBlock", rest="RealAgnosticResidualNonLinearInteractionBlock",
                            hidden="64x0e+64x1o+64x2e", edge_irreps="16x0e+16x1o+16x2e", max_ell=3, correlation=3, interactions=3,
                            r_max=6.0, num_polynomial_cutoff=6, radial_mlp=(64, 64, 64), mlp_irreps="16x0e", model_class="PolarMACE",
                            kspace_cutoff_factor=1.0, atomic_multipoles_max_l=1, atomic_multipoles_smearing_width=1.5,
                            field_feature_max_l=1, field_feature_widths=[1.5, 3.0], field_feature_norms=[20.0, 20.0, 0.5, 0.5],
                            num_recursion_steps=2, include_electrostatic_self_interaction=True, add_local_electron_energy=True,
                            field_norm_factor=1.0, elements=(1, 6, 7, 8))
FOUNDATION_MODELS = {"crystal-1000": ("omat-medium", OMAT_MEDIUM), "omol-peptide": ("omol-64", OMOL_ARCHITECTURE),
                     "omol-water-300": ("omol-64", OMOL_ARCHITECTURE), "les-water-3000": ("les-off-small", LES_OFF_ARCHITECTURE),
                     "polar-peptide": ("polar-m-64", POLAR_M_ARCHITECTURE)}
# The step systems of a foundation model's architecture: (name prefix, model label, architecture)
STEP_MODELS = (("les-", "les-off-small", LES_OFF_ARCHITECTURE), ("polar-", "polar-m-64", POLAR_M_ARCHITECTURE))
ACETAMIDE_Z = [8, 6, 7, 6, 1, 1, 1, 1, 1]
ACETAMIDE = np.array([[-1.736, 0.107, -0.430], [-0.641, -0.142, -0.041], [-0.231, -1.210, 0.580], [0.542, 1.009, -0.411],
                      [0.693, -1.471, 0.777], [0.011, 1.903, -0.726], [1.122, 1.234, 0.584], [1.252, 0.492, -1.025],
                      [-1.012, -1.921, 0.693]])  # Angstrom


def water_box(num_waters, rng):
    """Waters on a cubic lattice at 1 g/cm^3, random orientations: (atomic numbers, positions A, edge A)."""
    edge = (num_waters * 29.9) ** (1 / 3)
    n = int(np.ceil(num_waters ** (1 / 3)))
    z, pos = [], []
    for i in range(num_waters):
        o = (np.array([i % n, (i // n) % n, i // (n * n)]) + 0.5) * edge / n
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        pos += [o, o + q @ [0.9572, 0, 0], o + q @ [-0.2400, 0.9266, 0]]
        z += [8, 1, 1]
    return z, np.array(pos), edge


def nacl_crystal(cells, rng):
    """Rock salt (a = 5.64 A) of cells^3 cubic cells, every atom displaced by N(0, 0.05 A): (atomic numbers, A, edge A)."""
    a = 5.64
    basis = [((0, 0, 0), 11), ((0.5, 0.5, 0), 11), ((0.5, 0, 0.5), 11), ((0, 0.5, 0.5), 11),
             ((0.5, 0, 0), 17), ((0, 0.5, 0), 17), ((0, 0, 0.5), 17), ((0.5, 0.5, 0.5), 17)]
    z, pos = [], []
    for i in range(cells):
        for j in range(cells):
            for k in range(cells):
                for frac, element in basis:
                    pos.append((np.array(frac) + (i, j, k)) * a)
                    z.append(element)
    return z, np.array(pos) + rng.normal(0.0, 0.05, size=(len(z), 3)), cells * a


def foundation_model(path, architecture):
    """A random mace-torch model of a foundation model's architecture in float32 (as MACE builds and saves it),
    converted to `path`; returns the mace-torch model, or None (with no file) where mace-torch is not importable."""
    try:
        import torch
        import mace.modules  # noqa: F401 (mace-torch)
        from e3nn import o3
    except ImportError:
        return None
    from . import les_standin, mace
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        options = dict(architecture)
        elements = options.pop("elements", CRYSTAL_ELEMENTS)
        if "edge_irreps" in options:
            options["edge_irreps"] = o3.Irreps(options["edge_irreps"])
        if options.get("model_class") == "MACELES":  # (the les library it calls is not on PyPI: the stand-in)
            les_standin.install()
            from mace.modules.extensions import MACELES
            options["model_class"] = MACELES
        if options.get("model_class") == "PolarMACE":
            try:
                import graph_longrange  # noqa: F401
            except ImportError:
                return None
            from mace.modules.extensions import PolarMACE
            options["model_class"] = PolarMACE
        model = mace.random_mace_model([-1.0 - 0.1 * z for z in elements], elements=elements, seed=1, **options)
    finally:
        torch.set_default_dtype(previous)
    arch, tensors = mace.convert(mace.describe_mace_model(model), {k: v.detach().numpy() for k, v in model.state_dict().items()})
    modelfile.write(path, arch, tensors)
    return model


def time_mace_torch(model, z, pos, edge, repeats, budget):
    """mace-torch's forward and force pass in float32 on the CPU, with as many threads as OpenMM's CPU platform uses by
    default; its graph is built once beforehand (not timed: a neighbour list would only add to MACE's time)."""
    import torch
    from . import mace
    torch.set_num_threads(os.cpu_count())
    model = model.float()
    elements = [int(e) for e in model.atomic_numbers]
    cell = None if edge is None else np.eye(3) * edge
    if type(model).__name__ == "PolarMACE":
        data = mace.polar_graph(z, pos, cell, float(model.r_max), elements, dtype=torch.float32)
    else:
        data = mace.mace_graph(z, pos, cell, float(model.r_max), elements, dtype=torch.float32)
        data["total_charge"], data["total_spin"] = torch.tensor([0.0]), torch.tensor([1.0])  # (read by a model with a joint embedding)
    return best_time(lambda: model(dict(data), compute_force=True, training=False), repeats, budget)


def alanine_dipeptide():
    """The shipped alanine dipeptide (22 atoms): (atomic numbers, positions A)."""
    from openmm import app
    pdb = app.PDBFile(openmmenn.shipped_structure("alanine_dipeptide.pdb"))
    z = [atom.element.atomic_number for atom in pdb.topology.atoms()]
    return z, np.array(pdb.getPositions(asNumpy=True).value_in_unit(openmm.unit.angstrom))


def platforms(wanted=None):
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    order = ["Reference", "CPU", "OpenCL", "CUDA", "HIP"]
    return [p for p in order if p in names and (not wanted or p in wanted)]


def make_context(model_path, z, pos_angstrom, edge, platform, ligand_pme=False):
    system = openmm.System()
    force = openmmenn.ENNForce(model_path)
    for zi in z:
        system.addParticle(1.0)
    ml = range(len(ACETAMIDE_Z)) if ligand_pme else range(len(z))
    for i in ml:
        force.addParticle(i, z[i])
    if edge is not None:
        system.setDefaultPeriodicBoxVectors(openmm.Vec3(edge / 10, 0, 0), openmm.Vec3(0, edge / 10, 0), openmm.Vec3(0, 0, edge / 10))
        force.setUsesPeriodicBoundaryConditions(True)
        if not ligand_pme and force.includesCoulombTerm() and not force.hasTrainedPeriodicSum():
            # A model whose energy includes its own Coulomb term (the shipped one) sums it with PME; MACELES, as trained.
            force.setElectrostaticsMethod(openmmenn.ENNForce.PME)
            force.setCutoffDistance(min(0.9, 0.45 * edge / 10))
    system.addForce(force)
    if ligand_pme:
        nb = openmm.NonbondedForce()
        nb.setNonbondedMethod(openmm.NonbondedForce.PME)
        nb.setCutoffDistance(0.9)
        for i, zi in enumerate(z):
            water = i >= len(ACETAMIDE_Z)
            q = (-0.834 if zi == 8 else 0.417) if water else 0.0
            nb.addParticle(q, 0.315 if zi == 8 else 0.1, 0.636 if zi == 8 else 0.0)
        for first in range(len(ACETAMIDE_Z), len(z), 3):
            for a, b in ((0, 1), (0, 2), (1, 2)):
                nb.addException(first + a, first + b, 0.0, 1.0, 0.0)
        system.addForce(nb)
        force.coupleToNonbondedForce(system, nb)
        nb.setForceGroup(1)  # time ENNForce only
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    context.setPositions(pos_angstrom * 0.1)
    return context


def best_time(evaluate, repeats, budget):
    """(best of `repeats` timings, first timing) in seconds per call; best is None when the first exceeds `budget`
    seconds. Calls faster than 50 ms are timed in batches of about 50 ms, so that timer and noise do not dominate."""
    start = time.time()
    evaluate()
    first = time.time() - start
    if first > budget:
        return None, first
    start = time.time()
    evaluate()
    batch = max(1, min(1000, int(0.05 / max(time.time() - start, 1e-6))))
    times = []
    for _ in range(repeats):
        start = time.time()
        for _ in range(batch):
            evaluate()
        times.append((time.time() - start) / batch)
    return min(times), first


def time_openmm(context, repeats, budget):
    return best_time(lambda: context.getState(getForces=True, groups={0}), repeats, budget)


def time_torch(model_path, z, pos, edge, repeats, budget):
    from .torch_model import TorchENNModel
    model = TorchENNModel.from_file(model_path)
    cell = np.eye(3) * edge if edge is not None else None
    return best_time(lambda: model.evaluate(pos, z, cell), repeats, budget)


DEFAULT_SYSTEMS = ["molecule", "water-12", "water-300", "water-3000", "water-30000", "water-charged-3000", "water-charged-30000",
                   "ligand-pme", "crystal-1000", "omol-peptide", "omol-water-300", "les-water-3000", "peptide-vacuum", "peptide-obc2",
                   "mlmm-1800", "mlmm-20000", "les-mlmm-1800"]
STEP_SYSTEMS = ("peptide-vacuum", "peptide-obc2", "mlmm-", "les-mlmm-", "polar-mlmm-")
TIMESTEP_PS = 0.001
ENN_GROUP, NONBONDED_GROUP = 2, 1


def peptide_systems(name, model_path):
    """{embedding: System} and positions of a STEP_SYSTEMS entry, as openmm.app builds it (module docstring), with the
    model file `model_path`."""
    from openmm import app, unit
    pdb = app.PDBFile(openmmenn.shipped_structure("alanine_dipeptide.pdb"))
    files = {"peptide-vacuum": ["amber99sb.xml"], "peptide-obc2": ["amber99sb.xml", "amber99_obc.xml"]}.get(name, ["amber99sb.xml", "tip3p.xml"])
    ff = app.ForceField(*files)
    top, pos = pdb.topology, pdb.positions
    if "mlmm-" in name:
        modeller = app.Modeller(top, pos)
        edge = (int(name.split("-")[-1]) / 92.0) ** (1 / 3)  # ~92 atoms per nm^3 of box once the peptide is in
        modeller.addSolvent(ff, model="tip3p", boxSize=openmm.Vec3(edge, edge, edge) * unit.nanometer)
        top, pos = modeller.topology, modeller.positions
        mm = ff.createSystem(top, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer, constraints=None, rigidWater=True)
        embeddings = ("electrostatic", "mechanical")
    else:
        mm = ff.createSystem(top, nonbondedMethod=app.NoCutoff, constraints=None)
        embeddings = ("electrostatic",)
    systems = {}
    for embedding in embeddings:
        system = openmmenn.createMixedSystem(top, mm, range(22), model=model_path, embedding=embedding)
        for force in system.getForces():
            force.setForceGroup(NONBONDED_GROUP if isinstance(force, openmm.NonbondedForce) else 0)
        openmmenn.findENNForce(system).setForceGroup(ENN_GROUP)
        systems[embedding] = system
    return systems, pos


def network_alone(system, model_path):
    """A System holding only an ENNForce of `model_path` over the ML atoms of `system`'s, in vacuum and uncoupled
    (the model's own Coulomb term, if any, then sums the 231 pairs of 22 atoms: nothing next to the network)."""
    coupled = openmmenn.findENNForce(system)
    alone = openmm.System()
    for i in range(system.getNumParticles()):
        alone.addParticle(system.getParticleMass(i))
    force = openmmenn.ENNForce(model_path)
    for i in range(coupled.getNumParticles()):
        force.addParticle(*coupled.getParticleParameters(i))
    if not force.hasLatentCharges():
        force.setTotalCharge(coupled.getTotalCharge())
    force.setForceGroup(ENN_GROUP)
    alone.addForce(force)
    return alone


def time_steps(context, repeats, budget, steps=20):
    """ms per integrator step (best of `repeats` runs of `steps` steps)."""
    integrator = context.getIntegrator()
    best, first = best_time(lambda: integrator.step(steps), repeats, budget)
    return (None if best is None else best / steps), first


def ns_per_day(seconds_per_step):
    return TIMESTEP_PS * 1e-3 * 86400 / seconds_per_step


def run_step_systems(names, platform_names, args, model_paths):
    """The MD-step rows (system, embedding, atoms, platform, s/step) and the ML/MM cost rows; model_paths: the model
    file of each system that does not use the shipped model."""
    steps, costs = [], []
    for name in names:
        model_path = model_paths.get(name, openmmenn.shipped_model())
        systems, pos = peptide_systems(name, model_path)
        for platform in platform_names:
            if platform == "Reference" and ("mlmm-" in name or args.no_reference_steps):
                continue
            times = {}
            for embedding, system in systems.items():
                context = openmm.Context(system, openmm.VerletIntegrator(TIMESTEP_PS), openmm.Platform.getPlatformByName(platform))
                context.setPositions(pos)
                best, first = time_steps(context, args.repeats, args.max_seconds)
                steps.append((name, embedding, system.getNumParticles(), platform, best, first))
                if best is not None:
                    print(f"  {name} {embedding} {platform}: {best * 1e3:.2f} ms/step", file=sys.stderr)
                if embedding == "electrostatic" and "mlmm-" in name:
                    times["ENNForce"] = best_time(lambda: context.getState(getForces=True, groups={ENN_GROUP}), args.repeats, args.max_seconds)[0]
                    times["NonbondedForce"] = best_time(lambda: context.getState(getForces=True, groups={NONBONDED_GROUP}),
                                                        args.repeats, args.max_seconds)[0]
                    alone = openmm.Context(network_alone(system, model_path), openmm.VerletIntegrator(TIMESTEP_PS),
                                           openmm.Platform.getPlatformByName(platform))
                    alone.setPositions(pos)
                    times["network"] = best_time(lambda: alone.getState(getForces=True, groups={ENN_GROUP}), args.repeats, args.max_seconds)[0]
                    del alone
                del context
            if times and None not in times.values():
                costs.append((name, systems["electrostatic"].getNumParticles(), platform, times))
    return steps, costs


def print_step_tables(steps, costs):
    print(f"\nMD steps (VerletIntegrator, {TIMESTEP_PS * 1e3:.0f} fs; best of the repeats, each of 20 steps)\n")
    print("| system | model or embedding | atoms | platform | ms/step | ns/day |")
    print("|---|---|---|---|---|---|")
    for name, embedding, atoms, platform, best, first in steps:
        if best is None:
            print(f"| {name} | {embedding} | {atoms} | {platform} | skipped (first run {first:.0f} s) | |")
        else:
            print(f"| {name} | {embedding} | {atoms} | {platform} | {best * 1e3:.2f} | {ns_per_day(best):.1f} |")
    if not costs:
        return
    print("\nML/MM: the predicted-charge terms (ENNForce with the electrostatic embedding minus the same network alone)"
          " beside OpenMM's NonbondedForce for the whole box, ms per force evaluation in the same run\n")
    print("| system | atoms | platform | ENNForce | network alone | predicted-charge terms | NonbondedForce | terms / NonbondedForce |")
    print("|---|---|---|---|---|---|---|---|")
    for name, atoms, platform, t in costs:
        terms = t["ENNForce"] - t["network"]
        print(f"| {name} | {atoms} | {platform} | {t['ENNForce'] * 1e3:.2f} | {t['network'] * 1e3:.2f} | {terms * 1e3:.2f} | "
              f"{t['NonbondedForce'] * 1e3:.2f} | {terms / t['NonbondedForce']:.2f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="*", default=DEFAULT_SYSTEMS)
    parser.add_argument("--sizes", nargs="*", default=["small", "medium"], choices=list(MODEL_SIZES))
    parser.add_argument("--max-seconds", type=float, default=60.0, help="skip rows whose first evaluation is slower")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--reference-max-atoms", type=int, default=5000,
                        help="skip the Reference platform above this size (its brute-force neighbour search is O(N^2))")
    parser.add_argument("--platforms", nargs="*", help="only these OpenMM platforms (default: every one with an ENNForce kernel)")
    parser.add_argument("--no-reference-steps", action="store_true", help="no MD-step rows on the Reference platform")
    parser.add_argument("--torch-max-atoms", type=int, default=1000,
                        help="skip the PyTorch model above this size (minutes per evaluation)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    try:
        import torch  # noqa: F401
        have_torch = not args.no_torch
    except ImportError:
        have_torch = False
    rows = []
    step_names = [n for n in args.systems if n.startswith(STEP_SYSTEMS)]
    step_rows = []
    mace_models = {}
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for name in args.systems:
            if name.startswith(STEP_SYSTEMS):
                continue
            if name == "molecule":
                cases.append((name, "shipped", openmmenn.shipped_model(), ACETAMIDE_Z, ACETAMIDE, None, False))
            elif name.startswith("water-charged-"):
                z, pos, edge = water_box(int(name.split("-")[2]) // 3, rng)
                cases.append((name, "shipped", openmmenn.shipped_model(), z, pos, edge, False))
            elif name.startswith("water-"):
                z, pos, edge = water_box(int(name.split("-")[1]) // 3, rng)
                for size in args.sizes:
                    path = os.path.join(tmp, size + ".enn")
                    if not os.path.exists(path):
                        builder.write_random_model(path, elements=(1, 8), seed=1, **MODEL_SIZES[size])
                    cases.append((name, size, path, z, pos, edge, False))
            elif name == "ligand-pme":
                wz, wpos, edge = water_box(300, rng)
                centre = np.array([edge / 2] * 3)
                keep = [i for i in range(0, len(wz), 3) if np.min(np.linalg.norm(wpos[i] - (ACETAMIDE + centre), axis=1)) > 2.6]
                z = ACETAMIDE_Z + [wz[i + k] for i in keep for k in range(3)]
                pos = np.concatenate([ACETAMIDE + centre] + [wpos[i:i + 3] for i in keep])
                cases.append((name, "shipped", openmmenn.shipped_model(), z, pos, edge, True))
            elif name in FOUNDATION_MODELS:
                label, architecture = FOUNDATION_MODELS[name]
                path = os.path.join(tmp, label + ".enn")
                if label not in mace_models:
                    mace_models[label] = foundation_model(path, architecture)
                if mace_models[label] is None:
                    print(f"  {name}: skipped (needs mace-torch)", file=sys.stderr)
                    continue
                if name == "crystal-1000":
                    z, pos, edge = nacl_crystal(5, rng)
                elif name in ("omol-peptide", "polar-peptide"):
                    z, pos, edge = alanine_dipeptide() + (None,)
                elif name == "les-water-3000":
                    z, pos, edge = water_box(1000, rng)
                else:
                    z, pos, edge = water_box(100, rng)
                cases.append((name, label, path, z, pos, edge, False))
        for system_name, size, path, z, pos, edge, ligand in cases:
            reference = None
            for platform in platforms(args.platforms):
                if platform == "Reference" and len(z) > args.reference_max_atoms:
                    rows.append((system_name, size, len(z), platform, None, None, None))
                    continue
                try:
                    context = make_context(path, z, pos, edge, platform, ligand)
                except Exception as e:  # a platform without an ENNForce kernel
                    if "required kernels" in str(e):
                        continue
                    raise
                best, first = time_openmm(context, args.repeats, args.max_seconds)
                if system_name == "water-12":
                    step, step_first = time_steps(context, args.repeats, args.max_seconds)
                    step_rows.append((system_name, size, len(z), platform, step, step_first))
                del context
                if platform == "Reference":
                    reference = best
                rows.append((system_name, size, len(z), platform, best, first, reference))
                print(f"  {system_name} {size} {platform}: {'%.1f ms' % (best * 1e3) if best else 'skipped'}", file=sys.stderr)
            if system_name in FOUNDATION_MODELS:
                best, first = time_mace_torch(mace_models[size], z, pos, edge, args.repeats, args.max_seconds)
                rows.append((system_name, size, len(z), "mace-torch float32 (CPU)", best, first, reference))
                print(f"  {system_name} {size} mace-torch: {'%.1f ms' % (best * 1e3) if best else 'skipped'}", file=sys.stderr)
                continue
            if have_torch and not ligand and len(z) > args.torch_max_atoms:
                rows.append((system_name, size, len(z), "PyTorch (CPU)", None, None, reference))
            elif have_torch and not ligand:
                best, first = time_torch(path, z, pos, edge, args.repeats, args.max_seconds)
                rows.append((system_name, size, len(z), "PyTorch (CPU)", best, first, reference))
                print(f"  {system_name} {size} PyTorch: {'%.1f ms' % (best * 1e3) if best else 'skipped'}", file=sys.stderr)
        model_paths = {}  # the step systems of a foundation model's architecture
        for name in step_names:
            for prefix, label, architecture in STEP_MODELS:
                if name.startswith(prefix):
                    path = os.path.join(tmp, label + ".enn")
                    if label not in mace_models:
                        mace_models[label] = foundation_model(path, architecture)
                    if mace_models[label] is not None:
                        model_paths[name] = path
        skipped = [n for n in step_names if n.startswith(tuple(p for p, _, _ in STEP_MODELS)) and n not in model_paths]
        for name in skipped:
            print(f"  {name}: skipped (needs mace-torch, and graph-longrange for PolarMACE)", file=sys.stderr)
        steps, costs = run_step_systems([n for n in step_names if n not in skipped], platforms(args.platforms), args, model_paths)
    print(f"\nopenmm-enn benchmark ({os.cpu_count()} cores; energy and forces per evaluation; best of {args.repeats})\n")
    print("| system | model | atoms | platform | ms/eval | atom-steps/s | speed vs Reference |")
    print("|---|---|---|---|---|---|---|")
    for system_name, size, atoms, platform, best, first, reference in rows:
        if best is None:
            why = f"first eval {first:.0f} s" if first is not None else "above --reference-max-atoms or --torch-max-atoms"
            print(f"| {system_name} | {size} | {atoms} | {platform} | skipped ({why}) | | |")
            continue
        ratio = f"{reference / best:.2f}x" if reference else "n/a"
        print(f"| {system_name} | {size} | {atoms} | {platform} | {best * 1e3:.1f} | {atoms / best:.3g} | {ratio} |")
    timing = {(name, platform): best for name, _, _, platform, best, _, _ in rows if best}
    for name in FOUNDATION_MODELS:
        if (name, "CPU") in timing and (name, "mace-torch float32 (CPU)") in timing:
            print(f"\n{name}: the CPU platform is {timing[(name, 'mace-torch float32 (CPU)')] / timing[(name, 'CPU')]:.1f}x "
                  f"mace-torch float32 on the same {os.cpu_count()} threads")
    print_step_tables(step_rows + steps, costs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
