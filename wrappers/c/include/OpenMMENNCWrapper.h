#ifndef OPENMM_ENN_CWRAPPER_H_
#define OPENMM_ENN_CWRAPPER_H_

/*
 * openmm-enn from C (C99), and from any language with a C foreign-function interface.
 *
 * Two parts, in libOpenMMENNC:
 *   OpenMM_ENNForce_*      the ENNForce of an OpenMM System, named and used as OpenMM's own C wrapper names
 *                          its classes. An OpenMM_ENNForce* is the address of the C++ OpenMMENN::ENNForce, so
 *                          it can be cast to OpenMM_Force* and added with OpenMM_System_addForce where OpenMM's
 *                          C wrapper exists (conda-forge's OpenMM has it; Debian's does not).
 *   OpenMM_ENNEvaluator_*  a standalone evaluator for programs that are not OpenMM programs: load a model,
 *                          give atomic numbers and positions, get energy, forces and charges.
 *
 * Errors: every function returns OpenMM_ENN_Success (0) or an error code; OpenMM_ENN_getLastErrorMessage()
 * then returns the message (an OpenMMException's text, or what was wrong with an argument) for the calling
 * thread. No C++ exception crosses this interface.
 *
 * Units: OpenMM's (nm, kJ/mol, kJ/mol/nm, elementary charges), unless an evaluator is created with
 * OpenMM_ENN_ModelUnits: then the units the model file declares (OpenMM_ENNEvaluator_getUnits says which).
 *
 * Ownership: an object made by a _create function belongs to the caller, who releases it with the matching
 * _destroy, except an OpenMM_ENNForce added to a System, which then belongs to the System (as in OpenMM).
 * Strings returned through a char** are allocated here and released with OpenMM_ENN_freeString. Arrays are
 * the caller's; their lengths are stated per function.
 */

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* OpenMM's C wrapper declares these opaque types the same way; either header may come first. */
#ifndef OPENMM_CWRAPPER_H_
typedef struct OpenMM_System_struct OpenMM_System;
typedef struct OpenMM_Context_struct OpenMM_Context;
typedef struct OpenMM_Force_struct OpenMM_Force;
typedef struct OpenMM_NonbondedForce_struct OpenMM_NonbondedForce;
typedef struct OpenMM_GBSAOBCForce_struct OpenMM_GBSAOBCForce;
#endif

typedef struct OpenMM_ENNForce_struct OpenMM_ENNForce;
typedef struct OpenMM_ENNEvaluator_struct OpenMM_ENNEvaluator;

typedef enum {
    OpenMM_ENN_Success = 0,
    OpenMM_ENN_InvalidArgument = 1, /* a null pointer, a negative count, an index out of range */
    OpenMM_ENN_Error = 2            /* an OpenMMException: a file that is not a model, an unknown element, ... */
} OpenMM_ENN_Status;

typedef enum { OpenMM_ENN_OpenMMUnits = 0, OpenMM_ENN_ModelUnits = 1 } OpenMM_ENN_Units;

/** The message of the last error on this thread ("" if none). Valid until the next call on this thread. */
const char* OpenMM_ENN_getLastErrorMessage(void);
/** Releases a string returned by this library (NULL is ignored). */
void OpenMM_ENN_freeString(char* string);

/* ---- ENNForce ------------------------------------------------------------------------------------ */

/** Loads a model file (docs/model-format.md). *force receives a new force; release it with _destroy unless
 *  it is added to a System. */
OpenMM_ENN_Status OpenMM_ENNForce_create(const char* modelFile, OpenMM_ENNForce** force);
/** The same from the bytes of a model file (size bytes at data). */
OpenMM_ENN_Status OpenMM_ENNForce_createFromBytes(const char* data, size_t size, OpenMM_ENNForce** force);
/** Deletes a force that no System owns. */
OpenMM_ENN_Status OpenMM_ENNForce_destroy(OpenMM_ENNForce* force);
/** Adds System particle `particle` (element atomicNumber) to the ML region; *index (may be NULL) receives its
 *  index within the force. */
OpenMM_ENN_Status OpenMM_ENNForce_addParticle(OpenMM_ENNForce* force, int particle, int atomicNumber, int* index);
OpenMM_ENN_Status OpenMM_ENNForce_getNumParticles(const OpenMM_ENNForce* force, int* count);
/** The charge (e) the predicted charges sum to. */
OpenMM_ENN_Status OpenMM_ENNForce_setTotalCharge(OpenMM_ENNForce* force, double charge);
OpenMM_ENN_Status OpenMM_ENNForce_getTotalCharge(const OpenMM_ENNForce* force, double* charge);
/** The spin multiplicity 2S + 1 that a model with a spin input reads (ENNForce::setSpinMultiplicity; at least 1). */
OpenMM_ENN_Status OpenMM_ENNForce_setSpinMultiplicity(OpenMM_ENNForce* force, int multiplicity);
OpenMM_ENN_Status OpenMM_ENNForce_getSpinMultiplicity(const OpenMM_ENNForce* force, int* multiplicity);
/** A uniform external electric field (kJ/mol/nm/e) on a PolarMACE model's ML region (ENNForce::setExternalField). */
OpenMM_ENN_Status OpenMM_ENNForce_setExternalField(OpenMM_ENNForce* force, double x, double y, double z);
/** The external field's x, y, z (kJ/mol/nm/e) into field[0..2]. */
OpenMM_ENN_Status OpenMM_ENNForce_getExternalField(const OpenMM_ENNForce* force, double* field);
/** Whether the ML region is periodic (0 or 1). */
OpenMM_ENN_Status OpenMM_ENNForce_setUsesPeriodicBoundaryConditions(OpenMM_ENNForce* force, int periodic);
OpenMM_ENN_Status OpenMM_ENNForce_usesPeriodicBoundaryConditions(const OpenMM_ENNForce* force, int* periodic);
/** The force group (0-31). */
OpenMM_ENN_Status OpenMM_ENNForce_setForceGroup(OpenMM_ENNForce* force, int group);
OpenMM_ENN_Status OpenMM_ENNForce_getForceGroup(const OpenMM_ENNForce* force, int* group);
/** Whether the model predicts charges (0 or 1). */
OpenMM_ENN_Status OpenMM_ENNForce_hasChargeHead(const OpenMM_ENNForce* force, int* hasChargeHead);
/** ENNForce::coupleToNonbondedForce: the ML atoms' electrostatics move from `nonbonded` (in `system`) to the force. */
OpenMM_ENN_Status OpenMM_ENNForce_coupleToNonbondedForce(OpenMM_ENNForce* force, OpenMM_System* system, OpenMM_NonbondedForce* nonbonded);
/** ENNForce::coupleToGBSAOBCForce: the force takes over `gbsa`, which is removed from `system` and deleted. */
OpenMM_ENN_Status OpenMM_ENNForce_coupleToGBSAOBCForce(OpenMM_ENNForce* force, OpenMM_System* system, OpenMM_GBSAOBCForce* gbsa);
/** The predicted charges (e) in `context` of a force that is in its System: charges[0 .. capacity) receives
 *  them, in the order of the ML particles; capacity must be at least the number of particles. */
