#ifndef OPENMM_CPU_ENN_NEIGHBORS_H_
#define OPENMM_CPU_ENN_NEIGHBORS_H_

// Cell-list neighbour search for the CPU platform. Atoms are binned by fractional coordinates, so
// any triclinic box works; a box narrower than 2 cutoffs gets one cell per direction and the search
// walks over as many periodic images as the cutoff reaches, so every (atom, image) pair within the
// cutoff is found exactly once. Only occupied cells are stored, so far-flung atoms cost no memory.
// Storage is kept between calls (no allocation once sizes settle).

#include "openmm/Vec3.h"
#include "openmm/internal/ThreadPool.h"
#include <cstdint>
#include <vector>

namespace OpenMMENN {

class CpuENNNeighborList {
public:
    /**
     * All directed edges with |vec| < cutoff, grouped by receiver (ascending), vec = x[receiver] -
     * image of x[sender], in float. `box` is null for non-periodic systems, else OpenMM's reduced
     * triclinic form. Throws OpenMMException if two atoms coincide.
     */
    void build(const std::vector<OpenMM::Vec3>& positions, double cutoff, const OpenMM::Vec3* box, OpenMM::ThreadPool& pool) {
        build(positions, cutoff, box, pool, static_cast<int>(positions.size()), false, nullptr);
    }
    /** As build, for atoms that are System particles particleOf[i] (named so when two coincide). */
    void build(const std::vector<OpenMM::Vec3>& positions, double cutoff, const OpenMM::Vec3* box, const std::vector<int>& particleOf,
               OpenMM::ThreadPool& pool) {
        build(positions, cutoff, box, pool, static_cast<int>(positions.size()), false, &particleOf);
    }
    /**
     * The pair list of the electrostatics: receivers are atoms [0, numReceivers) only, and a pair of two receivers
     * is listed once (sender > receiver); no vectors or sender index are stored. Meant for cutoffs under half the
     * box, where a pair has at most one image within the cutoff. Two coinciding atoms are an OpenMMException naming
     * them as System particles `particleOf[i]`.
     */
    void buildPairs(const std::vector<OpenMM::Vec3>& positions, double cutoff, const OpenMM::Vec3* box, int numReceivers,
                    const std::vector<int>& particleOf, OpenMM::ThreadPool& pool) {
        build(positions, cutoff, box, pool, numReceivers, true, &particleOf);
    }

    int numEdges() const { return static_cast<int>(sender.size()); }
    std::vector<int> receiverStart;     // edges of receiver n: [receiverStart[n], receiverStart[n+1])
    std::vector<int> receiver, sender;  // per edge
    std::vector<float> vec;             // per edge, 3 components
    std::vector<int> senderStart, bySender; // edges sent by n: bySender[senderStart[n] .. senderStart[n+1])

private:
    void build(const std::vector<OpenMM::Vec3>& positions, double cutoff, const OpenMM::Vec3* box, OpenMM::ThreadPool& pool,
               int numReceivers, bool pairsOnly, const std::vector<int>* particleOf);
    std::vector<OpenMM::Vec3> wrapped;
    std::vector<int64_t> cellOf, occupiedKey; // packed cell coordinates of each atom; of each occupied cell, ascending
    std::vector<int> cellAtoms, occupiedStart, fill; // atoms by cell; where each occupied cell's atoms start
    struct ThreadEdges {
        std::vector<int> receiver, sender;
        std::vector<float> vec;
    };
    std::vector<ThreadEdges> threadEdges;
};

} // namespace OpenMMENN

#endif
