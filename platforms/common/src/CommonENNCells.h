#ifndef OPENMM_COMMON_ENN_CELLS_H_
#define OPENMM_COMMON_ENN_CELLS_H_

// The host side of the device cell list (kernels/ennCells.cc), used by the network's neighbour search and the
// electrostatics' Coulomb and GB pairs.

#include "CommonENNDeviceWork.h"
#include "CommonENNKernelSources.h"
#include "CommonENNPrecision.h"
#include "ENNPeriodicGeometry.h"
#include "openmm/Vec3.h"
#include "openmm/common/ComputeProgram.h"
#include "openmm/common/ComputeVectorTypes.h"
#include <algorithm>
#include <cmath>

namespace OpenMMENN {

/** Cells along a lattice direction of a periodic box whose planes are `spacing` apart: as many at least `cutoff` wide
 *  as fit (at most 1024), or 1 where fewer than three fit (the kernels' cellReach then scans that direction whole). */
inline int deviceCellsAlong(double spacing, double cutoff) {
    const int cells = static_cast<int>(std::floor(spacing / cutoff));
    return cells >= 3 ? std::min(cells, 1024) : 1;
}

/** A cell list on the device of the first numNodes entries of a real4 position array, rebuilt every step: nodes binned
 *  into cells at least `cutoff` wide (along each lattice direction of a periodic box; cubes of the cutoff otherwise),
 *  found through a hash table of numBuckets buckets (the program's NUM_BUCKETS). With `sorted`, each bucket's nodes are
 *  sorted, so that every sum over them runs in a fixed order. */
struct DeviceCellList {
    OpenMM::ComputeArray bucketCount, bucketStart, bucketCursor, bucketNodes;
    OpenMM::ComputeKernel assign, offsets, fill, sort;
    int numNodes = 0, numBuckets = 0;
    double cutoff = 0;
    bool periodic = false, sorted = false;

    /** cellOfNode (int4 per node) is written by the list and read by the kernels that scan it. */
    void create(OpenMM::ComputeContext& cc, OpenMM::ComputeProgram& program, OpenMM::ComputeArray& positions, int nodes, int buckets,
                bool isPeriodic, double cellCutoff, OpenMM::ComputeArray& cellOfNode, bool sortBuckets) {
        numNodes = nodes;
        numBuckets = buckets;
        periodic = isPeriodic;
        cutoff = cellCutoff;
        sorted = sortBuckets;
        bucketCount.initialize<int>(cc, numBuckets, "ennBucketCount");
        bucketStart.initialize<int>(cc, numBuckets, "ennBucketStart");
        bucketCursor.initialize<int>(cc, numBuckets, "ennBucketCursor");
        bucketNodes.initialize<int>(cc, std::max(1, numNodes), "ennBucketNodes");
        // assignCells(pos, numNodes, periodic, cutoff, recipA, recipB, recipC, numCells, cellOfNode, bucketCount)
        assign = program->createKernel("assignCells");
        assign->addArg(positions);
        assign->addArg(numNodes);
        assign->addArg(periodic ? 1 : 0);
        addRealArg(cc, assign, cutoff);
        for (int i = 0; i < 4; i++)
            assign->addArg(); // reciprocal box vectors and cell counts, set every step
        assign->addArg(cellOfNode);
        assign->addArg(bucketCount);
        offsets = program->createKernel("bucketOffsets");
        for (OpenMM::ComputeArray* a : {&bucketCount, &bucketStart, &bucketCursor})
            offsets->addArg(*a);
        fill = program->createKernel("fillBuckets");
        fill->addArg(cellOfNode);
        fill->addArg(numNodes);
        fill->addArg(bucketCursor);
        fill->addArg(bucketNodes);
        if (sorted) {
            sort = program->createKernel("sortBuckets");
            for (OpenMM::ComputeArray* a : {&bucketStart, &bucketCount, &bucketNodes})
                sort->addArg(*a);
        }
    }

    /** Queues the list for this step's box (in the positions' length unit; unused when not periodic) and returns the
     *  cells along each lattice direction (1, 1, 1 when not periodic), which the scanning kernels take. */
    OpenMM::mm_int4 build(OpenMM::ComputeContext& cc, DeviceWork& work, const OpenMM::Vec3* box) {
        OpenMM::Vec3 recip[3];
        OpenMM::mm_int4 numCells(1, 1, 1, 0);
        if (periodic) {
            reciprocalVectors(box, recip);
            double spacing[3];
            latticePlaneSpacings(box, spacing);
            numCells = OpenMM::mm_int4(deviceCellsAlong(spacing[0], cutoff), deviceCellsAlong(spacing[1], cutoff),
                                       deviceCellsAlong(spacing[2], cutoff), 0);
        }
        for (int k = 0; k < 3; k++)
            setReal4Arg(cc, assign, 4 + k, recip[k]);
        assign->setArg(7, numCells);
        const int reduceSize = CommonENNKernelSources::ReduceSize;
        work.clear(cc, bucketCount);
        work.launch(assign, numNodes);
        work.launch(offsets, reduceSize, reduceSize);
        work.launch(fill, numNodes);
        if (sorted)
            work.launch(sort, numBuckets);
        return numCells;
    }
};

} // namespace OpenMMENN

#endif
