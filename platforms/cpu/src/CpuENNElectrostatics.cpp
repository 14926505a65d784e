#include "CpuENNElectrostatics.h"
#include "CpuENNParallel.h"
#include "ENNEwald.h"
#include "ENNPeriodicGeometry.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cmath>
#include <mutex>

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::vector;
typedef std::complex<double> Complex;

namespace {
// The real-space sums cut the ML atoms into at most this many pieces, each with its own force array over the sites.
const int MaxBlocks = 16;
// Sites per piece of the per-site passes (stencils, interpolation, the sum over pieces).
const int SiteChunk = 128;
} // namespace

CpuENNElectrostatics::CpuENNElectrostatics(const OpenMM::System& system, const ENNForce& force)
    : c(system, force), exceptions(c.exceptionLists()) {
    blocks.resize(std::min(c.numML, MaxBlocks));
    for (Block& block : blocks) {
        block.force.resize(c.sites.size());
        block.marked.resize(c.sites.size());
        block.phi.resize(c.numML);
    }
    if (c.method != ENNForce::PME)
        return;
    const int* K = c.grid;
    for (int d = 0; d < 3; d++)
        moduli[d] = pmeSplineModuli(K[d]);
    grid.resize(size_t(K[0]) * K[1] * K[2]);
    influence.resize(grid.size());
    std::lock_guard<std::mutex> lock(fftwPlannerMutex());
    fftw_complex* data = reinterpret_cast<fftw_complex*>(grid.data());
    const int planeSize = K[1] * K[2];
    for (int s = 0; s < 2; s++) {
        const int direction = s == 0 ? FFTW_BACKWARD : FFTW_FORWARD; // sign +1, sign -1
        planePlans[s] = fftw_plan_dft_2d(K[1], K[2], data, data, direction, FFTW_ESTIMATE | FFTW_UNALIGNED);
        // One y row of x columns: K[2] transforms of length K[0], stride one plane, adjacent in z.
        columnPlans[s] = fftw_plan_many_dft(1, &K[0], K[2], data, nullptr, planeSize, 1, data, nullptr, planeSize, 1, direction,
                                            FFTW_ESTIMATE | FFTW_UNALIGNED);
        if (planePlans[s] == nullptr || columnPlans[s] == nullptr)
            throw OpenMM::OpenMMException("ENNForce: FFTW could not plan a PME transform");
    }
}

CpuENNElectrostatics::~CpuENNElectrostatics() {
    std::lock_guard<std::mutex> lock(fftwPlannerMutex());
    for (fftw_plan plan : {planePlans[0], planePlans[1], columnPlans[0], columnPlans[1]})
        if (plan != nullptr)
            fftw_destroy_plan(plan);
}

double CpuENNElectrostatics::compute(const vector<Vec3>& positions, const Vec3* box, const vector<double>& mlCharges, vector<Vec3>& forces,
                                     vector<double>& potential, OpenMM::ThreadPool& pool) {
    potential.assign(c.numML, 0.0);
    c.checkBox(box);
    double energy = 0.0;
    if (c.method != ENNForce::NoElectrostatics) {
        const int numSites = static_cast<int>(c.sites.size());
        sitePos.resize(numSites);
        for (int s = 0; s < numSites; s++)
            sitePos[s] = positions[c.sites[s]];
        q.assign(mlCharges.begin(), mlCharges.end());
        for (double& charge : q) // (the model's own Coulomb constant, where its charges are the only ones)
            charge *= c.mlChargeScale;
        q.insert(q.end(), c.mmCharges.begin(), c.mmCharges.end());
        siteForce.assign(numSites, Vec3());
        phi.assign(c.numML, 0.0);
        energy += coulomb(box, pool);
        for (int s = 0; s < numSites; s++)
            forces[c.sites[s]] += siteForce[s];
        for (int a = 0; a < c.numML; a++)
            potential[a] += phi[a] * c.mlChargeScale;
    }
    if (c.implicitSolvent)
        energy += generalizedBorn(positions, box, mlCharges, forces, potential, pool);
    return energy;
}

