"""Systems with ENNForce from openmm.app: a pure-ML System, or an MM System whose ML region moves to ENNForce.

The conventions follow openmm-ml's ``MLPotential.createSystem`` and ``createMixedSystem``; see docs/mlmm.md.
"""
import warnings
import xml.etree.ElementTree as ElementTree

import openmm
from openmm import unit

from .enn import ENNForce, _value_in

__all__ = ["createSystem", "createMixedSystem", "findENNForce", "INTERPOLATION_PARAMETER"]

#: The global parameter that createMixedSystem(interpolate=True) adds: 0 is the MM System, 1 the ML/MM one.
INTERPOLATION_PARAMETER = "lambda_interpolate"

# Forces whose terms (bonds, angles, torsions) belong to the particles they name: a term among ML atoms only
# is part of the ML description and leaves the MM System.
_BONDED_FORCES = ("HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "RBTorsionForce", "CMAPTorsionForce",
                  "CustomBondForce", "CustomAngleForce", "CustomTorsionForce", "CustomCompoundBondForce")
# The XML elements that hold those terms, and the attributes that name particles in them (OpenMM's serialization).
_TERM_ELEMENTS = ("Bond", "Angle", "Torsion")


def _error(message):
    return openmm.OpenMMException(message)


def findENNForce(system):
    """The ENNForce of a System (also one deserialized from XML, or inside createMixedSystem's interpolating
    CustomCVForce), as an ENNForce. Raises OpenMMException unless there is exactly one."""
    found = []
    for force in system.getForces():
        candidates = [force]
        if isinstance(force, openmm.CustomCVForce):
            candidates = [force.getCollectiveVariable(i) for i in range(force.getNumCollectiveVariables())]
        for candidate in candidates:
            try:
                found.append(ENNForce.cast(candidate))
            except openmm.OpenMMException:
                pass
    if len(found) != 1:
        raise _error(f"the System has {len(found)} ENNForces, not one")
    return found[0]


def _model_force(model):
    """An ENNForce for `model`: None (the shipped model), a shipped model's name, or a path to a model file."""
    from . import shipped_model
    if model is None:
        return ENNForce(shipped_model())
    path = str(model)
    if "/" not in path and not path.endswith(".enn"):
        try:
            return ENNForce(shipped_model(path))
        except FileNotFoundError:
            pass
    return ENNForce(path)


def _atomic_numbers(topology, atoms):
    numbers = []
    for atom in atoms:
        if atom.element is None:
            raise _error(f"atom {atom.index} ({atom.name} of residue {atom.residue.name} {atom.residue.id}) has no element; "
                         "set it in the Topology (PDB columns 77-78) before creating an ML System")
        numbers.append(atom.element.atomic_number)
    return numbers


