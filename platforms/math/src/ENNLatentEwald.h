#ifndef OPENMM_ENN_LATENT_EWALD_H_
#define OPENMM_ENN_LATENT_EWALD_H_

// MACELES's long-range energy in a periodic cell as the `les` library computes it (its Ewald module, periodic path),
// which is the sum a MACELES model was trained with: the reciprocal-space sum of Gaussian charges of width sigma
// (Ewald with alpha = 1/(sqrt(2) sigma) and no real-space part), truncated at |k| <= 2 pi / dl over the grid
// n in [-N_a, N_a]^3, N_a = max(1, floor(|a_a| / dl)), a_a the cell vectors, minus the Gaussian self energies:
//   E = sum_{k in the half set} w_k |S(k)|^2 - k_C / (sigma sqrt(2 pi)) sum_i q_i^2,   S(k) = sum_i q_i exp(i k.r_i),
//   w_k = 4 pi k_C exp(-sigma^2 k^2 / 2) / (V k^2)   (both k and -k counted: twice the half set),
// k_C the model's Coulomb constant. What is missing beyond the truncation (the "converged" sum is the same over all
// k != 0) is docs/electrostatics.md's subject. Everything here in the model's units (length, energy) and double.
// The sums themselves are each platform's: ReferenceENNLatentEwald, CpuENNLatentEwald, CommonENNLatentEwald.

#include "openmm/Vec3.h"
#include <vector>

namespace OpenMMENN {

class ENNModel;
class ENNForce;

/** Whether the force evaluates its model's own Coulomb term as the model was trained in periodic cells: the model
 *  declares that sum, the force is periodic, and no electrostatics method was chosen (PME then gives the converged sum). */
bool usesTrainedPeriodicSum(const ENNForce& force);

struct LatentEwaldKSet {
    std::vector<OpenMM::Vec3> k;  // one of each pair +-k (the les library's hemisphere: first non-zero index positive)
    std::vector<int> n;           // the three grid indices of each, [3 * i + a]
    std::vector<double> weight;   // w_k, twice the half set's weight folded in (energy / charge^2)
    OpenMM::Vec3 reciprocal[3];   // b_a with a_a . b_b = 2 pi delta_ab: k = sum_a n_a b_a
    int maxIndex[3] = {0, 0, 0};  // N_a
    double selfCoefficient = 0;   // k_C / (sigma sqrt(2 pi)) if the model's energy excludes the self energies, else 0
};

/** The truncated k set of `model` (which must declare it) for the cell `box` (rows, the model's length unit); throws
 *  OpenMMException for a box that would need more than ENNSanityBounds::MaxReciprocalKVectors. */
LatentEwaldKSet latentEwaldKSet(const ENNModel& model, const OpenMM::Vec3 box[3]);

/** Whether the box vectors (rows, in nm) are the same as those a k set was made for (then it is reused). */
bool sameBox(const OpenMM::Vec3 a[3], const OpenMM::Vec3 b[3]);

} // namespace OpenMMENN

#endif