OpenMM_ENN_Status OpenMM_ENNForce_getCharges(const OpenMM_ENNForce* force, OpenMM_Context* context, double* charges, int capacity);
/** Whether the model is a PolarMACE (0 or 1): charges and dipoles that respond to the field (docs/polar.md). */
OpenMM_ENN_Status OpenMM_ENNForce_hasPolarHead(const OpenMM_ENNForce* force, int* hasPolarHead);
/** A PolarMACE model's atomic dipoles (e nm) in `context`: dipoles[3 i + k] (k = x, y, z) for ML particle i;
 *  capacity, in particles, must be at least the number of particles. Error for a model without dipoles. */
OpenMM_ENN_Status OpenMM_ENNForce_getDipoles(const OpenMM_ENNForce* force, OpenMM_Context* context, double* dipoles, int capacity);
/** Copies the total charge and the MM/GB charges into a Context. */
OpenMM_ENN_Status OpenMM_ENNForce_updateParametersInContext(OpenMM_ENNForce* force, OpenMM_Context* context);
/** The force as XmlSerializer writes it (the model embedded); release *xml with OpenMM_ENN_freeString. */
OpenMM_ENN_Status OpenMM_ENNForce_serialize(const OpenMM_ENNForce* force, char** xml);
/** A new force from such XML; release it with _destroy unless it is added to a System. */
OpenMM_ENN_Status OpenMM_ENNForce_deserialize(const char* xml, OpenMM_ENNForce** force);

/* ---- The standalone evaluator ---------------------------------------------------------------------- */

/**
 * An evaluator of `modelFile` for numAtoms atoms of the given atomic numbers (copied), whose predicted charges
 * sum to totalCharge (e), periodic or not (0 or 1), on the named OpenMM platform ("Reference", "CPU", "OpenCL",
 * "CUDA"; NULL: CPU) with numProperties platform properties (names and values, e.g. "Threads" "2"; both
 * arrays may be NULL when numProperties is 0). units says what compute takes and returns. If the platform is not
 * registered yet, OpenMM's plugins are loaded first from OPENMM_PLUGIN_DIR (or OpenMM's default plugin folder),
 * where openmm-enn's platform plugins are installed too.
 */
OpenMM_ENN_Status OpenMM_ENNEvaluator_create(const char* modelFile, int numAtoms, const int* atomicNumbers, double totalCharge,
                                             int periodic, const char* platform, int numProperties, const char* const* propertyNames,
                                             const char* const* propertyValues, OpenMM_ENN_Units units, OpenMM_ENNEvaluator** evaluator);
OpenMM_ENN_Status OpenMM_ENNEvaluator_destroy(OpenMM_ENNEvaluator* evaluator);
/**
 * Evaluates at positions[3 numAtoms] (x, y, z of each atom) and, if periodic, the box box[9] (three vectors a, b,
 * c, in OpenMM's reduced form: a = (ax, 0, 0), b = (bx, by, 0), c = (cx, cy, cz) with ax >= 2|bx|, ...; NULL if not
 * periodic). Writes *energy, and forces[3 numAtoms] and charges[numAtoms] where those pointers are not NULL
 * (charges needs a model with a charge head).
 */
OpenMM_ENN_Status OpenMM_ENNEvaluator_compute(OpenMM_ENNEvaluator* evaluator, const double* positions, const double* box, double* energy,
                                              double* forces, double* charges);
/** The units of an evaluator's lengths and energies, as factors: 1 length unit = *lengthInNm nm, 1 energy unit
 *  = *energyInKJPerMol kJ/mol (both 1 for OpenMM_ENN_OpenMMUnits). Forces are energy/length, charges e. */
OpenMM_ENN_Status OpenMM_ENNEvaluator_getUnits(const OpenMM_ENNEvaluator* evaluator, double* lengthInNm, double* energyInKJPerMol);
/** The name of the platform the evaluator runs on; release *name with OpenMM_ENN_freeString. */
OpenMM_ENN_Status OpenMM_ENNEvaluator_getPlatformName(const OpenMM_ENNEvaluator* evaluator, char** name);

#ifdef __cplusplus
}
#endif

#endif