def _molecules(topology, atoms):
    """The connected components (by the Topology's bonds) among `atoms`, each a sorted list, ordered by first atom."""
    index = {a: k for k, a in enumerate(sorted(atoms))}
    parent = list(range(len(index)))

    def root(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k
    for bond in topology.bonds():
        a, b = bond[0].index, bond[1].index
        if a in index and b in index:
            parent[root(index[a])] = root(index[b])
    groups = {}
    for a in sorted(atoms):
        groups.setdefault(root(index[a]), []).append(a)
    return sorted(groups.values())


def _add_charge_groups(force, molecules, charges, position):
    """One charge group per molecule (a model's charges cannot then move between molecules)."""
    if len(molecules) < 2 or not force.hasChargeHead() or force.hasLatentCharges():
        return
    for molecule, charge in zip(molecules, charges):
        force.addChargeGroup([position[a] for a in molecule], charge)


def _charge(value):
    """A charge in e, from a number or a Quantity (the wrapper's one unit conversion)."""
    return float(_value_in(value, lambda u: u.elementary_charge))


def createSystem(topology, model=None, total_charge=None, remove_cm_motion=True, cutoff=1.0 * unit.nanometer,
                 force_group=0, molecule_charges=None, multiplicity=1):
    """A System whose whole energy is the model's: one ENNForce over every atom of `topology`.

    With several molecules (connected by the Topology's bonds) and a model that predicts charges, each molecule
    is a charge group: its charges sum to its own charge, 0 unless `molecule_charges` says otherwise, and charge
    cannot move between molecules (docs/mlmm.md).

    Parameters
    ----------
    topology : openmm.app.Topology
        Elements come from its atoms; it is periodic if it has periodic box vectors (they become the System's).
    model : str or None
        A model file, the name of a shipped model, or None for the shipped model (openmmenn.shipped_model()).
    total_charge : int, float, Quantity or None
        The charge (e) the predicted charges sum to, and that a model taking the total charge as an input (MACE-OMOL-0)
        reads; None: 0, or the sum of `molecule_charges`.
    molecule_charges : list or None
        The charge (e) of each molecule, in the order of their first atoms; None: all 0 (with several
        molecules total_charge must then be 0). Given with total_charge, they must add up to it.
    multiplicity : int
        The spin multiplicity 2S + 1 (1: singlet), read by a model that takes it as an input (MACE-OMOL-0).
    remove_cm_motion : bool
        Add a CMMotionRemover, as openmm.app's createSystem does.
    cutoff : Quantity or float (nm)
        For a periodic System whose model declares its own Coulomb term: the PME real-space cutoff.
    force_group : int
        The ENNForce's force group.
    """
    system = openmm.System()
    box = topology.getPeriodicBoxVectors()
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*box)
    for atom in topology.atoms():
        system.addParticle(atom.element.mass if atom.element is not None else 0.0)
    force = _whole_topology_force(topology, model, total_charge, molecule_charges, cutoff, multiplicity)
    force.setForceGroup(force_group)
    system.addForce(force)
    if remove_cm_motion:
        system.addForce(openmm.CMMotionRemover())
    return system


def _whole_topology_force(topology, model, total_charge, molecule_charges, cutoff, multiplicity=1):
    """An ENNForce over every atom of `topology` (particle i is atom i), as createSystem describes it."""
    atoms = list(topology.atoms())
    numbers = _atomic_numbers(topology, atoms)
    force = _model_force(model)
    force.setSpinMultiplicity(int(multiplicity))
    for atom, z in zip(atoms, numbers):
        force.addParticle(atom.index, z)
    molecules = _molecules(topology, [a.index for a in atoms])
    if molecule_charges is None:
        total = 0.0 if total_charge is None else _charge(total_charge)
        if len(molecules) > 1 and total != 0:
            raise _error(f"the Topology has {len(molecules)} molecules: give each its charge with molecule_charges")
        molecule_charges = [total] if len(molecules) == 1 else [0.0] * len(molecules)
    molecule_charges = [_charge(q) for q in molecule_charges]
    if len(molecule_charges) != len(molecules):
        raise _error(f"molecule_charges has {len(molecule_charges)} values for {len(molecules)} molecules")
    total = sum(molecule_charges)
    if total_charge is not None and abs(_charge(total_charge) - total) > 1e-6:
        raise _error(f"molecule_charges add up to {total} e, not to total_charge = {_charge(total_charge)} e")
    if total != 0 or not force.hasLatentCharges():  # (latent charges take no total: ENNForce says why if one is given)
        force.setTotalCharge(total)
    _add_charge_groups(force, molecules, molecule_charges, {a.index: a.index for a in atoms})
    if topology.getPeriodicBoxVectors() is not None:
        force.setUsesPeriodicBoundaryConditions(True)
        # The model's own Coulomb term in the box: the periodic sum it was trained with where it declares one
        # (MACELES's truncated reciprocal sum), else PME.
        if force.includesCoulombTerm() and not force.hasTrainedPeriodicSum():
            _own_coulomb_with_pme(force, cutoff)
    return force


