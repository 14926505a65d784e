#ifndef OPENMM_REFERENCE_ENN_NEIGHBORS_H_
#define OPENMM_REFERENCE_ENN_NEIGHBORS_H_

#include "openmm/Vec3.h"
#include <cmath>
#include <vector>

namespace OpenMMENN {

/** A directed graph edge: messages flow from sender to receiver; vec = x[receiver] - (image of x[sender]). */
struct ENNEdge {
    int receiver, sender;
    OpenMM::Vec3 vec;
};

/** d shifted by lattice vectors to fractional coordinates in [-0.5, 0.5] (OpenMM's reduced triclinic
 *  form); this is the nearest image whenever it lies within half of every box width. */
inline OpenMM::Vec3 wrapDisplacement(OpenMM::Vec3 d, const OpenMM::Vec3* box) {
    // floor(x + 0.5) rather than round(x): the same nearest image (ties aside), and compiled inline.
    d -= box[2] * std::floor(d[2] / box[2][2] + 0.5);
    d -= box[1] * std::floor(d[1] / box[1][1] + 0.5);
    d -= box[0] * std::floor(d[0] / box[0][0] + 0.5);
    return d;
}

/** The distance between opposite faces of the periodic cell for each lattice direction (the width a
 *  cutoff sphere must fit in); box in OpenMM's reduced triclinic form. */
void latticePlaneSpacings(const OpenMM::Vec3* box, double spacing[3]);

/** Throws OpenMMException, naming the problem, unless the box vectors (nm) are finite, within
 *  ENNSanityBounds::MaxCoordinate, and wide enough that `cutoff` (nm) reaches at most MaxPeriodicImages
 *  images along each lattice direction. Called before any neighbour search or Ewald sum. */
void checkPeriodicBox(const OpenMM::Vec3* box, double cutoff);

/**
 * All edges with |vec| < cutoff, both directions. With box vectors (OpenMM's reduced triclinic form),
 * every periodic image is considered, so boxes smaller than 2*cutoff (several images of a pair, an
 * atom next to its own image) are handled. Brute force over pairs: the Reference platform is the oracle.
 * Throws OpenMMException if two atoms coincide.
 */
std::vector<ENNEdge> buildReferenceEdges(const std::vector<OpenMM::Vec3>& positions, double cutoff, const OpenMM::Vec3* boxVectors);

} // namespace OpenMMENN

#endif
