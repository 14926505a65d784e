// The C interface of openmm-enn (wrappers/c/include/OpenMMENNCWrapper.h): every function catches what the C++
// API throws and returns a status, with the message kept per thread.

#include "OpenMMENNCWrapper.h"
#include "openmmenn/ENNForce.h"
#include "openmmenn/ENNKernels.h"
#include "openmmenn/ENNModel.h"
#include "openmm/Context.h"
#include "openmm/GBSAOBCForce.h"
#include "openmm/NonbondedForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/System.h"
#include "openmm/VerletIntegrator.h"
#include "openmm/serialization/XmlSerializer.h"
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

using OpenMMENN::ENNForce;

namespace {

thread_local std::string lastError;

/** Runs `body`, turning exceptions into a status and the thread's message. */
template <class Body>
OpenMM_ENN_Status guarded(Body body) {
    try {
        lastError.clear();
        body();
        return OpenMM_ENN_Success;
    } catch (const std::invalid_argument& e) {
        lastError = e.what();
        return OpenMM_ENN_InvalidArgument;
    } catch (const std::exception& e) {
        lastError = e.what();
        return OpenMM_ENN_Error;
    } catch (...) {
        lastError = "openmm-enn: an unknown error";
        return OpenMM_ENN_Error;
    }
}

template <class T>
T* require(T* pointer, const char* name) {
    if (pointer == nullptr)
        throw std::invalid_argument(std::string("openmm-enn C API: ") + name + " is NULL");
    return pointer;
}

ENNForce* cast(OpenMM_ENNForce* force) { return reinterpret_cast<ENNForce*>(require(force, "force")); }
const ENNForce* cast(const OpenMM_ENNForce* force) { return reinterpret_cast<const ENNForce*>(require(force, "force")); }

/** The named platform, with ENNForce's kernels. OpenMM's plugins (from OPENMM_PLUGIN_DIR or OpenMM's default
 *  folder, where openmm-enn installs its own) are loaded the first time they are missing: a C program has
 *  nobody else to load them. */
OpenMM::Platform& platformWithENN(const std::string& name) {
    static std::once_flag loaded;
    auto find = [&]() -> OpenMM::Platform* {
        for (int i = 0; i < OpenMM::Platform::getNumPlatforms(); i++) {
            OpenMM::Platform& p = OpenMM::Platform::getPlatform(i);
            if (p.getName() == name && p.supportsKernels({OpenMMENN::CalcENNForceKernel::Name()}))
                return &p;
        }
        return nullptr;
    };
    if (OpenMM::Platform* p = find())
        return *p;
    std::call_once(loaded, [] { OpenMM::Platform::loadPluginsFromDirectory(OpenMM::Platform::getDefaultPluginsDirectory()); });
    if (OpenMM::Platform* p = find())
        return *p;
    OpenMM::Platform::getPlatformByName(name); // throws for an unknown name
    throw OpenMM::OpenMMException("openmm-enn C API: the " + name + " platform has no ENNForce kernels; install openmm-enn's plugins in " +
                                  "OpenMM's plugin folder, or point OPENMM_PLUGIN_DIR at a folder with them");
}

char* copyString(const std::string& text) {
    char* out = static_cast<char*>(std::malloc(text.size() + 1));
    if (out == nullptr)
        throw std::bad_alloc();
    std::memcpy(out, text.c_str(), text.size() + 1);
    return out;
}

} // namespace

struct OpenMM_ENNEvaluator_struct {
    std::unique_ptr<OpenMM::System> system; // owns the force
    ENNForce* force = nullptr;
    std::unique_ptr<OpenMM::VerletIntegrator> integrator;
    std::unique_ptr<OpenMM::Context> context;
    std::string platformName;
    std::map<std::string, std::string> properties;
    int numAtoms = 0;
    bool periodic = false;
    void createContext() {
        context = std::make_unique<OpenMM::Context>(*system, *integrator, OpenMM::Platform::getPlatformByName(platformName), properties);
    }
    double lengthInNm = 1.0, energyInKJPerMol = 1.0;
};