def _split_terms(force, ml):
    """Two copies of a bonded force: the terms that touch an MM atom, and those among ML atoms only."""
    xml = openmm.XmlSerializer.serialize(force)
    outside, inside = ElementTree.fromstring(xml), ElementTree.fromstring(xml)
    count = 0
    for keep_inside, root in ((False, outside), (True, inside)):
        for parent in list(root.iter()):  # a list: terms are removed on the way
            for term in list(parent):
                if term.tag not in _TERM_ELEMENTS:
                    continue
                particles = [int(v) for k, v in term.attrib.items() if k[0] in "pab" and k[1:].isdigit()]
                within = len(particles) > 0 and all(p in ml for p in particles)
                count += within and keep_inside
                if within != keep_inside:
                    parent.remove(term)
    def load(root):
        return openmm.XmlSerializer.deserialize(ElementTree.tostring(root, encoding="unicode"))
    return load(outside), load(inside), count


def _nonbonded_force(system):
    """The System's first NonbondedForce, or None."""
    return next((f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)), None)


def _region_mm_charge(system, ml_atoms):
    force = _nonbonded_force(system)
    if force is None:
        return None
    return sum(force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge) for i in ml_atoms)


def _infer_charge(system, atoms, what):
    charge = _region_mm_charge(system, atoms)
    if charge is None:
        raise _error("the System has no NonbondedForce to infer the ML region's charge from; pass total_charge")
    rounded = round(charge)
    if abs(charge - rounded) > 0.01:
        warnings.warn(f"the MM charges of {what} sum to {charge:.4f} e, not an integer; its predicted charges will "
                      f"sum to {rounded} e (pass total_charge to choose)", stacklevel=4)
    return float(rounded)


def _region_force(topology, system, ml_list, model, total_charge, multiplicity=1):
    """An ENNForce over the atoms `ml_list` (sorted) of an MM System, with the region's charge: `total_charge`, or
    inferred from the MM charges, one charge group per molecule (createMixedSystem's docstring), and its spin
    multiplicity."""
    atoms = list(topology.atoms())
    numbers = _atomic_numbers(topology, [atoms[i] for i in ml_list])
    molecules = _molecules(topology, ml_list)
    force = _model_force(model)
    molecule_charges = None
    force.setSpinMultiplicity(int(multiplicity))
    if force.usesTotalCharge():  # charges constrained to the region's charge, or an input (latent charges take none)
        if len(molecules) > 1:
            molecule_charges = [_infer_charge(system, m, f"ML molecule {k} (atoms {m[0]}-{m[-1]})")
                                for k, m in enumerate(molecules)]
            if total_charge is not None and abs(_charge(total_charge) - sum(molecule_charges)) > 1e-6:
                raise _error(f"the ML region holds {len(molecules)} molecules whose MM charges sum to {molecule_charges} e, "
                             f"not to total_charge = {_charge(total_charge)} e")
            total_charge = sum(molecule_charges)
        elif total_charge is None:
            total_charge = _infer_charge(system, ml_list, "the ML region")
    for i, z in zip(ml_list, numbers):
        force.addParticle(i, z)
    if total_charge is not None:
        force.setTotalCharge(_charge(total_charge))
    if molecule_charges is not None:
        _add_charge_groups(force, molecules, molecule_charges, {a: k for k, a in enumerate(ml_list)})
    return force


