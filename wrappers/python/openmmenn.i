%module(package="openmmenn") enn

%include "std_string.i"
%include "std_vector.i"
namespace std {
%template(vectord) vector<double>;
}

%import(module="openmm") "openmm_declarations.i"

%{
#include "openmmenn/ENNForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/Context.h"
#include "openmm/GBSAOBCForce.h"
#include "openmm/NonbondedForce.h"
#include "openmm/System.h"
%}

%pythoncode %{
import openmm
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

%apply int& OUTPUT { int& particle, int& atomicNumber, int& particle1, int& particle2, int& nx, int& ny, int& nz };
%apply double& OUTPUT { double& charge, double& chargeScale, double& alpha, double& radius, double& scaleFactor,
                        double& soluteDielectric, double& solventDielectric, double& surfaceAreaEnergy };
%newobject OpenMMENN::ENNForce::createFromModelData;
%ignore OpenMMENN::ENNForce::getModel;
%ignore OpenMMENN::ENNForce::getModelPtr;
%ignore OpenMMENN::ENNForce::getModelData;
%ignore OpenMMENN::ENNForce::createFromModelData;

%include "openmmenn/ENNForce.h"
