#ifndef OPENMM_CPU_ENN_LATENT_EWALD_H_
#define OPENMM_CPU_ENN_LATENT_EWALD_H_

#include "ENNLatentEwald.h"
#include "openmm/Vec3.h"
#include "openmm/internal/ThreadPool.h"
#include <complex>
#include <vector>

namespace OpenMMENN {

/**
 * MACELES's truncated periodic sum of its latent charges (ENNLatentEwald.h) on the CPU platform's threads, in double:
 * exp(i k.r) as the product of per-axis powers exp(i n_a b_a.r) (tables per atom), the k vectors taken in runs of
 * equal (n_0, n_1), so that each term costs one complex product per atom: the structure factors by runs, then the
 * potentials and forces by blocks of atoms (every output written by one chunk: the same sums whatever the threads).
 * The k set is rebuilt only when the box changes.
 */
class CpuENNLatentEwald {
public:
    explicit CpuENNLatentEwald(const ENNModel& model) : model(model) {}
    /** The energy; adds dE/dq_i to phi and dE/dr_i to gradient (ML order, model units; box rows in model units). */
    double compute(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3 box[3], const std::vector<double>& q, std::vector<double>& phi,
                   std::vector<OpenMM::Vec3>& gradient, OpenMM::ThreadPool& pool);

private:
    const ENNModel& model;
    OpenMM::Vec3 setBox[3];
    LatentEwaldKSet set;
    std::vector<int> runStart;                            // k vectors runStart[r] .. runStart[r + 1] share (n_0, n_1)
    std::vector<std::complex<double>> powers[3];          // [a][(n + N_a) * atoms + i] = exp(i n b_a.r_i)
    std::vector<double> structureRe, structureIm;         // S(k)
};

} // namespace OpenMMENN

#endif