def createMixedSystem(topology, system, ml_atoms, model=None, embedding="electrostatic", total_charge=None,
                      interpolate=False, remove_constraints=True, force_group=0, multiplicity=1):
    """A copy of an MM System in which the atoms `ml_atoms` are described by the model (ML/MM).

    What changes (docs/mlmm.md): bonds, angles and torsions among ML atoms only are removed (those that cross the
    boundary stay), and with `remove_constraints` the constraints between ML atoms; ML-ML nonbonded pairs leave the
    NonbondedForce (and any CustomNonbondedForce); an ENNForce over the ML atoms is added. The embedding sets what the
    ML atoms' charges are towards the MM atoms:

    * ``"electrostatic"``: the model's predicted charges, coupled to the NonbondedForce (NoCutoff, reaction field,
      PME) and to the implicit-solvent force (GBSAOBCForce, or openmm.app's HCT/OBC1/OBC2/GBn/GBn2 CustomGBForce),
      with the chain-rule forces. Needs a model with a charge head. A PolarMACE model instead takes the MM charges
      into its field-update steps (NoCutoff or PME; docs/polar.md).
    * ``"mechanical"``: the ML atoms keep their MM charges for ML-MM Coulomb and in implicit solvent; ML-ML is the
      model's alone.

    Lennard-Jones between ML and MM atoms is always the force field's.

    Parameters
    ----------
    topology : openmm.app.Topology
        The System's topology; elements of the ML atoms come from it.
    system : openmm.System
        The MM System (left unchanged).
    ml_atoms : iterable of int
        Indices of the atoms in the ML region.
    model : str or None
        A model file, a shipped model's name, or None for the shipped model.
    embedding : "electrostatic" or "mechanical"
    total_charge : int, float, Quantity or None
        The charge the predicted charges sum to; None infers it from the region's MM charges (rounded to an
        integer, with a warning if they are not close to one). A region of several molecules (connected by the
        Topology's bonds) gets one charge group per molecule, each with its own MM charge rounded, so that
        charge cannot move between them; total_charge must then equal their sum. A model that takes the total charge
        as an input (MACE-OMOL-0's embedding) reads this value, inferred the same way.
    multiplicity : int
        The spin multiplicity 2S + 1 of the ML region (1: singlet, 2: doublet radical, ...), read by a model that
        takes it as an input (MACE-OMOL-0); others ignore it.
    interpolate : bool
        Add a global parameter ``lambda_interpolate`` (default 1) with E = lambda E_ML/MM + (1 - lambda) E_MM:
        0 gives the MM System, 1 the ML/MM one (alchemical and free-energy work).
    remove_constraints : bool
        Remove constraints between ML atoms (those to MM atoms stay).
    force_group : int
        Force group of the ENNForce (and, with `interpolate`, of the interpolating CustomCVForce).

    Returns
    -------
    openmm.System
    """
    if embedding not in ("electrostatic", "mechanical"):
        raise _error(f"embedding must be 'electrostatic' or 'mechanical', not {embedding!r}")
    ml_list = sorted(set(int(i) for i in ml_atoms))
    if not ml_list:
        raise _error("the ML region is empty")
    if ml_list[0] < 0 or ml_list[-1] >= system.getNumParticles():
        raise _error(f"ML atom indices must lie in 0..{system.getNumParticles() - 1}")
    if topology.getNumAtoms() != system.getNumParticles():
        raise _error(f"the Topology has {topology.getNumAtoms()} atoms but the System has {system.getNumParticles()} particles")
    ml = set(ml_list)
    original = openmm.XmlSerializer.serialize(system)
    mixed = openmm.XmlSerializer.deserialize(original)
    force = _region_force(topology, system, ml_list, model, total_charge, multiplicity)
    if embedding == "electrostatic" and not (force.hasChargeHead() or force.hasPolarHead()):
        raise _error("electrostatic embedding needs a model with a charge head (predicted charges); this model has none: "
                     "use embedding='mechanical'")
    force.setForceGroup(force_group)
    periodic = any(f.usesPeriodicBoundaryConditions() for f in mixed.getForces())
    force.setUsesPeriodicBoundaryConditions(periodic)

    if remove_constraints:
        for c in reversed(range(mixed.getNumConstraints())):
            p1, p2, _ = mixed.getConstraintParameters(c)
            if p1 in ml and p2 in ml:
                mixed.removeConstraint(c)

    # Bonded terms among ML atoms leave; with interpolation they are kept, to be scaled by (1 - lambda).
    ml_internal = []
    for index in reversed(range(mixed.getNumForces())):
        f = mixed.getForce(index)
        name = type(f).__name__
        if name in _BONDED_FORCES:
            outside, inside, count = _split_terms(f, ml)
            outside.setForceGroup(f.getForceGroup())
            mixed.removeForce(index)
            mixed.addForce(outside)
            if count:
                ml_internal.append(inside)

    nonbonded = [f for f in mixed.getForces() if isinstance(f, openmm.NonbondedForce)]
    if len(nonbonded) > 1:
        raise _error("the System has more than one NonbondedForce; ML/MM needs exactly one (or none)")
    gb_forces = [f for f in mixed.getForces() if isinstance(f, (openmm.GBSAOBCForce, openmm.CustomGBForce))]
    if len(gb_forces) > 1:
        raise _error("the System has more than one implicit-solvent force")
    for f in mixed.getForces():
        if isinstance(f, openmm.CustomNonbondedForce):
            _exclude_pairs(f, ml_list)
    if embedding == "electrostatic":
        if nonbonded:
            force.coupleToNonbondedForce(mixed, nonbonded[0])
        elif periodic and force.includesCoulombTerm():
            raise _error("a periodic System without a NonbondedForce: set the ENNForce's electrostatics yourself")
        if gb_forces and force.hasPolarHead():
            raise _error("a PolarMACE model's multipoles respond to the field; a generalized Born reaction field inside its "
                         "update steps is not defined: use explicit solvent, or embedding='mechanical'")
        if gb_forces:
            gb = gb_forces[0]
            if isinstance(gb, openmm.GBSAOBCForce):
                force.coupleToGBSAOBCForce(mixed, gb)
            else:
                force.coupleToCustomGBForce(mixed, gb)
    ml_images = None
    if embedding == "mechanical" and nonbonded:
        nb = nonbonded[0]
        own_long_range = periodic and force.includesCoulombTerm()
        # A model that sums its own Coulomb term over periodic images: the MM charges' ML-ML image terms, which
        # the NonbondedForce's Ewald/PME sum holds even for excluded pairs, would count those images twice.
        subtract_images = own_long_range and nb.getNonbondedMethod() in _EWALD_METHODS
        _exclude_ml_pairs(nb, ml_list, keep_coulomb=subtract_images)
        if own_long_range:
            _own_coulomb_with_pme_of(force, nb)
        if subtract_images:
            ml_images = _ml_ewald_of_mm_charges(nb, ml_list, mixed.getNumParticles())
    if not interpolate:
        mixed.addForce(force)
        if ml_images is not None:
            minus = openmm.CustomCVForce("-ml_mm_ewald")
            minus.addCollectiveVariable("ml_mm_ewald", ml_images)
            minus.setForceGroup(nonbonded[0].getForceGroup())
            mixed.addForce(minus)
        return mixed
    return _interpolating_system(original, mixed, force, ml_internal, force_group, ml_images)