double CpuENNElectrostatics::generalizedBorn(const vector<Vec3>& positions, const Vec3* box, const vector<double>& mlCharges,
                                             vector<Vec3>& forces, vector<double>& potential, OpenMM::ThreadPool& pool) {
    const int n = static_cast<int>(c.gbParticles.size());
    gbPos.resize(n);
    gbQ.resize(n);
    for (int i = 0; i < n; i++) {
        gbPos[i] = positions[c.gbParticles[i]];
        gbQ[i] = c.gbMLIndex[i] >= 0 ? mlCharges[c.gbMLIndex[i]] : c.gbCharges[i];
    }
    gbBorn.resize(n);
    gbChain.resize(n);
    gbDEdSum.resize(n);
    gbEnergy.resize(n);
    gbPotential.resize(n);
    gbForce.resize(n);
    const int GBChunk = 16;
    auto forEachParticle = [&](auto visit) { parallelForEach(pool, n, GBChunk, visit); };
    // Each particle's partners j != i: every other particle, or with a cutoff those of a cell list (searched a
    // little wider in float, then tested exactly in double by gbWithin).
    if (c.gbCutoff > 0)
        gbNeighbors.build(gbPos, c.gbCutoff * (1 + 1e-5), c.gbPeriodic ? box : nullptr, c.gbParticles, pool);
    auto forEachPartner = [&](int i, auto visit) {
        if (c.gbCutoff > 0) {
            for (int e = gbNeighbors.receiverStart[i]; e < gbNeighbors.receiverStart[i + 1]; e++) {
                const int j = gbNeighbors.sender[e];
                const Vec3 d = c.gbDisplacement(gbPos[i], gbPos[j], box);
                if (c.gbWithin(d.dot(d)))
                    visit(j, d);
            }
        } else
            for (int j = 0; j < n; j++)
                if (j != i)
                    visit(j, gbPos[j] - gbPos[i]);
    };
    forEachParticle([&](int i) { // Born radii
        double sum = 0.0;
        forEachPartner(i, [&](int j, const Vec3& d) {
            double term, dterm;
            c.gbIntegral(i, j, std::sqrt(d.dot(d)), term, dterm);
            sum += term;
        });
        c.gbBornRadius(i, sum, gbBorn[i], gbChain[i]);
    });
    forEachParticle([&](int i) { // ACE and the pair energies of i with every j (j = i: the self term), half of each pair
        double dEdBorn, phi = 0.0;
        double energy = c.gbSurfaceEnergy(i, gbBorn[i], dEdBorn);
        Vec3 force;
        auto pair = [&](int j, const Vec3& d) {
            double e, dfdrr, P, dPdf;
            const double f = c.gbDistance(d.dot(d), gbBorn[i], gbBorn[j], e, dfdrr);
            c.gbPair(f, c.gbShift(i, j), P, dPdf);
            energy += 0.5 * P * gbQ[i] * gbQ[j];
            phi += P * gbQ[j];
            dEdBorn += dPdf * gbQ[i] * gbQ[j] * dfdrr * gbBorn[j];
            if (j != i)
                force += d * (dPdf * gbQ[i] * gbQ[j] * (1.0 - 0.25 * e) / f);
        };
        pair(i, Vec3());
        forEachPartner(i, pair);
        gbEnergy[i] = energy;
        gbPotential[i] = phi;
        gbDEdSum[i] = dEdBorn * gbChain[i];
        gbForce[i] = force;
    });
    // Born radii depend on positions through the integrals: particle k feels its own sum's terms and those of every m.
    forEachParticle([&](int k) {
        Vec3 force;
        forEachPartner(k, [&](int m, const Vec3& d) {
            const double r = std::sqrt(d.dot(d));
            double term, dtermKM, dtermMK;
            c.gbIntegral(k, m, r, term, dtermKM);
            c.gbIntegral(m, k, r, term, dtermMK);
            force += d * ((gbDEdSum[k] * dtermKM + gbDEdSum[m] * dtermMK) / r);
        });
        gbForce[k] += force;
    });
    double energy = 0.0;
    for (int i = 0; i < n; i++) {
        energy += gbEnergy[i];
        forces[c.gbParticles[i]] += gbForce[i];
        if (c.gbMLIndex[i] >= 0)
            potential[c.gbMLIndex[i]] += gbPotential[i];
    }
    return energy;
}

bool CpuENNElectrostatics::cellListPays(const Vec3* box) const {
    // Binning and sorting cost about as much as testing a few pairs per site (20 where the cells are sorted by
    // comparison: a non-periodic system); each ML atom then tests the sites of its 27 neighbouring cells (all of
    // them, several times over, in a box under 3 cutoffs wide).
    const double numSites = static_cast<double>(sitePos.size()), numML = c.numML;
    double width[3];
    if (box != nullptr)
        latticePlaneSpacings(box, width);
    else {
        Vec3 low = sitePos[0], high = sitePos[0];
        for (const Vec3& p : sitePos)
            for (int k = 0; k < 3; k++) {
                low[k] = std::min(low[k], p[k]);
                high[k] = std::max(high[k], p[k]);
            }
        for (int k = 0; k < 3; k++)
            width[k] = high[k] - low[k];
    }
    double cells = 1.0;
    for (int k = 0; k < 3; k++)
        cells *= std::max(1.0, std::floor(width[k] / c.cutoff));
    const double candidates = std::min(numSites, 27.0 * numSites / cells);
    return numML * (numSites - candidates) > (box != nullptr ? 4.0 : 20.0) * numSites;
}

