// A cell list on the device (OpenMM's common compute dialect), shared by the network's neighbour search
// (ennNetwork.cc) and the real-space pair sums of the electrostatics (ennElectrostatics.cc).
// Defines: NUM_BUCKETS (cell hash table, a power of two), REDUCE_SIZE (ennReduce.cc).
//
// Nodes are binned into cells no narrower than the cutoff, so that the neighbours of a node lie in its
// own cell and the 26 around it. Periodic: cells along each lattice direction from the fractional
// coordinate (numCells per direction; 1 when the box is under three cutoffs wide there, and then that
// direction is scanned whole). Non-periodic: cubes of the cutoff. Cells are found through a hash table
// of NUM_BUCKETS buckets; a bucket may hold several cells, so candidates are filtered by their exact
// cell. Filling the buckets uses integer atomics, so their order varies; each receiver's edge list is
// sorted afterwards (by sender, then periodic image), which makes the result independent of it; the electrostatics
// sort each bucket instead (sortBuckets).

DEVICE int bucketOf(int4 cell) {
    const unsigned int h = ((unsigned int) cell.x * 73856093u) ^ ((unsigned int) cell.y * 19349663u) ^ ((unsigned int) cell.z * 83492791u);
    return (int) (h & (NUM_BUCKETS - 1));
}

DEVICE int cellAlong(real4 p, real4 recip, int numCells) {
    real s = p.x * recip.x + p.y * recip.y + p.z * recip.z;
    s -= floor(s);
    const int c = (int) (s * numCells);
    return c < numCells ? c : numCells - 1;
}

DEVICE int cellOfCoordinate(real x, real cutoff) {
    const real c = floor(x / cutoff);
    return (int) (c < -1048576 ? -1048576 : (c > 1048576 ? 1048576 : c)); // beyond +-2^20 cutoffs nothing is physical
}

/** The cell of every node, and how many nodes each bucket holds (bucketCount must be cleared). */
KERNEL void assignCells(GLOBAL const real4* RESTRICT pos, int numNodes, int periodic, real cutoff, real4 recipA, real4 recipB, real4 recipC,
        int4 numCells, GLOBAL int4* RESTRICT cellOfNode, GLOBAL int* RESTRICT bucketCount) {
    for (int i = GLOBAL_ID; i < numNodes; i += GLOBAL_SIZE) {
        const real4 p = pos[i];
        int4 cell;
        if (periodic)
            cell = make_int4(cellAlong(p, recipA, numCells.x), cellAlong(p, recipB, numCells.y), cellAlong(p, recipC, numCells.z), 0);
        else
            cell = make_int4(cellOfCoordinate(p.x, cutoff), cellOfCoordinate(p.y, cutoff), cellOfCoordinate(p.z, cutoff), 0);
        cellOfNode[i] = cell;
        ATOMIC_ADD(&bucketCount[bucketOf(cell)], 1);
    }
}

/** One work group: bucketStart = exclusive prefix sums of bucketCount; bucketCursor starts there. */
KERNEL void bucketOffsets(GLOBAL const int* RESTRICT bucketCount, GLOBAL int* RESTRICT bucketStart, GLOBAL int* RESTRICT bucketCursor) {
    LOCAL int partial[REDUCE_SIZE];
    const int chunk = (NUM_BUCKETS + REDUCE_SIZE - 1) / REDUCE_SIZE;
    const int first = LOCAL_ID * chunk, last = min(first + chunk, NUM_BUCKETS);
    int sum = 0;
    for (int b = first; b < last; b++)
        sum += bucketCount[b];
    partial[LOCAL_ID] = sum;
    SYNC_THREADS;
    if (LOCAL_ID == 0) {
        int total = 0;
        for (int t = 0; t < REDUCE_SIZE; t++) {
            const int x = partial[t];
            partial[t] = total;
            total += x;
        }
    }
    SYNC_THREADS;
    int offset = partial[LOCAL_ID];
    for (int b = first; b < last; b++) {
        bucketStart[b] = offset;
        bucketCursor[b] = offset;
        offset += bucketCount[b];
    }
}

KERNEL void fillBuckets(GLOBAL const int4* RESTRICT cellOfNode, int numNodes, GLOBAL int* RESTRICT bucketCursor, GLOBAL int* RESTRICT bucketNodes) {
    for (int i = GLOBAL_ID; i < numNodes; i += GLOBAL_SIZE)
        bucketNodes[ATOMIC_ADD(&bucketCursor[bucketOf(cellOfNode[i])], 1)] = i;
}

/** Each bucket's nodes in ascending order (one thread per bucket; buckets hold a few nodes), so that sums over a
 *  cell's nodes run in an order that does not depend on the atomics of fillBuckets. */
KERNEL void sortBuckets(GLOBAL const int* RESTRICT bucketStart, GLOBAL const int* RESTRICT bucketCount, GLOBAL int* RESTRICT bucketNodes) {
    for (int b = GLOBAL_ID; b < NUM_BUCKETS; b += GLOBAL_SIZE) {
        const int first = bucketStart[b], last = first + bucketCount[b];
        for (int k = first + 1; k < last; k++) {
            const int node = bucketNodes[k];
            int m = k - 1;
            while (m >= first && bucketNodes[m] > node) {
                bucketNodes[m + 1] = bucketNodes[m];
                m--;
            }
            bucketNodes[m + 1] = node;
        }
    }
}

/** Cells either side of a home cell that can hold its neighbours, per direction: 1, or 0 where a periodic box has
 *  fewer than three cells along that direction (it then has one, scanned whole). */
DEVICE int4 cellReach(int4 numCells, int periodic) {
    return make_int4(numCells.x >= 3 || !periodic ? 1 : 0, numCells.y >= 3 || !periodic ? 1 : 0, numCells.z >= 3 || !periodic ? 1 : 0, 0);
}

/** The k-th cell around home (k < (2 reach.x + 1)(2 reach.y + 1)(2 reach.z + 1)), in a fixed order, wrapped in a
 *  periodic box. */
DEVICE int4 cellAround(int4 home, int k, int4 reach, int4 numCells, int periodic) {
    const int ny = 2 * reach.y + 1, nz = 2 * reach.z + 1;
    int4 cell = make_int4(home.x + k / (ny * nz) - reach.x, home.y + (k / nz) % ny - reach.y, home.z + k % nz - reach.z, 0);
    if (periodic) {
        cell.x = (cell.x + numCells.x) % numCells.x;
        cell.y = (cell.y + numCells.y) % numCells.y;
        cell.z = (cell.z + numCells.z) % numCells.z;
    }
    return cell;
}