def _own_coulomb_with_pme(force, cutoff, ewald_error_tolerance=None):
    """The model's own Coulomb term, between its atoms and their periodic images, summed with PME."""
    force.setElectrostaticsMethod(ENNForce.PME)
    force.setCutoffDistance(cutoff)
    if ewald_error_tolerance is not None:
        force.setEwaldErrorTolerance(ewald_error_tolerance)


def _own_coulomb_with_pme_of(force, nonbonded):
    """_own_coulomb_with_pme with the MM System's PME settings (cutoff, tolerance and grid)."""
    alpha, nx, ny, nz = nonbonded.getPMEParameters()
    _own_coulomb_with_pme(force, nonbonded.getCutoffDistance(), nonbonded.getEwaldErrorTolerance())
    force.setPMEParameters(alpha.value_in_unit(unit.nanometer**-1) if unit.is_quantity(alpha) else alpha, nx, ny, nz)


def _exclude_ml_pairs(nonbonded, ml_list, keep_coulomb=False):
    """ML-ML pairs carry no Coulomb or Lennard-Jones in the NonbondedForce: that is the model's.

    With `keep_coulomb` every ML-ML pair is an exception with the full product of its MM charges instead, which
    with Ewald/PME makes the pair's whole Ewald interaction the NonbondedForce's, to be subtracted exactly by
    _ml_ewald_of_mm_charges (the pair in the cell and all its periodic images)."""
    charges = {i: nonbonded.getParticleParameters(i)[0] for i in ml_list} if keep_coulomb else None
    def product(p1, p2):
        return charges[p1] * charges[p2] if keep_coulomb else 0.0
    ml = set(ml_list)
    excepted = set()
    for e in range(nonbonded.getNumExceptions()):
        p1, p2, q, sigma, epsilon = nonbonded.getExceptionParameters(e)
        if p1 in ml and p2 in ml:
            nonbonded.setExceptionParameters(e, p1, p2, product(p1, p2), sigma, 0.0)
            excepted.add((min(p1, p2), max(p1, p2)))
    for a in range(len(ml_list)):
        for b in range(a + 1, len(ml_list)):
            if (ml_list[a], ml_list[b]) not in excepted:
                nonbonded.addException(ml_list[a], ml_list[b], product(ml_list[a], ml_list[b]), 1.0, 0.0)


