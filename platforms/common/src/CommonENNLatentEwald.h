#ifndef OPENMM_COMMON_ENN_LATENT_EWALD_H_
#define OPENMM_COMMON_ENN_LATENT_EWALD_H_

// MACELES's truncated periodic sum of its latent charges (ENNLatentEwald.h) on GPUs, through OpenMM's common compute
// framework (kernels/ennLatentEwald.cc): the k set from the host (rebuilt when the box changes), the structure factors
// with a thread per k vector, the potentials, forces and energy terms with a thread per ML atom, the energy summed into
// the context's energy buffer. Arithmetic in `real`, sums in `mixed`. Takes the place of CommonENNElectrostatics for a
// periodic force that evaluates its model as trained (usesTrainedPeriodicSum).

#include "CommonENNDeviceWork.h"
#include "ENNLatentEwald.h"
#include "openmm/common/ComputeArray.h"
#include "openmm/common/ComputeContext.h"
#include "openmm/common/ComputeKernel.h"
#include "openmm/Vec3.h"
#include <vector>

namespace OpenMMENN {

class CommonENNLatentEwald {
public:
    /**
     * @param positions  the network's ML positions (real4, model units)
     * @param charges    the network's predicted charges (real, ML order)
     * @param particles  the System particle of each ML particle
     * @param numAtoms   particles in the System
     */
    CommonENNLatentEwald(OpenMM::ComputeContext& cc, const ENNModel& model, OpenMM::ComputeArray& positions, OpenMM::ComputeArray& charges,
                         const std::vector<int>& particles, int numAtoms, OpenMM::ComputeArray& status, DeviceWork& deviceWork);
    /** Queues the potential, the forces at fixed charges and (if asked) the energy at the current positions and charges. */
    void compute(bool includeEnergy);
    /** phi_i = dE/dq_i of each ML particle (mixed, kJ/mol/e). */
    OpenMM::ComputeArray& getPotential() { return potential; }
    /** Forces at fixed charges on every System particle (real4, kJ/mol/nm; zero but on the ML particles). */
    OpenMM::ComputeArray& getForces() { return forces; }

private:
    OpenMM::ComputeContext& cc;
    const ENNModel& model;
    DeviceWork& deviceWork;
    int numNodes, numK = 0;
    OpenMM::Vec3 setBox[3];
    OpenMM::ComputeArray kvectors, structure, particleOfNode, potential, forces, energyTerms;
    OpenMM::ComputeKernel structureKernel, potentialKernel, energyKernel;
};

} // namespace OpenMMENN

#endif
