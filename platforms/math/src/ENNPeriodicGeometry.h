#ifndef OPENMM_ENN_PERIODIC_GEOMETRY_H_
#define OPENMM_ENN_PERIODIC_GEOMETRY_H_

// Periodic cells and graph edges, for every platform (double precision): the nearest image, the widths and
// volume of a cell, its reciprocal vectors, and the check that a box is usable. Boxes are in OpenMM's reduced
// triclinic form (a along x, b in the xy plane).

#include "openmm/Vec3.h"
#include <cmath>

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
 *  cutoff sphere must fit in). */
void latticePlaneSpacings(const OpenMM::Vec3* box, double spacing[3]);

/** Throws OpenMMException, naming the problem, unless the box vectors (nm) are finite, within
 *  ENNSanityBounds::MaxCoordinate, and wide enough that `cutoff` (nm) reaches at most MaxPeriodicImages
 *  images along each lattice direction. Called before any neighbour search or Ewald sum. */
void checkPeriodicBox(const OpenMM::Vec3* box, double cutoff);

/** Volume of the periodic cell. */
double boxVolume(const OpenMM::Vec3* box);

/** Reciprocal vectors: recip[i] . box[j] = delta_ij; |recip[i]| is 1 / the spacing of the lattice planes
 *  spanned by the other two box vectors. */
void reciprocalVectors(const OpenMM::Vec3* box, OpenMM::Vec3* recip);

} // namespace OpenMMENN

#endif