_EWALD_METHODS = (openmm.NonbondedForce.Ewald, openmm.NonbondedForce.PME, openmm.NonbondedForce.LJPME)


def _ml_ewald_of_mm_charges(nonbonded, ml_list, num_particles):
    """A NonbondedForce with the Ewald energy of the ML atoms' MM charges alone, with the NonbondedForce's own
    method and grid, so that subtracting it cancels their ML-ML share of that force to round-off."""
    alone = openmm.NonbondedForce()
    method = nonbonded.getNonbondedMethod()
    alone.setNonbondedMethod(openmm.NonbondedForce.PME if method == openmm.NonbondedForce.LJPME else method)
    alone.setCutoffDistance(nonbonded.getCutoffDistance())
    alone.setEwaldErrorTolerance(nonbonded.getEwaldErrorTolerance())
    alone.setPMEParameters(*nonbonded.getPMEParameters())
    alone.setUseDispersionCorrection(False)
    ml = set(ml_list)
    for i in range(num_particles):
        alone.addParticle(nonbonded.getParticleParameters(i)[0] if i in ml else 0.0, 1.0, 0.0)
    return alone


def _exclude_pairs(custom, ml_list):
    existing = set()
    for e in range(custom.getNumExclusions()):
        p1, p2 = custom.getExclusionParticles(e)
        existing.add((min(p1, p2), max(p1, p2)))
    for a in range(len(ml_list)):
        for b in range(a + 1, len(ml_list)):
            if (ml_list[a], ml_list[b]) not in existing:
                custom.addExclusion(ml_list[a], ml_list[b])


def _interpolating_system(original_xml, mixed, force, ml_internal, force_group, ml_images=None):
    """E = lambda (ENNForce + the changed forces of the ML/MM System - `ml_images`, the ML atoms' own Ewald energy
    of a mechanical embedding) + (1 - lambda) (their MM originals)."""
    original = openmm.XmlSerializer.deserialize(original_xml)
    changed = (openmm.NonbondedForce, openmm.GBSAOBCForce, openmm.CustomGBForce, openmm.CustomNonbondedForce)
    cv = openmm.CustomCVForce("")
    ml_terms, mm_terms = ["ml"], []
    cv.addCollectiveVariable("ml", force)
    if ml_images is not None:
        cv.addCollectiveVariable("mlimages", ml_images)
    for index in reversed(range(mixed.getNumForces())):
        f = mixed.getForce(index)
        if isinstance(f, changed):
            name = f"mlmm{index}"
            cv.addCollectiveVariable(name, openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(f)))
            ml_terms.append(name)
            mixed.removeForce(index)
    for index, f in enumerate(original.getForces()):
        if isinstance(f, changed):
            name = f"mm{index}"
            cv.addCollectiveVariable(name, openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(f)))
            mm_terms.append(name)
    for k, f in enumerate(ml_internal):
        name = f"mmbonded{k}"
        cv.addCollectiveVariable(name, f)
        mm_terms.append(name)
    lam = INTERPOLATION_PARAMETER
    mm_sum = "+".join(mm_terms) if mm_terms else "0"
    ml_sum = "+".join(ml_terms) + ("-mlimages" if ml_images is not None else "")
    cv.setEnergyFunction(f"{lam}*({ml_sum}) + (1-{lam})*({mm_sum})")
    cv.addGlobalParameter(lam, 1.0)
    cv.setForceGroup(force_group)
    mixed.addForce(cv)
    return mixed
