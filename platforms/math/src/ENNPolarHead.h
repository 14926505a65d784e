#ifndef OPENMM_ENN_POLAR_HEAD_H_
#define OPENMM_ENN_POLAR_HEAD_H_

// MACE's PolarMACE head in double precision, as every platform evaluates it (each with its own backbone; OpenCL and
// CUDA download the layer features for it): the spin-resolved multipoles from every layer's features, the Fukui
// constraints, the field-update steps, the local electron energy and the Coulomb energy of the multipoles, with open
// boundaries (graph-longrange's real-space sums) or in a periodic cell (its reciprocal sums), and any MM charges as its
// external sources. Each MACE block has its function here, named after it; the gradient comes from a tape (ENNTape.h).

#include "openmmenn/ENNForce.h"
#include "openmmenn/ENNModel.h"
#include "ENNParticles.h"
#include "openmm/Vec3.h"
#include <functional>
#include <map>
#include <memory>
#include <vector>

namespace OpenMMENN {

/** A platform's way to sum the MM charges' structure factor S(k) = sum_m q_m exp(-i k . x_m) over a cell's k vectors,
 *  and the gradient of a function of it (a mesh); without one the polar head sums it exactly. Model units. */
class ENNStructureFactor {
public:
    virtual ~ENNStructureFactor() = default;
    /** S(k) at each k vector of `box` (k = n . 2 pi inv(box)^T for integer n): real and imaginary parts. */
    virtual void compute(const OpenMM::Vec3* box, const std::vector<OpenMM::Vec3>& positions, const std::vector<double>& charges,
                         const std::vector<OpenMM::Vec3>& k, std::vector<double>& re, std::vector<double>& im) = 0;
    /** gradient[m] = d/dx_m of sum_k (gRe(k) Re S(k) + gIm(k) Im S(k)), after compute with the same arguments. */
    virtual void gradient(const std::vector<double>& gRe, const std::vector<double>& gIm, std::vector<OpenMM::Vec3>& gradient) = 0;
};

/** An environment's charges as the polar head sees them (model units): point charges become Gaussians of the
 *  multipoles' width that polarize the ML region in every update step (openmm-ml's PolarMACE embedding). */
struct PolarEnvironment {
    std::vector<OpenMM::Vec3> positions;
    std::vector<double> charges;
    ENNStructureFactor* structureFactor = nullptr; // in a periodic cell, the platform's; null: the exact sums
};

/** Runs task(i) for i = 0 .. count - 1 on any threads and returns when all are done (a platform's thread pool); the
 *  polar head shares out its per-atom work with it, and its results do not depend on how. */
using ENNParallelFor = std::function<void(int count, const std::function<void(int)>& task)>;

/** A head that reads every layer's output features (PolarMACE's): returns its energy (model units) and, when asked,
 *  dE/d(each layer's output features), [layer][atom * dim + feature] in e3nn's layout, the caller's atom order. */
using LayerFeatureHead = std::function<double(const std::vector<const std::vector<double>*>& layerOutputs,
                                              std::vector<std::vector<double>>* gradients)>;

class ENNPolarHead {
public:
    explicit ENNPolarHead(std::shared_ptr<const ENNModel> model);

    /**
     * The head's energy (model units): the electron energy (where the model adds it) and the Coulomb energy of its
     * multipoles. The network's own energy (readouts, E0) is not included.
     * @param species        element index of each atom
     * @param positions      atom positions (model length unit)
     * @param box            the periodic cell's vectors (model length unit), or null: open boundaries
     * @param environment    the MM charges, or null
     * @param layerOutputs   each layer's output features, [atom][feature]
     * @param totalCharge    the total charge (e)
     * @param multiplicity   the spin multiplicity 2S + 1
     * @param externalField  a uniform external field as the model takes it (mace's external_field: the gradient of the
     *                       external potential, energy / length / e in model units; zero: none)
     * @param layerGradients if not null, receives dE/d(layerOutputs[t]) for every layer
     * @param positionGradient if not null, receives the direct dE/dx of each atom (through the electrostatics)
     * @param environmentGradient if not null (with an environment), receives dE/dx of each MM charge
     * @param multipoles     if not null, receives each atom's multipoles (alpha + beta): charge, then any dipole (y, z, x)
     */
    double compute(const std::vector<int>& species, const std::vector<OpenMM::Vec3>& positions,
                   const std::vector<const std::vector<double>*>& layerOutputs, const OpenMM::Vec3* box,
                   const PolarEnvironment* environment, double totalCharge, int multiplicity, const OpenMM::Vec3& externalField,
                   std::vector<std::vector<double>>* layerGradients, std::vector<OpenMM::Vec3>* positionGradient,
                   std::vector<OpenMM::Vec3>* environmentGradient, std::vector<double>* multipoles) const;
    const ENNModel& getModel() const { return *model; }
    /** Where the head's per-atom work runs: its per-atom networks and reciprocal sums (default: one after another on
     *  the calling thread). */
    void setParallelFor(ENNParallelFor runner) { parallel = std::move(runner); }

private:
    std::shared_ptr<const ENNModel> model;
    ENNParallelFor parallel = [](int count, const std::function<void(int)>& task) {
        for (int i = 0; i < count; i++)
            task(i);
    };
};

/** A kernel's polar head with the MM charges it is coupled to (ENNForce::getMMParticleParameters), in OpenMM's units
 *  outside and the model's inside; what one evaluation produced is kept until the next. */
class ENNPolarEvaluation {
public:
    explicit ENNPolarEvaluation(const ENNForce& force);
    /** updateParametersInContext: the new MM charges and external field; throws if the MM particles changed. */
    void update(const ENNForce& force);
    /** The head at the Context's positions and box (nm; box null: open boundaries) for the ML particles `ml`, to pass
     *  to a network's compute. Throws OpenMMException naming an MM particle with a non-finite position. */
    LayerFeatureHead at(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box, const ENNParticles& ml);
    /** After an evaluation with gradients: the head's direct dE/dx of each ML atom (model units), to add to the network's. */
    const std::vector<OpenMM::Vec3>& mlGradient() const { return gradient; }
    /** After an evaluation with gradients: the forces on the MM charges (kJ/mol/nm) into `forces` (one per System particle). */
    void addEnvironmentForces(std::vector<OpenMM::Vec3>& forces) const;
    /** Each ML atom's charge (e) among the last evaluation's multipoles. */
    std::vector<double> charges() const;
    /** Each ML atom's dipole (e nm; x, y, z) among the last evaluation's multipoles (which hold it as y, z, x in e and
     *  the model's length unit); empty for multipoles of l = 0. */
    std::vector<OpenMM::Vec3> dipoles() const;
    bool coupled() const { return !mmParticles.empty(); }
    /** The platform's structure factor of the MM charges in a periodic cell (the exact sums without one). */
    void setStructureFactor(std::unique_ptr<ENNStructureFactor> sum) { structureFactor = std::move(sum); }
    /** The platform's threads for the head's per-atom work (ENNPolarHead::setParallelFor). */
    void setParallelFor(ENNParallelFor runner) { head.setParallelFor(std::move(runner)); }

private:
    ENNPolarHead head;
    std::vector<int> mmParticles;
    std::vector<double> mmCharges;
    std::vector<OpenMM::Vec3> gradient, environmentGradient;
    std::vector<double> multipoles;
    OpenMM::Vec3 externalField; // as the model takes it (ENNPolarHead::compute)
    std::unique_ptr<ENNStructureFactor> structureFactor;
};

} // namespace OpenMMENN

#endif
