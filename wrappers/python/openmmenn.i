%module(package="openmmenn") enn

%include "std_string.i"
%include "std_vector.i"
namespace std {
%template(vectord) vector<double>;
%template(vectori) vector<int>;
}

%import(module="openmm") "openmm_declarations.i"

%{
#include "openmmenn/ENNForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/Context.h"
#include "openmm/CustomGBForce.h"
#include "openmm/GBSAOBCForce.h"
#include "openmm/NonbondedForce.h"
#include "openmm/System.h"
%}

%pythoncode %{
import openmm


def _value_in(value, unit):
    """A number in OpenMM's units: a Quantity converted to unit(openmm.unit), a plain number as it is."""
    if hasattr(value, "value_in_unit"):
        import openmm.unit
        return value.value_in_unit(unit(openmm.unit))
    return value
%}

// C++ exceptions become openmm.OpenMMException where OpenMM's Python defines it, else Exception.
%exception {
    try {
        $action
    } catch (std::exception& e) {
        PyObject* module = PyImport_ImportModule("openmm");
        PyObject* type = module ? PyObject_GetAttrString(module, "OpenMMException") : NULL;
        if (type == NULL) {
            PyErr_Clear();
            type = PyExc_Exception;
            Py_INCREF(type);
        }
        PyErr_SetString(type, e.what());
        Py_DECREF(type);
        Py_XDECREF(module);
        SWIG_fail;
    }
}

%apply int& OUTPUT { int& particle, int& atomicNumber, int& particle1, int& particle2, int& nx, int& ny, int& nz, int& neckIndex };
%apply double& OUTPUT { double& charge, double& chargeScale, double& alpha, double& radius, double& scaleFactor,
                        double& soluteDielectric, double& solventDielectric, double& surfaceAreaEnergy, double& beta, double& gamma };
%ignore OpenMMENN::ENNForce::getGBNeckTables;
%ignore OpenMMENN::ENNForce::getChargeGroupParameters;
%ignore OpenMMENN::ENNForce::getDipoles;
%ignore OpenMMENN::ENNForce::setExternalField;
%ignore OpenMMENN::ENNForce::getExternalField;

// Quantities are accepted wherever OpenMM accepts them; plain numbers are in OpenMM's units (nm, e, kJ/mol).
%pythonprepend OpenMMENN::ENNForce::ENNForce %{
    modelFile = str(modelFile)  # a pathlib.Path too
%}
%pythonprepend OpenMMENN::ENNForce::setTotalCharge %{
    charge = _value_in(charge, lambda u: u.elementary_charge)
%}
%pythonprepend OpenMMENN::ENNForce::setCutoffDistance %{
    distance = _value_in(distance, lambda u: u.nanometer)
%}
%pythonprepend OpenMMENN::ENNForce::setPMEParameters %{
    alpha = _value_in(alpha, lambda u: u.nanometer**-1)
%}
%pythonprepend OpenMMENN::ENNForce::setImplicitSolventKappa %{
    kappa = _value_in(kappa, lambda u: u.nanometer**-1)
%}
%pythonprepend OpenMMENN::ENNForce::setImplicitSolventCutoff %{
    distance = _value_in(distance, lambda u: u.nanometer)
%}
%pythonprepend OpenMMENN::ENNForce::addChargeGroup %{
    particles, charge = [int(p) for p in particles], _value_in(charge, lambda u: u.elementary_charge)
%}
%pythonprepend OpenMMENN::ENNForce::setChargeGroupParameters %{
    particles, charge = [int(p) for p in particles], _value_in(charge, lambda u: u.elementary_charge)
%}
%pythonprepend OpenMMENN::ENNForce::addMMParticle %{
    charge = _value_in(charge, lambda u: u.elementary_charge)
%}
%pythonprepend OpenMMENN::ENNForce::setMMParticleParameters %{
    charge = _value_in(charge, lambda u: u.elementary_charge)
%}
%pythonprepend OpenMMENN::ENNForce::addGBParticle %{
    charge, radius = _value_in(charge, lambda u: u.elementary_charge), _value_in(radius, lambda u: u.nanometer)
%}
%pythonprepend OpenMMENN::ENNForce::setGBParticleParameters %{
    charge, radius = _value_in(charge, lambda u: u.elementary_charge), _value_in(radius, lambda u: u.nanometer)
%}
%pythonprepend OpenMMENN::ENNForce::setGBSAOBCParameters %{
    surfaceAreaEnergy = _value_in(surfaceAreaEnergy, lambda u: u.kilojoule_per_mole / u.nanometer**2)
%}

