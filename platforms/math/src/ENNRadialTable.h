#ifndef OPENMM_ENN_RADIAL_TABLE_H_
#define OPENMM_ENN_RADIAL_TABLE_H_

// A layer's radial outputs (the radial MLP's tensor-product weights, and a density-normalised layer's edge density;
// numRadialOutputs) as a cubic Hermite table over [0, r_max], for the platforms that evaluate them in float (CPU,
// and the GPU platforms in single and mixed precision). A model with a distance transform has one table per layer
// and element pair. Intervals are halved until the interpolant is within float
// precision of the exact MLP at every midpoint: values to 1e-7 and derivatives to 1e-5 of their largest magnitude
// (the derivative of a cubic Hermite interpolant converges one order slower). The platforms' forces are the exact
// derivative of the interpolated weights, so energy conservation does not depend on this tolerance.

#include "openmmenn/ENNModel.h"
#include <memory>
#include <vector>

namespace OpenMMENN {

struct ENNRadialTable {
    int intervals = 0, numWeights = 0;
    double rMax = 0;
    /** Per node i = 0..intervals (at r = i r_max / intervals): the numWeights values, then the numWeights
     *  derivatives times the interval's width. */
    std::vector<double> data;
};

/** The table of a layer for edges from an atom of element a to one of element b (indices into the model's elements),
 *  built on first use and shared while anything holds it (thread-safe): one per layer for a model whose radial
 *  functions do not depend on the elements, one per layer and element pair (either order) for a model with a distance
 *  transform, one per layer and ordered pair (sender a, receiver b) for a layer with edge embeddings. */
std::shared_ptr<const ENNRadialTable> radialTableOf(const std::shared_ptr<const ENNModel>& model, int layer, int elementA, int elementB);

} // namespace OpenMMENN

#endif