extern "C" {

const char* OpenMM_ENN_getLastErrorMessage(void) { return lastError.c_str(); }

void OpenMM_ENN_freeString(char* string) { std::free(string); }

OpenMM_ENN_Status OpenMM_ENNForce_create(const char* modelFile, OpenMM_ENNForce** force) {
    return guarded([&] {
        require(force, "force");
        *force = nullptr;
        *force = reinterpret_cast<OpenMM_ENNForce*>(new ENNForce(require(modelFile, "modelFile")));
    });
}

OpenMM_ENN_Status OpenMM_ENNForce_createFromBytes(const char* data, size_t size, OpenMM_ENNForce** force) {
    return guarded([&] {
        require(force, "force");
        *force = nullptr;
        *force = reinterpret_cast<OpenMM_ENNForce*>(ENNForce::createFromModelData(std::string(require(data, "data"), size)));
    });
}

OpenMM_ENN_Status OpenMM_ENNForce_destroy(OpenMM_ENNForce* force) {
    return guarded([&] { delete cast(force); });
}

OpenMM_ENN_Status OpenMM_ENNForce_addParticle(OpenMM_ENNForce* force, int particle, int atomicNumber, int* index) {
    return guarded([&] {
        if (particle < 0)
            throw std::invalid_argument("openmm-enn C API: particle index " + std::to_string(particle) + " is negative");
        const int i = cast(force)->addParticle(particle, atomicNumber);
        if (index != nullptr)
            *index = i;
    });
}

OpenMM_ENN_Status OpenMM_ENNForce_getNumParticles(const OpenMM_ENNForce* force, int* count) {
    return guarded([&] { *require(count, "count") = cast(force)->getNumParticles(); });
}

OpenMM_ENN_Status OpenMM_ENNForce_setTotalCharge(OpenMM_ENNForce* force, double charge) {
    return guarded([&] { cast(force)->setTotalCharge(charge); });
}

OpenMM_ENN_Status OpenMM_ENNForce_getTotalCharge(const OpenMM_ENNForce* force, double* charge) {
    return guarded([&] { *require(charge, "charge") = cast(force)->getTotalCharge(); });
}

OpenMM_ENN_Status OpenMM_ENNForce_setSpinMultiplicity(OpenMM_ENNForce* force, int multiplicity) {
    return guarded([&] { cast(force)->setSpinMultiplicity(multiplicity); });
}

OpenMM_ENN_Status OpenMM_ENNForce_getSpinMultiplicity(const OpenMM_ENNForce* force, int* multiplicity) {
    return guarded([&] { *require(multiplicity, "multiplicity") = cast(force)->getSpinMultiplicity(); });
}

OpenMM_ENN_Status OpenMM_ENNForce_setExternalField(OpenMM_ENNForce* force, double x, double y, double z) {
    return guarded([&] { cast(force)->setExternalField(OpenMM::Vec3(x, y, z)); });
}

OpenMM_ENN_Status OpenMM_ENNForce_getExternalField(const OpenMM_ENNForce* force, double* field) {
    return guarded([&] {
        const OpenMM::Vec3 value = cast(force)->getExternalField();
        double* out = require(field, "field");
        for (int a = 0; a < 3; a++)
            out[a] = value[a];
    });
}

OpenMM_ENN_Status OpenMM_ENNForce_setUsesPeriodicBoundaryConditions(OpenMM_ENNForce* force, int periodic) {
    return guarded([&] { cast(force)->setUsesPeriodicBoundaryConditions(periodic != 0); });
}

OpenMM_ENN_Status OpenMM_ENNForce_usesPeriodicBoundaryConditions(const OpenMM_ENNForce* force, int* periodic) {
    return guarded([&] { *require(periodic, "periodic") = cast(force)->usesPeriodicBoundaryConditions() ? 1 : 0; });
}

OpenMM_ENN_Status OpenMM_ENNForce_setForceGroup(OpenMM_ENNForce* force, int group) {
    return guarded([&] {
        if (group < 0 || group > 31)
            throw std::invalid_argument("openmm-enn C API: force group " + std::to_string(group) + " is not in 0..31");
        cast(force)->setForceGroup(group);
    });
}

OpenMM_ENN_Status OpenMM_ENNForce_getForceGroup(const OpenMM_ENNForce* force, int* group) {
    return guarded([&] { *require(group, "group") = cast(force)->getForceGroup(); });
}

OpenMM_ENN_Status OpenMM_ENNForce_hasChargeHead(const OpenMM_ENNForce* force, int* hasChargeHead) {
    return guarded([&] { *require(hasChargeHead, "hasChargeHead") = cast(force)->hasChargeHead() ? 1 : 0; });
}

OpenMM_ENN_Status OpenMM_ENNForce_coupleToNonbondedForce(OpenMM_ENNForce* force, OpenMM_System* system, OpenMM_NonbondedForce* nonbonded) {
    return guarded([&] {
        cast(force)->coupleToNonbondedForce(*reinterpret_cast<OpenMM::System*>(require(system, "system")),
                                            *reinterpret_cast<OpenMM::NonbondedForce*>(require(nonbonded, "nonbonded")));
    });
}

OpenMM_ENN_Status OpenMM_ENNForce_coupleToGBSAOBCForce(OpenMM_ENNForce* force, OpenMM_System* system, OpenMM_GBSAOBCForce* gbsa) {
    return guarded([&] {
        cast(force)->coupleToGBSAOBCForce(*reinterpret_cast<OpenMM::System*>(require(system, "system")),
                                          *reinterpret_cast<OpenMM::GBSAOBCForce*>(require(gbsa, "gbsa")));
    });
}

/** An output array of `capacity` entries per particle must hold `particles`. */
static void requireCapacity(int capacity, int particles) {
    if (capacity < particles)
        throw std::invalid_argument("openmm-enn C API: capacity " + std::to_string(capacity) + " is less than the " +
                                    std::to_string(particles) + " particles");
}

OpenMM_ENN_Status OpenMM_ENNForce_getCharges(const OpenMM_ENNForce* force, OpenMM_Context* context, double* charges, int capacity) {
    return guarded([&] {
        const ENNForce* f = cast(force);
        require(charges, "charges");
        requireCapacity(capacity, f->getNumParticles());
        const std::vector<double> q = f->getCharges(*reinterpret_cast<OpenMM::Context*>(require(context, "context")));
        std::copy(q.begin(), q.end(), charges);
    });
}

OpenMM_ENN_Status OpenMM_ENNForce_hasPolarHead(const OpenMM_ENNForce* force, int* hasPolarHead) {
    return guarded([&] { *require(hasPolarHead, "hasPolarHead") = cast(force)->hasPolarHead() ? 1 : 0; });
}

OpenMM_ENN_Status OpenMM_ENNForce_getDipoles(const OpenMM_ENNForce* force, OpenMM_Context* context, double* dipoles, int capacity) {
    return guarded([&] {
        const ENNForce* f = cast(force);
        require(dipoles, "dipoles");
        requireCapacity(capacity, f->getNumParticles());
        const std::vector<OpenMM::Vec3> d = f->getDipoles(*reinterpret_cast<OpenMM::Context*>(require(context, "context")));
        for (size_t i = 0; i < d.size(); i++)
            for (int k = 0; k < 3; k++)
                dipoles[3 * i + k] = d[i][k];
    });
}

OpenMM_ENN_Status OpenMM_ENNForce_updateParametersInContext(OpenMM_ENNForce* force, OpenMM_Context* context) {
    return guarded([&] { cast(force)->updateParametersInContext(*reinterpret_cast<OpenMM::Context*>(require(context, "context"))); });
}

OpenMM_ENN_Status OpenMM_ENNForce_serialize(const OpenMM_ENNForce* force, char** xml) {
    return guarded([&] {
        require(xml, "xml");
        *xml = nullptr;
        std::stringstream out;
        OpenMM::XmlSerializer::serialize<OpenMM::Force>(cast(force), "Force", out);
        *xml = copyString(out.str());
    });
}

OpenMM_ENN_Status OpenMM_ENNForce_deserialize(const char* xml, OpenMM_ENNForce** force) {
    return guarded([&] {
        require(force, "force");
        *force = nullptr;
        std::stringstream in(require(xml, "xml"));
        std::unique_ptr<OpenMM::Force> object(OpenMM::XmlSerializer::deserialize<OpenMM::Force>(in));
        if (dynamic_cast<ENNForce*>(object.get()) == nullptr)
            throw OpenMM::OpenMMException("openmm-enn C API: the XML holds a Force that is not an ENNForce");
        *force = reinterpret_cast<OpenMM_ENNForce*>(static_cast<ENNForce*>(object.release()));
    });
}

OpenMM_ENN_Status OpenMM_ENNEvaluator_create(const char* modelFile, int numAtoms, const int* atomicNumbers, double totalCharge, int periodic,
                                             const char* platform, int numProperties, const char* const* propertyNames,
                                             const char* const* propertyValues, OpenMM_ENN_Units units, OpenMM_ENNEvaluator** evaluator) {
    return guarded([&] {
        require(evaluator, "evaluator");
        *evaluator = nullptr;
        require(modelFile, "modelFile");
        if (numAtoms <= 0)
            throw std::invalid_argument("openmm-enn C API: numAtoms must be positive, not " + std::to_string(numAtoms));
        require(atomicNumbers, "atomicNumbers");
        if (numProperties < 0)
            throw std::invalid_argument("openmm-enn C API: numProperties must not be negative");
        if (numProperties > 0) {
            require(propertyNames, "propertyNames");
            require(propertyValues, "propertyValues");
        }
        if (units != OpenMM_ENN_OpenMMUnits && units != OpenMM_ENN_ModelUnits)
            throw std::invalid_argument("openmm-enn C API: unknown units " + std::to_string(int(units)));
        auto e = std::make_unique<OpenMM_ENNEvaluator_struct>();
        e->system = std::make_unique<OpenMM::System>();
        auto force = std::make_unique<ENNForce>(modelFile);
        for (int i = 0; i < numAtoms; i++)
            force->addParticle(e->system->addParticle(1.0), atomicNumbers[i]);
        if (totalCharge != 0 || !force->hasLatentCharges()) // (latent charges take none)
            force->setTotalCharge(totalCharge);
        force->setUsesPeriodicBoundaryConditions(periodic != 0);
        // The model's own Coulomb term with its periodic images: the periodic sum it was trained with where it declares
        // one (MACELES), else PME.
        if (periodic != 0 && force->includesCoulombTerm() && !force->hasTrainedPeriodicSum())
            force->setElectrostaticsMethod(ENNForce::PME);
        if (units == OpenMM_ENN_ModelUnits) {
            e->lengthInNm = force->getModel().lengthToNm;
            e->energyInKJPerMol = force->getModel().energyToKJPerMol;
        }
        e->force = force.get();
        e->system->addForce(force.release());
        e->numAtoms = numAtoms;
        e->periodic = periodic != 0;
        for (int i = 0; i < numProperties; i++)
            e->properties[require(propertyNames[i], "a property name")] = require(propertyValues[i], "a property value");
        e->platformName = platformWithENN(platform == nullptr ? "CPU" : platform).getName();
        e->integrator = std::make_unique<OpenMM::VerletIntegrator>(0.001);
        if (!e->periodic)
            e->createContext(); // a periodic one waits for its first box, from which PME chooses its grid
        *evaluator = e.release();
    });
}

OpenMM_ENN_Status OpenMM_ENNEvaluator_destroy(OpenMM_ENNEvaluator* evaluator) {
    return guarded([&] { delete require(evaluator, "evaluator"); });
}

OpenMM_ENN_Status OpenMM_ENNEvaluator_compute(OpenMM_ENNEvaluator* e, const double* positions, const double* box, double* energy,
                                              double* forces, double* charges) {
    return guarded([&] {
        require(e, "evaluator");
        require(positions, "positions");
        require(energy, "energy");
        const double L = e->lengthInNm;
        if (e->periodic) {
            require(box, "box (the evaluator is periodic)");
            OpenMM::Vec3 a(box[0] * L, box[1] * L, box[2] * L), b(box[3] * L, box[4] * L, box[5] * L), c(box[6] * L, box[7] * L, box[8] * L);
            if (e->context == nullptr) {
                e->system->setDefaultPeriodicBoxVectors(a, b, c);
                e->createContext();
            }
            e->context->setPeriodicBoxVectors(a, b, c);
        } else if (box != nullptr)
            throw std::invalid_argument("openmm-enn C API: a box was given to an evaluator that is not periodic");
        std::vector<OpenMM::Vec3> x(e->numAtoms);
        for (int i = 0; i < e->numAtoms; i++)
            x[i] = OpenMM::Vec3(positions[3 * i], positions[3 * i + 1], positions[3 * i + 2]) * L;
        e->context->setPositions(x);
        const OpenMM::State state = e->context->getState(OpenMM::State::Energy | (forces ? OpenMM::State::Forces : 0));
        const double F = 1.0 / e->energyInKJPerMol;
        *energy = state.getPotentialEnergy() * F;
        if (forces != nullptr) {
            const std::vector<OpenMM::Vec3>& f = state.getForces();
            for (int i = 0; i < e->numAtoms; i++)
                for (int k = 0; k < 3; k++)
                    forces[3 * i + k] = f[i][k] * F * L;
        }
        if (charges != nullptr) {
            const std::vector<double> q = e->force->getCharges(*e->context);
            std::copy(q.begin(), q.end(), charges);
        }
    });
}

OpenMM_ENN_Status OpenMM_ENNEvaluator_getUnits(const OpenMM_ENNEvaluator* e, double* lengthInNm, double* energyInKJPerMol) {
    return guarded([&] {
        require(e, "evaluator");
        *require(lengthInNm, "lengthInNm") = e->lengthInNm;
        *require(energyInKJPerMol, "energyInKJPerMol") = e->energyInKJPerMol;
    });
}

OpenMM_ENN_Status OpenMM_ENNEvaluator_getPlatformName(const OpenMM_ENNEvaluator* e, char** name) {
    return guarded([&] {
        require(e, "evaluator");
        require(name, "name");
        *name = nullptr;
        *name = copyString(e->platformName);
    });
}

} // extern "C"
