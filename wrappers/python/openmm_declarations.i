// Debian ships no OpenMM SWIG interface files. These declarations tell SWIG that Force and Context
// live in OpenMM's own Python module (openmm.openmm), so ENNForce derives from openmm.Force and
// objects pass between the two modules through SWIG's shared type table.
%module(package="openmm") openmm

namespace OpenMM {
class Force {
public:
    virtual ~Force();
    int getForceGroup() const;
    void setForceGroup(int group);
    virtual bool usesPeriodicBoundaryConditions() const;
};
class Context;
class System;
class NonbondedForce : public Force {};
class GBSAOBCForce : public Force {};
class CustomGBForce : public Force {};
}
