#ifndef OPENMM_COMMON_ENN_ELECTROSTATICS_H_
#define OPENMM_COMMON_ENN_ELECTROSTATICS_H_

// The electrostatics of the predicted charges on GPUs, through OpenMM's common compute framework
// (kernels in kernels/ennElectrostatics.cc): the device counterpart of ReferenceENNElectrostatics,
// reading the same ENNCouplingParameters. Everything stays on the device: the network's charge array goes in,
// the potential phi_i = dE/dq_i and the forces at fixed charges come out for the network's backward
// pass, and the energy goes into the context's energy buffer. Arithmetic in `real`, sums in `mixed`.
// Coulomb pairs: a work group per ML site (so that a ligand among many MM atoms fills the device) and a
// thread per MM site; with a cutoff (reaction field, PME) the partners within it come from cell lists of
// the sites, rebuilt every step, so the cost follows the pairs within the cutoff; without one every pair
// is summed. GB sums all pairs of GB particles, or with a GB cutoff (GBSAOBCForce's and CustomGBForce's cutoff methods)
// those from a cell list of the GB particles.
// PME's transforms: OpenMM's FFT where the version has one (8.3+) and the grid sizes are ones it
// supports, otherwise this plugin's DFT kernels (O(K) work per output point along each axis).

#include "CommonENNCells.h"
#include "CommonENNDeviceWork.h"
#include "ENNCouplingParameters.h"
#include "openmm/common/ComputeArray.h"
#include "openmm/common/ComputeContext.h"
#include "openmm/common/ComputeKernel.h"
// OpenMM 8.3 and later give every platform an FFT (ComputeContext::createFFT); older versions
// (Debian's 7.7) have none in the common API, and PME uses its own DFT kernels.
#if defined(__has_include)
#if __has_include("openmm/common/FFT3D.h")
#include "openmm/common/FFT3D.h"
#define ENN_HAVE_COMMON_FFT 1
#endif
#endif

namespace OpenMMENN {

class CommonENNElectrostatics {
public:
    /**
     * @param parameters  the force's coupling, which must be active
     * @param numAtoms    particles in the System
     * @param mlCharges   the network's predicted charges (real, in ML order)
     * @param totalCharge the total the predicted charges are constrained to (for the PME background)
     * @param status      the network's status flags (CommonENNNetwork::getStatus), where a non-finite energy is reported
     * @param deviceWork  where what each step queues is counted
     */
    CommonENNElectrostatics(OpenMM::ComputeContext& cc, ENNCouplingParameters parameters, int numAtoms, OpenMM::ComputeArray& mlCharges,
                            double totalCharge, OpenMM::ComputeArray& status, DeviceWork& deviceWork);
    /** Throws OpenMMException if the box is too small for the cutoff of a periodic method. */
    void checkBox() const;
    /** Computes the potential and forces at the current positions and charges; adds the energy to the
     *  energy buffer if asked. */
    void compute(bool includeEnergy);
    /** Update what updateParametersInContext may change (MM and GB charges, the total ML charge). */
    void updateCharges(const ENNForce& force, double totalCharge);
    /** phi_i = dE/dq_i of each ML particle (mixed, kJ/mol/e) once multiplied by getPotentialScale(). */
    OpenMM::ComputeArray& getPotential() { return potential; }
    /** The factor the potential needs (ENNCouplingParameters::mlChargeScale: the charges went in scaled by it). */
    double getPotentialScale() const { return coupling.mlChargeScale; }
    /** Forces at fixed charges on every System particle (real4, kJ/mol/nm). */
    OpenMM::ComputeArray& getForces() { return forces; }

private:
    void uploadCharges();
    /** PME's 3D transform of gridA into gridB (gridA is overwritten). */
    void transform(bool forward);
    OpenMM::ComputeContext& cc;
    DeviceWork& deviceWork;
    ENNCouplingParameters coupling;
    double totalCharge;
    int numSites, numGB = 0, gridSize = 0;
    OpenMM::ComputeArray siteOfAtom, gbOfAtom, siteAtom, mmCharges, gbML, gbAtom, gbCharges, gbParams, gbTanhParams, gbNeck;
    OpenMM::ComputeArray exceptionStart, exceptionPartner, exceptionScale;
    OpenMM::ComputeArray sites, gbPos, born, chain, dEdSum, gbForce, gbPotential, potential, forces, energyTerms;
    OpenMM::ComputeArray gridML, gridMM, gridA, gridB, twiddles[3], moduli;
    // Cell lists: siteLists[0] of every site, [1] of the ML sites (for the Coulomb pairs within the cutoff); gbList of
    // the GB particles (for GB with a cutoff). numBuckets (the program's NUM_BUCKETS) is 0 when there are none.
    OpenMM::ComputeArray siteCell, gbCell;
    DeviceCellList siteLists[2], gbList;
    int numBuckets = 0;
    OpenMM::ComputeKernel gatherKernel, coulombMLKernel, coulombMMKernel, spreadKernel, finishSpreadKernel, convolveKernel, interpolateKernel;
    OpenMM::ComputeKernel dftKernels[2][3], bornKernel, gbPairsKernel, gbForcesKernel, energyKernel, backgroundKernel;
#ifdef ENN_HAVE_COMMON_FFT
    OpenMM::FFT3D fft; // OpenMM's FFT when the grid sizes suit it, else null
#endif
};

} // namespace OpenMMENN

#endif
