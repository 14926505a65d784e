#ifndef OPENMM_CPU_ENN_ELECTROSTATICS_H_
#define OPENMM_CPU_ENN_ELECTROSTATICS_H_

// Electrostatics of the predicted charges on the CPU platform, in double precision (ENNCouplingParameters' pair
// functions, the physics of the Reference platform), on the platform's thread pool:
// - real space over a cell-list pair list within the cutoff (every ML-site pair without one);
// - PME in one pass: ML charges spread into the real part of one complex grid and MM charges into its
//   imaginary part, so one forward and one backward FFT give the ML and MM potentials apart, and the
//   energy of everything minus the MM-MM part (the NonbondedForce's) needs no second sum;
// - spline moduli and the influence function kept until the box changes; no allocation per step once
//   sizes settle.
// Work is cut into pieces that do not depend on the number of threads, each writing its own outputs
// and summed in a fixed order, so results are bitwise the same for any thread count.
// - generalized Born over all pairs (O(N_GB^2), as on Reference), or with a GB cutoff over a cell list's pairs, with
//   every pass split by particle: each particle sums its own pairs (each pair is evaluated from both ends), so no two
//   pieces write the same output.

#include "CpuENNNeighbors.h"
#include "ENNCouplingParameters.h"
#include "openmm/internal/ThreadPool.h"
#include <fftw3.h>
#include <complex>
#include <vector>

namespace OpenMMENN {

class CpuENNElectrostatics {
public:
    CpuENNElectrostatics(const OpenMM::System& system, const ENNForce& force);
    ~CpuENNElectrostatics();
    CpuENNElectrostatics(const CpuENNElectrostatics&) = delete;
    CpuENNElectrostatics& operator=(const CpuENNElectrostatics&) = delete;
    bool active() const { return c.active(); }
    void updateCharges(const ENNForce& force) { c.updateCharges(force); }

    /** How real-space pairs are found: every ML-site pair tested, or a cell list; Automatic picks the cheaper
     *  by an estimate of the candidates (tests pick each). */
    enum class PairSearch { Automatic, AllPairs, CellList };
    void setPairSearch(PairSearch search) { pairSearch = search; }

    /** As ReferenceENNElectrostatics::compute, on `pool`. */
    double compute(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box, const std::vector<double>& mlCharges,
                   std::vector<OpenMM::Vec3>& forces, std::vector<double>& potential, OpenMM::ThreadPool& pool);

private:
    /** Real-space pairs, self terms and (with PME) the reciprocal sum, over sites; adds to siteForce and phi (ML sites). */
    double coulomb(const OpenMM::Vec3* box, OpenMM::ThreadPool& pool);
    /** PME's reciprocal energy of all sites minus that of the MM sites alone; adds forces and ML potentials. */
    double reciprocal(const OpenMM::Vec3* box, OpenMM::ThreadPool& pool);
    /** Generalized Born and ACE as ReferenceENNElectrostatics::generalizedBorn, on `pool`. */
    double generalizedBorn(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box, const std::vector<double>& mlCharges,
                           std::vector<OpenMM::Vec3>& forces, std::vector<double>& potential, OpenMM::ThreadPool& pool);
    /** g(m) = k_e / (pi V) ewaldKernel(m) / B(m) on the grid (0 at m = 0), recomputed when the box changes. */
    void updateInfluence(const OpenMM::Vec3* box, OpenMM::ThreadPool& pool);

    /** Whether the cell list costs less than testing every ML-site pair this step. */
    bool cellListPays(const OpenMM::Vec3* box) const;

    ENNCouplingParameters c;
    PairSearch pairSearch = PairSearch::Automatic;
    ENNCouplingParameters::ExceptionLists exceptions;
    CpuENNNeighborList pairs;
    std::vector<OpenMM::Vec3> sitePos, siteForce;
    std::vector<double> q, phi;
    /** One block of ML atoms' real-space sums: zero except at the sites listed in `touched`. */
    struct Block {
        std::vector<OpenMM::Vec3> force; // on every site
        std::vector<double> phi;         // of every ML site
        std::vector<char> marked;        // whether a site is in `touched`
        std::vector<int> touched;
        double energy = 0.0;
        void touch(int s) {
            if (!marked[s]) {
                marked[s] = 1;
                touched.push_back(s);
            }
        }
        void clear() {
            for (int s : touched) {
                force[s] = OpenMM::Vec3();
                if (s < static_cast<int>(phi.size()))
                    phi[s] = 0.0;
                marked[s] = 0;
            }
            touched.clear();
            energy = 0.0;
        }
    };
    std::vector<Block> blocks; // fixed pieces of the ML atoms for the real-space sums (at most MaxBlocks)
    // Generalized Born, per GB particle; with a cutoff, each particle's partners from a cell list
    CpuENNNeighborList gbNeighbors;
    std::vector<OpenMM::Vec3> gbPos, gbForce;
    std::vector<double> gbQ, gbBorn, gbChain, gbDEdSum, gbEnergy, gbPotential;
    // PME
    std::vector<std::complex<double>> grid;
    std::vector<double> influence, moduli[3], siteEnergy;
    OpenMM::Vec3 influenceBox[3];
    std::vector<int> planeOf, planeStart, planeSites, planeFill; // sites by the x plane of their first stencil point
    std::vector<int> stencilIndex; // stencils in the order of planeSites
    std::vector<double> stencilWeight, stencilDerivative;
    fftw_plan planePlans[2] = {nullptr, nullptr}, columnPlans[2] = {nullptr, nullptr}; // by sign (+1, -1)
};

} // namespace OpenMMENN

#endif
