#ifndef OPENMM_REFERENCE_ENN_PME_H_
#define OPENMM_REFERENCE_ENN_PME_H_

// Reciprocal-space Ewald sums in double precision with plain loops and its own FFT: smooth PME (from the stencils
// and influence function of ENNEwald.h) and the plain Ewald sum it is tested against. Units: nm, e, kJ/mol.

#include "ENNEwald.h"
#include "openmm/Vec3.h"
#include <vector>

namespace OpenMMENN {

/**
 * Reciprocal energy (1/2) sum_{m != 0} (k_e / pi V) exp(-pi^2 m^2 / alpha^2) / m^2 |S(m)|^2 of point
 * charges in a periodic box (OpenMM's reduced triclinic form). Adds -dE/dx to `forces` and stores
 * dE/dq_i in `potential` (both optional). The neutralizing background is not included.
 */
double pmeReciprocal(const std::vector<OpenMM::Vec3>& positions, const std::vector<double>& charges, const OpenMM::Vec3* box,
                     double alpha, const int grid[3], std::vector<OpenMM::Vec3>* forces, std::vector<double>* potential);

/** The same energy by direct summation over reciprocal vectors with |m_d| <= kmax (the test oracle). */
double ewaldReciprocal(const std::vector<OpenMM::Vec3>& positions, const std::vector<double>& charges, const OpenMM::Vec3* box,
                       double alpha, int kmax, std::vector<OpenMM::Vec3>* forces, std::vector<double>* potential);

} // namespace OpenMMENN

#endif
