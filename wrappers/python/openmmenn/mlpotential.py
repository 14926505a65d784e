"""openmm-enn models in openmm-ml: the potential ``"enn"`` and the embedding ``"enn-electrostatic"``.

openmm-ml (the ``openmmml`` package, 1.8 or later) finds both through the entry points that openmm-enn's
package metadata declares (groups ``openmmml.potentials`` and ``openmmml.embeddings``); nothing needs to be
imported or registered by hand::

    from openmmml import MLPotential
    potential = MLPotential("enn", modelPath="model.enn")     # modelPath omitted: the shipped model
    system = potential.createSystem(topology, charge=0)
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms)                                 # mechanical
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms, embedding="enn-electrostatic")  # predicted charges

``createSystem`` and ``createMixedSystem(embedding="enn-electrostatic")`` give the same Systems as
openmmenn.createSystem and openmmenn.createMixedSystem(embedding="electrostatic"); openmm-ml's own
``"mechanical"`` embedding calls ``addForces`` for the ML atoms and does the rest itself (docs/mlmm.md).
"""
from openmm import unit
from openmmml.mlpotential import Embedding, EmbeddingFactory, MLPotentialImpl, MLPotentialImplFactory

from . import mlmm

#: The names of the arguments that openmm-ml's embeddings pass on to addForces for themselves.
_EMBEDDING_ARGUMENTS = ("mlLongRange", "linkAtomDistances")


def _refuse_unknown(what, arguments, allowed=()):
    unknown = sorted(set(arguments) - set(allowed))
    if unknown:
        raise TypeError(f"{what} got unexpected arguments {unknown}")


class ENNPotentialImplFactory(MLPotentialImplFactory):
    """Makes the ``"enn"`` potential: ``MLPotential("enn", modelPath=None)``."""

    def createImpl(self, name, modelPath=None, **args):
        _refuse_unknown(f"MLPotential({name!r})", args)
        return ENNPotentialImpl(modelPath)


class ENNPotentialImpl(MLPotentialImpl):
    """An openmm-enn model file (or a shipped model's name; None: the shipped model) as an openmm-ml potential."""

    def __init__(self, modelPath):
        self.modelPath = modelPath
        self._model = mlmm._model_force(modelPath)  # a bad model file fails here, at MLPotential(...)

    def getMLLongRange(self):
        """A model whose energy includes the Coulomb term of its own charges sums it over periodic images."""
        return self._model.includesCoulombTerm()

    def addForces(self, topology, system, atoms, forceGroup, charge=None, moleculeCharges=None, multiplicity=1,
                  cutoff=1.0 * unit.nanometer, ewaldErrorTolerance=5e-4, **args):
        """One ENNForce: over every atom (``atoms`` None, from createSystem) or over ``atoms``.

        charge : the charge (e) the predicted charges sum to. For a whole System: 0 by default, or the sum of
            ``moleculeCharges`` (one per molecule, as openmmenn.createSystem's molecule_charges). For ML atoms: by
            default the sum of their MM charges in the System's NonbondedForce, rounded, one charge group per
            molecule (as openmmenn.createMixedSystem). A model that takes the total charge as an input reads it.
        multiplicity : the spin multiplicity 2S + 1 (default 1), read by a model that takes it as an input
            (MACE-OMOL-0).
        cutoff, ewaldErrorTolerance : the PME settings of a periodic model's own Coulomb term where the System
            has no NonbondedForce to take them from (createSystem, and openmm-ml's interpolation, which passes an
            empty System: give its NonbondedForce's values there to get the same PME as without interpolation).
        """
        _refuse_unknown("the 'enn' potential's addForces", args, _EMBEDDING_ARGUMENTS)
        if atoms is None:
            force = mlmm._whole_topology_force(topology, self.modelPath, charge, moleculeCharges, cutoff, multiplicity)
            force.setEwaldErrorTolerance(ewaldErrorTolerance)
        else:
            if moleculeCharges is not None:
                raise TypeError("moleculeCharges is for createSystem; the ML atoms' molecules take their MM charges")
            ml_list = sorted(set(int(i) for i in atoms))
            nonbonded = mlmm._nonbonded_force(system)
            if charge is None and nonbonded is None and self._model.usesTotalCharge():
                raise TypeError("pass charge= (e): the System given to addForces has no NonbondedForce to take the ML "
                                "atoms' charge from (openmm-ml's interpolation passes an empty one)")
            force = mlmm._region_force(topology, system, ml_list, self.modelPath, charge, multiplicity)
            if topology.getPeriodicBoxVectors() is not None:
                force.setUsesPeriodicBoundaryConditions(True)
                if force.includesCoulombTerm():
                    if nonbonded is not None and nonbonded.getNonbondedMethod() in mlmm._EWALD_METHODS:
                        mlmm._own_coulomb_with_pme_of(force, nonbonded)
                    else:
                        mlmm._own_coulomb_with_pme(force, cutoff, ewaldErrorTolerance)
        force.setForceGroup(forceGroup)
        system.addForce(force)


class ENNElectrostaticEmbeddingFactory(EmbeddingFactory):
    """Makes the ``"enn-electrostatic"`` embedding."""

    def createEmbedding(self, name, **args):
        return ENNElectrostaticEmbedding()


class ENNElectrostaticEmbedding(Embedding):
    """Electrostatic embedding with the model's predicted charges: openmmenn.createMixedSystem(embedding=
    "electrostatic"). The charges are coupled to the System's NonbondedForce (NoCutoff, reaction field, PME) and
    implicit solvent (GBSAOBCForce, openmm.app's GB models), with the chain-rule forces. Only for the "enn"
    potential; no link atoms (the ML region should be whole molecules)."""

    def createMixedSystem(self, potential, topology, system, atoms, forceGroup, interpolate, returnInfo=False,
                          charge=None, multiplicity=1, **args):
        if not isinstance(potential, ENNPotentialImpl):
            raise ValueError("the 'enn-electrostatic' embedding couples the predicted charges of an openmm-enn model: "
                             "use it with MLPotential('enn', ...)")
        _refuse_unknown("the 'enn-electrostatic' embedding", args)
        # openmm-ml removes the constraints between ML atoms itself (its removeConstraints argument).
        return mlmm.createMixedSystem(topology, system, atoms, model=potential.modelPath, embedding="electrostatic",
                                      total_charge=charge, interpolate=interpolate, remove_constraints=False,
                                      force_group=forceGroup, multiplicity=multiplicity)
