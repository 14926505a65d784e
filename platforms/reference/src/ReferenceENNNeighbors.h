#ifndef OPENMM_REFERENCE_ENN_NEIGHBORS_H_
#define OPENMM_REFERENCE_ENN_NEIGHBORS_H_

#include "ENNPeriodicGeometry.h"
#include "openmm/Vec3.h"
#include <vector>

namespace OpenMMENN {

/**
 * All edges with |vec| < cutoff, both directions. With box vectors (OpenMM's reduced triclinic form),
 * every periodic image is considered, so boxes smaller than 2*cutoff (several images of a pair, an
 * atom next to its own image) are handled. Brute force over pairs: the Reference platform is the oracle.
 * Throws OpenMMException if two atoms coincide.
 */
std::vector<ENNEdge> buildReferenceEdges(const std::vector<OpenMM::Vec3>& positions, double cutoff, const OpenMM::Vec3* boxVectors);

} // namespace OpenMMENN

#endif