// getCharges(context, asNumpy=False): a list of floats (e), or a numpy array, as State.getPositions(asNumpy=True).
%rename(_getCharges) OpenMMENN::ENNForce::getCharges;
%extend OpenMMENN::ENNForce {
%pythoncode %{
    def getCharges(self, context, asNumpy=False):
        """The predicted charges (elementary charges) of the ML particles, in the order they were added, at the
        Context's current positions: a list of floats, or a numpy array if asNumpy is True. Needs a charge head."""
        charges = self._getCharges(context)
        if asNumpy:
            import numpy
            return numpy.array(charges)
        return list(charges)

    def getDipoles(self, context, asNumpy=False):
        """A PolarMACE model's atomic dipoles (e nm; x, y, z) of the ML particles at the Context's current positions: a
        list of Vec3, or an (N, 3) numpy array if asNumpy is True."""
        flat = self._dipolesFlat(context)
        import numpy
        dipoles = numpy.array(flat).reshape(-1, 3)
        if asNumpy:
            return dipoles
        from openmm import Vec3
        return [Vec3(*row) for row in dipoles]

    def setExternalField(self, field):
        """A uniform external electric field E on a PolarMACE model's ML region (the force on a charge q is qE): three
        numbers or a Vec3 in kJ/mol/nm/e, or a Quantity of such (1 V/nm = 96.485 kJ/mol/nm/e). The multipoles respond
        to it in every update step and the energy gains -E . dipole; it does not act on MM atoms. Needs a model file
        converted with the field's projection; changeable in a Context with updateParametersInContext."""
        if hasattr(field, "value_in_unit"):
            import openmm.unit as u
            field = field.value_in_unit(u.kilojoule_per_mole / u.nanometer / u.elementary_charge)
        x, y, z = (float(v) for v in field)
        self._setExternalField(x, y, z)

    def getExternalField(self):
        """The external electric field on the ML region: a Vec3 in kJ/mol/nm/e."""
        from openmm import Vec3
        return Vec3(*self._externalField())

    def getChargeGroupParameters(self, index):
        """The particles (indices within this force) and charge (e) of charge group `index`, as [particles, charge]."""
        return [list(self._chargeGroupParticles(index)), self._chargeGroupCharge(index)]

    @staticmethod
    def cast(force):
        """The ENNForce behind a Force, e.g. system.getForce(i) after XmlSerializer.deserialize, where OpenMM's
        Python returns a plain Force. Raises OpenMMException if it is not an ENNForce. The result is the same C++
        object as `force` and keeps `force` alive (so ENNForce.cast(XmlSerializer.clone(f)) is safe); `force`, not the
        result, is the one that can be added to a System."""
        result = _enn._castToENNForce(force)
        result._castFrom = force  # (the Python object that owns the C++ one, if any: it must outlive the result)
        return result
%}
}
%extend OpenMMENN::ENNForce {
    std::vector<int> _chargeGroupParticles(int index) const {
        std::vector<int> members;
        double charge;
        $self->getChargeGroupParameters(index, members, charge);
        return members;
    }
    void _setExternalField(double x, double y, double z) {
        $self->setExternalField(OpenMM::Vec3(x, y, z));
    }
    std::vector<double> _externalField() const {
        const OpenMM::Vec3 field = $self->getExternalField();
        return {field[0], field[1], field[2]};
    }
    std::vector<double> _dipolesFlat(OpenMM::Context& context) const {
        std::vector<double> flat;
        for (const OpenMM::Vec3& d : $self->getDipoles(context))
            flat.insert(flat.end(), {d[0], d[1], d[2]});
        return flat;
    }
    double _chargeGroupCharge(int index) const {
        std::vector<int> members;
        double charge;
        $self->getChargeGroupParameters(index, members, charge);
        return charge;
    }
}
%inline %{
OpenMMENN::ENNForce* _castToENNForce(OpenMM::Force* force) {
    OpenMMENN::ENNForce* enn = dynamic_cast<OpenMMENN::ENNForce*>(force);
    if (enn == nullptr)
        throw OpenMM::OpenMMException("this Force is not an ENNForce");
    return enn;
}
%}
%newobject OpenMMENN::ENNForce::createFromModelData;
%ignore OpenMMENN::ENNForce::getModel;
%ignore OpenMMENN::ENNForce::getModelPtr;
%ignore OpenMMENN::ENNForce::getModelData;
%ignore OpenMMENN::ENNForce::createFromModelData;

%include "openmmenn/ENNForce.h"
