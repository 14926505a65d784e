#ifndef OPENMM_REFERENCE_ENN_PME_H_
#define OPENMM_REFERENCE_ENN_PME_H_

// Reciprocal-space Ewald sums in double precision: smooth PME (B-spline order 5, any grid size,
// triclinic boxes) and the plain Ewald sum it is tested against. Units: nm, e, kJ/mol.

#include "openmm/Vec3.h"
#include <complex>
#include <functional>
#include <vector>

namespace OpenMMENN {

/** Volume of the periodic cell. */
double boxVolume(const OpenMM::Vec3* box);

/** Reciprocal vectors: recip[i] . box[j] = delta_ij; |recip[i]| is 1 / the spacing of the lattice planes
 *  spanned by the other two box vectors. */
void reciprocalVectors(const OpenMM::Vec3* box, OpenMM::Vec3* recip);

/** The B-spline order of every PME in this plugin. */
const int PMEOrder = 5;

/** |sum_{j=0}^{n-2} M_n(j+1) exp(2 pi i m j / K)|^2 for m = 0..K-1 (zeros of odd orders interpolated):
 *  the smooth-PME influence function is divided by the product of these along the three axes. */
std::vector<double> pmeSplineModuli(int K);

/** An unnormalised 3D discrete Fourier transform in place, data[k] = sum_j data[j] exp(sign 2 pi i j.k / grid),
 *  row-major over grid[0] x grid[1] x grid[2]. PME uses its own mixed-radix FFT unless given one. */
typedef std::function<void(std::complex<double>* data, const int grid[3], int sign)> Transform3D;

/**
 * Reciprocal energy (1/2) sum_{m != 0} (k_e / pi V) exp(-pi^2 m^2 / alpha^2) / m^2 |S(m)|^2 of point
 * charges in a periodic box (OpenMM's reduced triclinic form). Adds -dE/dx to `forces` and stores
 * dE/dq_i in `potential` (both optional). The neutralizing background is not included.
 */
double pmeReciprocal(const std::vector<OpenMM::Vec3>& positions, const std::vector<double>& charges, const OpenMM::Vec3* box,
                     double alpha, const int grid[3], std::vector<OpenMM::Vec3>* forces, std::vector<double>* potential,
                     const Transform3D& transform = {});

/** The same energy by direct summation over reciprocal vectors with |m_d| <= kmax (the test oracle). */
double ewaldReciprocal(const std::vector<OpenMM::Vec3>& positions, const std::vector<double>& charges, const OpenMM::Vec3* box,
                       double alpha, int kmax, std::vector<OpenMM::Vec3>* forces, std::vector<double>* potential);

/** Energy of the neutralizing background of net charge Q: -k_e pi Q^2 / (2 V alpha^2). */
double neutralizingBackgroundEnergy(double totalCharge, const OpenMM::Vec3* box, double alpha);

/** alpha and grid chosen from an error tolerance the way OpenMM's NonbondedForce does. */
void choosePMEParameters(double cutoff, double tolerance, const OpenMM::Vec3* box, double& alpha, int grid[3]);

} // namespace OpenMMENN

#endif
