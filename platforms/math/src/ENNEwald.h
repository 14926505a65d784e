#ifndef OPENMM_ENN_EWALD_H_
#define OPENMM_ENN_EWALD_H_

// The pieces of smooth PME (B-spline order 5, any grid size, triclinic boxes) that every platform's reciprocal sum is
// built from, in double precision: the stencils, the spline moduli, the influence function, the neutralizing
// background and OpenMM's choice of alpha and grid. Units: nm, e, kJ/mol; the Coulomb constant ONE_4PI_EPS0 is
// ENNModel.h's (the model loader converts the constants model files declare with it).

#include "openmm/Vec3.h"
#include "openmmenn/ENNModel.h"
#include <cmath>
#include <complex>
#include <vector>

namespace OpenMMENN {

/** The B-spline order of every PME in this plugin. */
const int PMEOrder = 5;

/** |sum_{j=0}^{n-2} M_n(j+1) exp(2 pi i m j / K)|^2 for m = 0..K-1 (zeros of odd orders interpolated):
 *  the smooth-PME influence function is divided by the product of these along the three axes. */
std::vector<double> pmeSplineModuli(int K);

/** index[0] of pmeStencil along one axis (recipAxis = recip[d], K = grid[d]); sets f. */
int pmeFirstIndex(const OpenMM::Vec3& position, const OpenMM::Vec3& recipAxis, int K, double& f);

/** The stencil of a charge at `position` (nm): along axis d, with u = (fractional coordinate in [0, 1)) x grid[d]
 *  = base + f, grid point index[5d + j] = (base - j) mod grid[d] gets weight[5d + j] = M_5(f + j), j = 0..4, and
 *  dweight is M_5'(f + j) (cardinal B-splines by the usual recursion, M_n(x) = (x M_{n-1}(x) + (n - x) M_{n-1}(x - 1))
 *  / (n - 1), M_n' = M_{n-1}(x) - M_{n-1}(x - 1)). `recip` from reciprocalVectors. */
void pmeStencil(const OpenMM::Vec3& position, const OpenMM::Vec3* recip, const int grid[3], int index[3 * PMEOrder],
                double weight[3 * PMEOrder], double dweight[3 * PMEOrder]);

/** The smooth-PME influence function k_e / (pi V) ewaldKernel(m) / (B_0(m0) B_1(m1) B_2(m2)), made even in k (the mean of
 *  the kernel at the wave vectors of k and -k, which differ at Nyquist indices of a triclinic box), B from pmeSplineModuli
 *  (`moduli`, one per axis), 0 at m = 0, for the planes m0 in [firstPlane, lastPlane) of the row-major grid; writes
 *  `influence` from the start of plane firstPlane. */
void pmeInfluence(const OpenMM::Vec3* box, double alpha, const int grid[3], const std::vector<double>* moduli, int firstPlane,
                  int lastPlane, double* influence);

/** exp(-pi^2 m^2 / alpha^2) / m^2 for a reciprocal vector m (not zero): the Ewald kernel, without k_e / (pi V). */
inline double ewaldKernel(const OpenMM::Vec3& m, double alpha) {
    const double m2 = m.dot(m);
    return std::exp(-M_PI * M_PI * m2 / (alpha * alpha)) / m2;
}

/** Energy of the neutralizing background of net charge Q: -k_e pi Q^2 / (2 V alpha^2). */
double neutralizingBackgroundEnergy(double totalCharge, const OpenMM::Vec3* box, double alpha);

/** The mesh a PolarMACE region's MM structure factor S(k) = sum_m q_m exp(-i k . x_m) is interpolated on (every platform
 *  but Reference): each k vector's integer indices n (k = 2 pi sum_a n_a recip_a), the largest |n_a| along each axis
 *  (its reach), a grid 8x finer than the reach (sizes with no prime factor above 7), and each k vector's deconvolution
 *  1 / prod_a Bhat_a(n_a): with a charge spread on the grid by pmeStencil, F(n) = sum_g Q(g) exp(-2 pi i n . g / K)
 *  = S(k) Bhat(n) up to the interpolation error, (1/7)^5 of each charge's term at the largest k. The grid is real, so
 *  F(n) = conj F(-n): a platform transforms only z frequencies 0 .. reach, and a k vector with n_2 < 0 is read as the
 *  conjugate at -n. Throws OpenMMException for a grid beyond ENNSanityBounds (an exploded box). */
struct PolarMeshGrid {
    PolarMeshGrid(const OpenMM::Vec3* box, const std::vector<OpenMM::Vec3>& k);
    int size[3], reach[3];
    std::vector<int> n;                                // n_0, n_1, n_2 >= 0 of each k vector, or of -k where k's n_2 < 0
    std::vector<bool> conjugate;                       // per k vector: its n_2 < 0, F(n) the conjugate of F at the n above
    std::vector<std::complex<double>> splineFactor;     // 1 / prod_a Bhat_a(n_a) of each k vector (of k itself)
};

/** alpha and grid chosen from an error tolerance the way OpenMM's NonbondedForce does. */
void choosePMEParameters(double cutoff, double tolerance, const OpenMM::Vec3* box, double& alpha, int grid[3]);

} // namespace OpenMMENN

#endif