double CpuENNElectrostatics::coulomb(const Vec3* box, OpenMM::ThreadPool& pool) {
    const int numSites = static_cast<int>(c.sites.size()), numML = c.numML;
    const bool periodic = c.periodic(), pme = c.method == ENNForce::PME, useCutoff = c.useCutoff();
    const bool cellList = useCutoff && (pairSearch == PairSearch::Automatic ? cellListPays(periodic ? box : nullptr)
                                                                             : pairSearch == PairSearch::CellList);
    if (cellList)
        pairs.buildPairs(sitePos, c.cutoff, periodic ? box : nullptr, numML, c.sites, pool);
    // Pair (a, s), a an ML site and s > a, in the block of a: energy k q_a q_s f(r), potentials, forces. A block's
    // arrays over the sites stay zero but where it touched them (listed in `touched`), so a block costs its pairs.
    const double cutoff2 = c.cutoff * c.cutoff;
    const int numBlocks = static_cast<int>(blocks.size());
    parallelFor(pool, numBlocks, [&](int k, int) {
        Block& block = blocks[k];
        block.clear();
        const int first = numML * k / numBlocks, last = numML * (k + 1) / numBlocks;
        for (int a = first; a < last; a++) {
            const double qa = q[a];
            Vec3 forceOnA;
            double phiA = 0.0;
            auto add = [&](int s, const Vec3& d, double r, double f, double dfdr) { // d = x_s - x_a
                block.energy += ONE_4PI_EPS0 * qa * q[s] * f;
                phiA += ONE_4PI_EPS0 * q[s] * f;
                block.touch(s);
                if (s < numML)
                    block.phi[s] += ONE_4PI_EPS0 * qa * f;
                const Vec3 force = d * (ONE_4PI_EPS0 * qa * q[s] * dfdr / r);
                block.force[s] -= force;
                forceOnA += force;
            };
            const int* partnersBegin = exceptions.partner.data() + exceptions.start[a];
            const int* partnersEnd = exceptions.partner.data() + exceptions.start[a + 1];
            auto ordinary = [&](int s) {
                const Vec3 plain = sitePos[s] - sitePos[a];
                const Vec3 d = periodic ? wrapDisplacement(plain, box) : plain;
                const double r2 = d.dot(d);
                if ((useCutoff && r2 >= cutoff2) || (c.mlPairsExcluded && s < numML) || std::binary_search(partnersBegin, partnersEnd, s))
                    return; // beyond the cutoff, or a listed pair
                const double r = std::sqrt(r2);
                double f, dfdr;
                c.ordinaryPair(r, s < numML, f, dfdr);
                add(s, d, r, f, dfdr);
            };
            if (cellList)
                for (int e = pairs.receiverStart[a]; e < pairs.receiverStart[a + 1]; e++)
                    ordinary(pairs.sender[e]);
            else
                for (int s = a + 1; s < numSites; s++)
                    ordinary(s);
            // Listed pairs at their plain distance: excluded ML-ML pairs (only PME leaves anything of them), exceptions.
            auto listed = [&](int s, double scale) {
                const Vec3 d = sitePos[s] - sitePos[a];
                const double r = std::sqrt(d.dot(d));
                double f, dfdr;
                c.listedPair(r, scale, f, dfdr);
                add(s, d, r, f, dfdr);
            };
            if (c.mlPairsExcluded && pme)
                for (int s = a + 1; s < numML; s++)
                    listed(s, 0.0);
            for (int e = exceptions.start[a]; e < exceptions.start[a + 1]; e++)
                if (exceptions.partner[e] > a)
                    listed(exceptions.partner[e], exceptions.scale[e]);
            block.touch(a);
            block.force[a] += forceOnA;
            block.phi[a] += phiA;
        }
    });
    // The blocks summed in block order for every site (so in an order independent of the threads).
    double energy = 0.0;
    for (Block& block : blocks) {
        energy += block.energy;
        for (int s : block.touched) {
            siteForce[s] += block.force[s];
            if (s < numML)
                phi[s] += block.phi[s];
        }
    }
    for (int a = 0; a < numML; a++) { // the model's own Gaussian self energies, in every method
        energy += ONE_4PI_EPS0 * c.gaussianSelfEnergy * q[a] * q[a];
        phi[a] += 2 * ONE_4PI_EPS0 * c.gaussianSelfEnergy * q[a];
    }
    if (pme) {
        const double selfFactor = ONE_4PI_EPS0 * c.alpha / std::sqrt(M_PI);
        for (int a = 0; a < numML; a++) {
            energy -= selfFactor * q[a] * q[a];
            phi[a] -= 2 * selfFactor * q[a];
        }
        energy += reciprocal(box, pool);
        double total = 0.0, mmTotal = 0.0;
        for (int s = 0; s < numSites; s++) {
            total += q[s];
            if (s >= numML)
                mmTotal += q[s];
        }
        energy += neutralizingBackgroundEnergy(total, box, c.alpha) - neutralizingBackgroundEnergy(mmTotal, box, c.alpha);
        const double dBackground = 2 * neutralizingBackgroundEnergy(1.0, box, c.alpha) * total;
        for (int a = 0; a < numML; a++)
            phi[a] += dBackground;
    }
    return energy;
}

