#ifndef OPENMM_COMMON_ENN_CELLS_H_
#define OPENMM_COMMON_ENN_CELLS_H_

// The host side of the device cell list (kernels/ennCells.cc), used by the network's neighbour search and the
// electrostatics' Coulomb pairs.

#include <algorithm>
#include <cmath>

namespace OpenMMENN {

/** Cells along a lattice direction of a periodic box whose planes are `spacing` apart: as many at least `cutoff` wide
 *  as fit (at most 1024), or 1 where fewer than three fit (the kernels' cellReach then scans that direction whole). */
inline int deviceCellsAlong(double spacing, double cutoff) {
    const int cells = static_cast<int>(std::floor(spacing / cutoff));
    return cells >= 3 ? std::min(cells, 1024) : 1;
}

} // namespace OpenMMENN

#endif