void CpuENNElectrostatics::updateInfluence(const Vec3* box, OpenMM::ThreadPool& pool) {
    if (box[0] == influenceBox[0] && box[1] == influenceBox[1] && box[2] == influenceBox[2])
        return;
    const int* K = c.grid;
    parallelFor(pool, K[0], [&](int plane, int) {
        pmeInfluence(box, c.alpha, K, moduli, plane, plane + 1, &influence[size_t(plane) * K[1] * K[2]]);
    });
    for (int d = 0; d < 3; d++)
        influenceBox[d] = box[d];
}

double CpuENNElectrostatics::reciprocal(const Vec3* box, OpenMM::ThreadPool& pool) {
    // E(q) - E(q_MM) = (1/2) <Q_ML, G Q_ML> + <Q_ML, G Q_MM> for the spread grids Q and the influence function G.
    // G is real and even, so with Q = Q_ML + i Q_MM the potential grid G Q holds theta_ML in its real part and
    // theta_MM in its imaginary part. ML sites feel theta_ML + theta_MM; MM sites feel theta_ML only.
    const int* K = c.grid;
    const int numSites = static_cast<int>(sitePos.size()), numML = c.numML;
    const int Order = PMEOrder;
    updateInfluence(box, pool);
    Vec3 recip[3];
    reciprocalVectors(box, recip);
    // Sites sorted by the x plane of their first stencil point (a counting sort, ascending site within a plane), and
    // their stencils stored in that order, so that spreading reads each plane's sites contiguously.
    planeOf.resize(numSites);
    parallelForEach(pool, numSites, SiteChunk, [&](int i) {
        double f;
        planeOf[i] = pmeFirstIndex(sitePos[i], recip[0], K[0], f);
    });
    planeStart.assign(K[0] + 1, 0);
    for (int i = 0; i < numSites; i++)
        planeStart[planeOf[i] + 1]++;
    for (int p = 0; p < K[0]; p++)
        planeStart[p + 1] += planeStart[p];
    planeSites.resize(numSites);
    planeFill.assign(planeStart.begin(), planeStart.end() - 1);
    for (int i = 0; i < numSites; i++)
        planeSites[planeFill[planeOf[i]]++] = i;
    stencilIndex.resize(size_t(numSites) * 3 * Order);
    stencilWeight.resize(stencilIndex.size());
    stencilDerivative.resize(stencilIndex.size());
    parallelForEach(pool, numSites, SiteChunk, [&](int n) {
        const size_t at = size_t(n) * 3 * Order;
        pmeStencil(sitePos[planeSites[n]], recip, K, &stencilIndex[at], &stencilWeight[at], &stencilDerivative[at]);
    });
    // Spreading, one x plane per piece: plane p gets weight j of the sites whose first stencil plane is p + j.
    const size_t planeSize = size_t(K[1]) * K[2];
    double* values = reinterpret_cast<double*>(grid.data()); // (real, imaginary) pairs
    parallelFor(pool, K[0], [&](int p, int) {
        double* plane = values + 2 * planeSize * p;
        std::fill(plane, plane + 2 * planeSize, 0.0);
        for (int j = 0; j < Order; j++) {
            const int bucket = (p + j) % K[0];
            for (int n = planeStart[bucket]; n < planeStart[bucket + 1]; n++) {
                const int i = planeSites[n];
                const size_t b = size_t(n) * 3 * Order;
                const double qx = q[i] * stencilWeight[b + j];
                const int part = i < numML ? 0 : 1;
                for (int c2 = 0; c2 < Order; c2++) {
                    const double qxy = qx * stencilWeight[b + Order + c2];
                    double* row = plane + 2 * size_t(stencilIndex[b + Order + c2]) * K[2] + part;
                    for (int e = 0; e < Order; e++)
                        row[2 * stencilIndex[b + 2 * Order + e]] += qxy * stencilWeight[b + 2 * Order + e];
                }
            }
        }
        fftw_complex* at = reinterpret_cast<fftw_complex*>(plane);
        fftw_execute_dft(planePlans[0], at, at);
    });
    // The 3D transform is planes (y, z) then columns (x); each y row of columns is transformed, multiplied by the
    // influence function (complete once its columns are) and transformed back in one piece; then the planes back.
    fftw_complex* data = reinterpret_cast<fftw_complex*>(grid.data());
    parallelFor(pool, K[1], [&](int y, int) {
        fftw_execute_dft(columnPlans[0], data + size_t(y) * K[2], data + size_t(y) * K[2]);
        for (int x = 0; x < K[0]; x++)
            for (size_t k = (size_t(x) * K[1] + y) * K[2], end = k + K[2]; k < end; k++)
                grid[k] *= influence[k];
        fftw_execute_dft(columnPlans[1], data + size_t(y) * K[2], data + size_t(y) * K[2]);
    });
    parallelFor(pool, K[0], [&](int p, int) { fftw_execute_dft(planePlans[1], data + planeSize * p, data + planeSize * p); });
    siteEnergy.resize(numML);
    parallelForEach(pool, numSites, SiteChunk, [&](int n) {
        // Sums along z for each (x, y) row of the stencil, then weighted by x and y: theta (real part: from ML
        // charges, imaginary: from MM) and its derivatives along the three grid axes. MM sites need the real part only.
        const int i = planeSites[n];
        const size_t b = size_t(n) * 3 * Order;
        const double* wx = &stencilWeight[b];
        const double* wy = &stencilWeight[b + Order];
        const double* wz = &stencilWeight[b + 2 * Order];
        const double* dx = &stencilDerivative[b];
        const double* dy = &stencilDerivative[b + Order];
        const double* dz = &stencilDerivative[b + 2 * Order];
        const int* iz = &stencilIndex[b + 2 * Order];
        const bool ml = i < numML;
        double potentialML = 0.0, potentialMM = 0.0;
        Vec3 gradientML, gradientMM; // d theta / d u along the three grid axes
        for (int a = 0; a < Order; a++)
            for (int c2 = 0; c2 < Order; c2++) {
                const Complex* row = grid.data() + (size_t(stencilIndex[b + a]) * K[1] + stencilIndex[b + Order + c2]) * K[2];
                double rowML = 0.0, rowDzML = 0.0, rowMM = 0.0, rowDzMM = 0.0;
                for (int e = 0; e < Order; e++) {
                    const Complex theta = row[iz[e]];
                    rowML += wz[e] * theta.real();
                    rowDzML += dz[e] * theta.real();
                    if (ml) {
                        rowMM += wz[e] * theta.imag();
                        rowDzMM += dz[e] * theta.imag();
                    }
                }
                const double wxy = wx[a] * wy[c2], dxy = dx[a] * wy[c2], xdy = wx[a] * dy[c2];
                potentialML += wxy * rowML;
                gradientML += Vec3(dxy * rowML, xdy * rowML, wxy * rowDzML);
                if (ml) {
                    potentialMM += wxy * rowMM;
                    gradientMM += Vec3(dxy * rowMM, xdy * rowMM, wxy * rowDzMM);
                }
            }
        const Vec3 gradient = i < numML ? gradientML + gradientMM : gradientML;
        siteForce[i] -= (recip[0] * (gradient[0] * K[0]) + recip[1] * (gradient[1] * K[1]) + recip[2] * (gradient[2] * K[2])) * q[i];
        if (i < numML) {
            phi[i] += potentialML + potentialMM;
            siteEnergy[i] = q[i] * (0.5 * potentialML + potentialMM);
        }
    });
    double energy = 0.0;
    for (int a = 0; a < numML; a++)
        energy += siteEnergy[a];
    return energy;
}
