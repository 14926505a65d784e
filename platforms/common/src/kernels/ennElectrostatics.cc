// Electrostatics of the predicted charges on GPUs (OpenMM's common compute dialect), the device
// counterpart of ReferenceENNElectrostatics: Coulomb (no cutoff, reaction field, or PME real space
// with exceptions), the PME reciprocal sum, and generalized Born OBC2 with the ACE surface term.
// Each kernel gives energies (per site, per k-vector, per GB particle; summed by sumEnergy), forces at
// fixed charges into extraForces (by System particle, real4, kJ/mol/nm) and the potential
// phi_i = dE/dq_i of each ML particle (kJ/mol/e) for the network's chain rule.
// Arithmetic in `real`, energy and potential sums in `mixed`. Units: nm, e, kJ/mol.
//
// Sites: ML particles first (site index = ML index), then MM particles, as ENNCouplingParameters orders them.
// Pair sums visit each pair from both ends (ML sites see every site, MM sites see the ML sites), so
// each thread writes only its own site: no atomics there. With a cutoff (reaction field, PME) the partners
// come from cell lists (CELL_LIST; ennCells.cc): one of every site for the ML sites, one of the ML sites
// for the MM sites, each bucket sorted, so that the sums run in a fixed order; exceptions, which have no
// cutoff, are summed apart. Without one (NoCutoff) every pair is summed. PME charge spreading is the one place with
// atomics: 64-bit integer adds of fixed-point values, whose sum does not depend on their order.

DEVICE void addForce(GLOBAL real4* RESTRICT forces, int atom, real3 f) {
    real4 old = forces[atom];
    forces[atom] = make_real4(old.x + f.x, old.y + f.y, old.z + f.z, 0);
}

/** Positions (nm) and charges of the sites and GB particles from the reordered posq; the ML particles
 *  take their predicted charges. Also clears the per-step outputs (extraForces, potential). */
KERNEL void gatherSites(GLOBAL const real4* RESTRICT posq, GLOBAL const int* RESTRICT atomIndex, GLOBAL const int* RESTRICT siteOfAtom,
        GLOBAL const int* RESTRICT gbOfAtom, int numAtoms, GLOBAL const real* RESTRICT mlCharges, GLOBAL const real* RESTRICT mmCharges,
        GLOBAL const int* RESTRICT gbML, GLOBAL const real* RESTRICT gbCharges, GLOBAL real4* RESTRICT site, GLOBAL real4* RESTRICT gbPos,
        GLOBAL mixed* RESTRICT potential, GLOBAL real4* RESTRICT extraForces) {
    for (int j = GLOBAL_ID; j < numAtoms; j += GLOBAL_SIZE) {
        const int atom = atomIndex[j];
        const real4 p = posq[j];
        extraForces[atom] = make_real4(0, 0, 0, 0);
        const int s = siteOfAtom[atom];
        if (s >= 0)
            site[s] = make_real4(p.x, p.y, p.z, s < NUM_ML ? ML_CHARGE_SCALE * mlCharges[s] : mmCharges[s - NUM_ML]);
        if (s >= 0 && s < NUM_ML)
            potential[s] = 0;
        const int g = gbOfAtom[atom];
        if (g >= 0)
            gbPos[g] = make_real4(p.x, p.y, p.z, gbML[g] >= 0 ? mlCharges[gbML[g]] : gbCharges[g]);
    }
}

/** The minimum image of d in OpenMM's reduced triclinic box (Coulomb's and GB's cutoffs are at most half the box). */
DEVICE real3 wrapDisplacement(real3 d, real4 boxA, real4 boxB, real4 boxC) {
    real k = floor(d.z / boxC.z + (real) 0.5);
    d.x -= k * boxC.x; d.y -= k * boxC.y; d.z -= k * boxC.z;
    k = floor(d.y / boxB.y + (real) 0.5);
    d.x -= k * boxB.x; d.y -= k * boxB.y;
    k = floor(d.x / boxA.x + (real) 0.5);
    d.x -= k * boxA.x;
    return d;
}

#ifdef COULOMB
/** erf(a r)/r and its r-derivative, with the r -> 0 limit 2a/sqrt(pi). */
DEVICE real erfOverR(real a, real r, real* derivative) {
    const real ar = a * r, e = erf(ar);
    if (e <= (real) 1e-6) {
        *derivative = 0;
        return 2 * a / SQRT_PI;
    }
    *derivative = (2 * a / SQRT_PI * exp(-ar * ar) * r - e) / (r * r);
    return e / r;
}

/**
 * One Coulomb pair seen from site s: adds k q_s q_t f(r) / 2 to the energy, k q_t f(r) to the potential
 * and the force on s. f is 1/r (between ML particles of a model whose own Coulomb term is Gaussian-damped
 * erf(r/(sqrt(2) sigma))/r; ML-ML pairs of a model without that term are excluded, as in coulombRange),
 * minus erf(alpha r)/r with PME, plus the reaction field k_rf r^2 - c_rf with a cutoff. An exception
 * is scaled plain Coulomb without cutoff or wrapping, minus erf(alpha r)/r with PME.
 */
DEVICE void coulombPair(int s, int t, real4 ps, real4 pt, int isException, real scale, real4 boxA, real4 boxB, real4 boxC,
        mixed* energy, mixed* phi, real3* force) {
    real3 d = make_real3(pt.x - ps.x, pt.y - ps.y, pt.z - ps.z);
    real f, dfdr, r;
    if (isException) {
        r = sqrt(d.x * d.x + d.y * d.y + d.z * d.z);
        f = scale / r;
        dfdr = -scale / (r * r);
#ifdef PME
        real dg;
        f -= erfOverR(ALPHA, r, &dg);
        dfdr -= dg;
#endif
    }
    else {
#ifdef PERIODIC
        d = wrapDisplacement(d, boxA, boxB, boxC);
#endif
        const real r2 = d.x * d.x + d.y * d.y + d.z * d.z;
#ifdef USE_CUTOFF
        if (r2 >= CUTOFF2)
            return;
#endif
        r = sqrt(r2);
        f = 1 / r;
        dfdr = -1 / r2;
#ifdef GAUSSIAN_S
        if (s < NUM_ML && t < NUM_ML)
            f = erfOverR(GAUSSIAN_S, r, &dfdr);
#endif
#ifdef PME
        real dg;
        f -= erfOverR(ALPHA, r, &dg);
        dfdr -= dg;
#elif defined(USE_CUTOFF)
        f += KRF * r2 - CRF;
        dfdr += 2 * KRF * r;
#endif
#ifdef ML_COULOMB_SCALE
        if (s < NUM_ML && t < NUM_ML) { // the model's own Coulomb constant
            f *= ML_COULOMB_SCALE;
            dfdr *= ML_COULOMB_SCALE;
        }
#endif
    }
    *energy += (mixed) (((real) 0.5 * ONE_4PI_EPS0) * ps.w * pt.w * f);
    *phi += (mixed) (ONE_4PI_EPS0 * pt.w * f);
    // d = x_t - x_s, so the force on s is k q_s q_t f'(r) d / r.
    const real c = ONE_4PI_EPS0 * ps.w * pt.w * dfdr / r;
    force->x += c * d.x;
    force->y += c * d.y;
    force->z += c * d.z;
}

/** Sum over partners t in [first, last) of site s; exceptions (s's list sorted by partner) are walked alongside. */
DEVICE void coulombRange(int s, int first, int last, GLOBAL const real4* RESTRICT site, GLOBAL const int* RESTRICT exceptionStart,
        GLOBAL const int* RESTRICT exceptionPartner, GLOBAL const real* RESTRICT exceptionScale, real4 boxA, real4 boxB, real4 boxC,
        mixed* energy, mixed* phi, real3* force) {
    const real4 ps = site[s];
    int e = exceptionStart[s];
    const int lastException = exceptionStart[s + 1];
    while (e < lastException && exceptionPartner[e] < first)
        e++;
    for (int t = first; t < last; t++) {
        if (t == s)
            continue;
        const int listed = e < lastException && exceptionPartner[e] == t;
        e += listed;
#ifdef ML_PAIRS_EXCLUDED
        // The model's energy has no Coulomb term of its own: its ML-ML pairs are excluded.
        if (s < NUM_ML && t < NUM_ML) {
#ifdef PME
            coulombPair(s, t, ps, site[t], 1, 0, boxA, boxB, boxC, energy, phi, force);
#endif
            continue;
        }
#endif
        coulombPair(s, t, ps, site[t], listed, listed ? exceptionScale[e - 1] : 0, boxA, boxB, boxC, energy, phi, force);
    }
}

#ifdef CELL_LIST
/** Whether (s, t) is in s's exception list (sorted by partner). */
DEVICE int isListed(int s, int t, GLOBAL const int* RESTRICT exceptionStart, GLOBAL const int* RESTRICT exceptionPartner) {
    int first = exceptionStart[s], last = exceptionStart[s + 1];
    while (first < last) {
        const int middle = (first + last) / 2;
        const int p = exceptionPartner[middle];
        if (p == t)
            return 1;
        if (p < t)
            first = middle + 1;
        else
            last = middle;
    }
    return 0;
}

/**
 * The pairs of site s that have a cutoff, from the cell list (bucketSites: the sites, or the ML sites alone, of each
 * bucket, in ascending order) over the cells around s: every partner t (t < maxPartner) within the cutoff that is not
 * an exception (those have no cutoff, and are summed apart) nor an ML-ML pair of a model without its own Coulomb
 * term. Candidate q of the cells' fixed order is taken by thread q mod stride, from `offset`.
 */
DEVICE void coulombCells(int s, int maxPartner, int offset, int stride, GLOBAL const real4* RESTRICT site, GLOBAL const int4* RESTRICT siteCell,
        GLOBAL const int* RESTRICT bucketStart, GLOBAL const int* RESTRICT bucketCount, GLOBAL const int* RESTRICT bucketSites,
        GLOBAL const int* RESTRICT exceptionStart, GLOBAL const int* RESTRICT exceptionPartner, int4 numCells, real4 boxA, real4 boxB, real4 boxC,
        mixed* energy, mixed* phi, real3* force) {
    const real4 ps = site[s];
    const int4 home = siteCell[s];
#ifdef PERIODIC
    const int periodic = 1;
#else
    const int periodic = 0;
#endif
    const int4 reach = cellReach(numCells, periodic);
    const int numAround = (2 * reach.x + 1) * (2 * reach.y + 1) * (2 * reach.z + 1);
    int q = 0;
    for (int k = 0; k < numAround; k++) {
        const int4 cell = cellAround(home, k, reach, numCells, periodic);
        const int bucket = bucketOf(cell);
        const int first = bucketStart[bucket], last = first + bucketCount[bucket];
        for (int slot = first; slot < last; slot++, q++) {
            if (q % stride != offset)
                continue;
            const int t = bucketSites[slot];
            const int4 ct = siteCell[t];
            if (t == s || t >= maxPartner || ct.x != cell.x || ct.y != cell.y || ct.z != cell.z)
                continue;
#ifdef ML_PAIRS_EXCLUDED
            if (s < NUM_ML && t < NUM_ML)
                continue;
#endif
            if (!isListed(s, t, exceptionStart, exceptionPartner))
                coulombPair(s, t, ps, site[t], 0, 0, boxA, boxB, boxC, energy, phi, force);
        }
    }
}

/** The pairs of site s without a cutoff: its exceptions (partners below maxPartner) and, for a model without its own
 *  Coulomb term under PME, the excluded ML-ML pairs' reciprocal-space part; entries offset, offset + stride, ... */
DEVICE void coulombUncut(int s, int maxPartner, int offset, int stride, GLOBAL const real4* RESTRICT site, GLOBAL const int* RESTRICT exceptionStart,
        GLOBAL const int* RESTRICT exceptionPartner, GLOBAL const real* RESTRICT exceptionScale, real4 boxA, real4 boxB, real4 boxC,
        mixed* energy, mixed* phi, real3* force) {
    const real4 ps = site[s];
    for (int e = exceptionStart[s] + offset; e < exceptionStart[s + 1]; e += stride) {
        const int t = exceptionPartner[e];
        if (t >= maxPartner)
            continue;
#ifdef ML_PAIRS_EXCLUDED
        if (s < NUM_ML && t < NUM_ML)
            continue;
#endif
        coulombPair(s, t, ps, site[t], 1, exceptionScale[e], boxA, boxB, boxC, energy, phi, force);
    }
#if defined(ML_PAIRS_EXCLUDED) && defined(PME)
    if (s < NUM_ML)
        for (int t = offset; t < NUM_ML; t += stride)
            if (t != s)
                coulombPair(s, t, ps, site[t], 1, 0, boxA, boxB, boxC, energy, phi, force);
#endif
}
#endif

/** The self terms of an ML charge: the model's Gaussian self energy, and PME's. */
DEVICE void addSelfTerm(real q, mixed* energy, mixed* phi) {
#ifdef GAUSSIAN_SELF
    *energy += (mixed) (ONE_4PI_EPS0 * GAUSSIAN_SELF * q * q);
    *phi += (mixed) (2 * ONE_4PI_EPS0 * GAUSSIAN_SELF * q);
#endif
#ifdef PME
    *energy -= (mixed) (ONE_4PI_EPS0 * ALPHA / SQRT_PI * q * q);
    *phi -= (mixed) (2 * ONE_4PI_EPS0 * ALPHA / SQRT_PI * q);
#endif
}

/**
 * Coulomb sums of the ML sites with every other site: one work group of REDUCE_SIZE threads per ML
 * site, each thread a contiguous range of partners, then a fixed-order tree reduction, so that a few
 * ML atoms among many MM atoms still use the whole device.
 */
KERNEL void coulombML(GLOBAL const real4* RESTRICT site, GLOBAL const int* RESTRICT siteAtom, GLOBAL const int* RESTRICT exceptionStart,
        GLOBAL const int* RESTRICT exceptionPartner, GLOBAL const real* RESTRICT exceptionScale, real4 boxA, real4 boxB, real4 boxC,
        GLOBAL mixed* RESTRICT energyTerms, GLOBAL mixed* RESTRICT potential, GLOBAL real4* RESTRICT extraForces
#ifdef CELL_LIST
        , int4 numCells, GLOBAL const int4* RESTRICT siteCell, GLOBAL const int* RESTRICT bucketStart, GLOBAL const int* RESTRICT bucketCount,
        GLOBAL const int* RESTRICT bucketSites
#endif
        ) {
    LOCAL mixed buffer[REDUCE_SIZE];
    for (int s = GROUP_ID; s < NUM_ML; s += NUM_GROUPS) {
        mixed energy = 0, phi = 0;
        real3 force = make_real3(0, 0, 0);
#ifdef CELL_LIST
        coulombCells(s, NUM_SITES, LOCAL_ID, REDUCE_SIZE, site, siteCell, bucketStart, bucketCount, bucketSites, exceptionStart, exceptionPartner,
                     numCells, boxA, boxB, boxC, &energy, &phi, &force);
        coulombUncut(s, NUM_SITES, LOCAL_ID, REDUCE_SIZE, site, exceptionStart, exceptionPartner, exceptionScale, boxA, boxB, boxC, &energy, &phi, &force);
#else
        const int chunk = (NUM_SITES + REDUCE_SIZE - 1) / REDUCE_SIZE, first = LOCAL_ID * chunk;
        coulombRange(s, first, min(first + chunk, NUM_SITES), site, exceptionStart, exceptionPartner, exceptionScale, boxA, boxB, boxC,
                     &energy, &phi, &force);
#endif
        energy = groupSum(energy, buffer);
        phi = groupSum(phi, buffer);
        force = make_real3((real) groupSum(force.x, buffer), (real) groupSum(force.y, buffer), (real) groupSum(force.z, buffer));
        if (LOCAL_ID == 0) {
            addSelfTerm(site[s].w, &energy, &phi);
            energyTerms[s] = energy;
            potential[s] += phi;
            addForce(extraForces, siteAtom[s], force);
        }
    }
}

/** Coulomb sums of the MM sites with the ML sites: one thread per MM site. */
KERNEL void coulombMM(GLOBAL const real4* RESTRICT site, GLOBAL const int* RESTRICT siteAtom, GLOBAL const int* RESTRICT exceptionStart,
        GLOBAL const int* RESTRICT exceptionPartner, GLOBAL const real* RESTRICT exceptionScale, real4 boxA, real4 boxB, real4 boxC,
        GLOBAL mixed* RESTRICT energyTerms, GLOBAL mixed* RESTRICT potential, GLOBAL real4* RESTRICT extraForces
#ifdef CELL_LIST
        , int4 numCells, GLOBAL const int4* RESTRICT siteCell, GLOBAL const int* RESTRICT bucketStart, GLOBAL const int* RESTRICT bucketCount,
        GLOBAL const int* RESTRICT bucketSites
#endif
        ) {
    for (int s = NUM_ML + GLOBAL_ID; s < NUM_SITES; s += GLOBAL_SIZE) {
        mixed energy = 0, phi = 0;
        real3 force = make_real3(0, 0, 0);
#ifdef CELL_LIST
        // The ML sites' own cell list: an MM site's partners are ML sites.
        coulombCells(s, NUM_ML, 0, 1, site, siteCell, bucketStart, bucketCount, bucketSites, exceptionStart, exceptionPartner, numCells,
                     boxA, boxB, boxC, &energy, &phi, &force);
        coulombUncut(s, NUM_ML, 0, 1, site, exceptionStart, exceptionPartner, exceptionScale, boxA, boxB, boxC, &energy, &phi, &force);
#else
        coulombRange(s, 0, NUM_ML, site, exceptionStart, exceptionPartner, exceptionScale, boxA, boxB, boxC, &energy, &phi, &force);
#endif
        energyTerms[s] = energy;
        addForce(extraForces, siteAtom[s], force);
    }
}
#endif

#ifdef PME
// Smooth PME of order PME_ORDER on a GRID_X x GRID_Y x GRID_Z grid (row-major, z fastest). The ML and
// MM charges are spread onto two fixed-point grids and transformed together as one complex grid
// Z = (ML + MM) + i ML; in k-space both transforms are separated, and the result theta_all + i theta_ML
// gives the potential of all charges (for the ML particles) and of the ML charges alone (for the MM
// particles: the MM-MM part belongs to the NonbondedForce).

KERNEL void pmeSpread(GLOBAL const real4* RESTRICT site, real4 recipA, real4 recipB, real4 recipC, GLOBAL mm_ulong* RESTRICT gridML,
        GLOBAL mm_ulong* RESTRICT gridMM) {
    for (int s = GLOBAL_ID; s < NUM_SITES; s += GLOBAL_SIZE) {
        const real4 p = site[s];
        int base[3];
        real w[3 * PME_ORDER], dw[3 * PME_ORDER];
        meshStencil(p, recipA, recipB, recipC, GRID_X, GRID_Y, GRID_Z, base, w, dw);
        meshSpread(p.w, base, w, GRID_X, GRID_Y, GRID_Z, s < NUM_ML ? gridML : gridMM);
    }
}

/** Z = (ML + MM) + i ML from the fixed-point grids, which are cleared for the next step. */
KERNEL void pmeFinishSpread(GLOBAL mm_long* RESTRICT gridML, GLOBAL mm_long* RESTRICT gridMM, GLOBAL real2* RESTRICT Z) {
    for (int k = GLOBAL_ID; k < GRID_X * GRID_Y * GRID_Z; k += GLOBAL_SIZE) {
        const real ml = (real) (gridML[k] / (mixed) FIXED_SCALE), mm = (real) (gridMM[k] / (mixed) FIXED_SCALE);
        Z[k] = make_real2(ml + mm, ml);
        gridML[k] = 0;
        gridMM[k] = 0;
    }
}

/** One axis of an unnormalised 3D DFT: out[.., m, ..] = sum_j in[.., j, ..] exp(sign 2 pi i m j / size).
 *  twiddle[j] = exp(2 pi i j / size); exact indices (m j mod size) keep the phases accurate. */
KERNEL void dftAxis(GLOBAL const real2* RESTRICT in, GLOBAL real2* RESTRICT out, GLOBAL const real2* RESTRICT twiddle, int size, int stride,
        int sign) {
    for (int k = GLOBAL_ID; k < GRID_X * GRID_Y * GRID_Z; k += GLOBAL_SIZE) {
        const int m = (k / stride) % size;
        const int first = k - m * stride;
        real re = 0, im = 0;
        int phase = 0;
        for (int j = 0; j < size; j++) {
            const real2 x = in[first + j * stride];
            const real2 t = twiddle[phase];
            const real ts = sign * t.y;
            re += x.x * t.x - x.y * ts;
            im += x.x * ts + x.y * t.x;
            phase += m;
            if (phase >= size)
                phase -= size;
        }
        out[k] = make_real2(re, im);
    }
}

/** exp(-pi^2 m^2 / alpha^2) / m^2 at the wave vector m of grid index (kx, ky, kz) (indices above half the grid are
 *  negative frequencies). */
DEVICE real ewaldKernel(int kx, int ky, int kz, real4 recipA, real4 recipB, real4 recipC) {
    const int mx = kx <= GRID_X / 2 ? kx : kx - GRID_X, my = ky <= GRID_Y / 2 ? ky : ky - GRID_Y, mz = kz <= GRID_Z / 2 ? kz : kz - GRID_Z;
    const real3 m = make_real3(recipA.x * mx + recipB.x * my + recipC.x * mz, recipA.y * mx + recipB.y * my + recipC.y * mz,
                               recipA.z * mx + recipB.z * my + recipC.z * mz);
    const real m2 = m.x * m.x + m.y * m.y + m.z * m.z;
    return exp(-PI_SQUARED_OVER_ALPHA_SQUARED * m2) / m2;
}

/**
 * The reciprocal-space convolution: with A = FT(ML + MM) and B = FT(ML) separated from Z, writes
 * W = g (A + i B) and the energy (1/2) g (|A|^2 - |A - B|^2), where g(m) = k exp(-pi^2 m^2 / alpha^2) /
 * (pi V m^2) divided by the B-spline moduli.
 */
KERNEL void pmeConvolve(GLOBAL const real2* RESTRICT Z, GLOBAL const real* RESTRICT moduli, real4 recipA, real4 recipB, real4 recipC,
        real prefactor, GLOBAL real2* RESTRICT W, GLOBAL mixed* RESTRICT energyTerms) {
    for (int k = GLOBAL_ID; k < GRID_X * GRID_Y * GRID_Z; k += GLOBAL_SIZE) {
        const int kx = k / (GRID_Y * GRID_Z), ky = (k / GRID_Z) % GRID_Y, kz = k % GRID_Z;
        if (k == 0) {
            W[0] = make_real2(0, 0);
            energyTerms[PME_ENERGY_OFFSET] = 0;
            continue;
        }
        const int nx = kx == 0 ? 0 : GRID_X - kx, ny = ky == 0 ? 0 : GRID_Y - ky, nz = kz == 0 ? 0 : GRID_Z - kz;
        const real2 z = Z[k], zn = Z[(nx * GRID_Y + ny) * GRID_Z + nz];
        // FT of a real grid X satisfies X(-k) = conj X(k): A = (z + conj zn) / 2, B = (z - conj zn) / 2i.
        const real2 a = make_real2((z.x + zn.x) / 2, (z.y - zn.y) / 2);
        const real2 b = make_real2((z.y + zn.y) / 2, -(z.x - zn.x) / 2);
        // The kernel made even in k (as pmeInfluence): the mean at the wave vectors of k and -k, which differ at the
        // Nyquist indices of a triclinic box; an odd part would mix theta_all into theta_ML.
        const real g = prefactor * (real) 0.5 * (ewaldKernel(kx, ky, kz, recipA, recipB, recipC) + ewaldKernel(nx, ny, nz, recipA, recipB, recipC)) /
                       (moduli[kx] * moduli[GRID_X + ky] * moduli[GRID_X + GRID_Y + kz]);
        const real2 mm = make_real2(a.x - b.x, a.y - b.y);
        energyTerms[PME_ENERGY_OFFSET + k] = (mixed) (g / 2) * ((mixed) (a.x * a.x + a.y * a.y) - (mixed) (mm.x * mm.x + mm.y * mm.y));
        W[k] = make_real2(g * (a.x - b.y), g * (a.y + b.x));
    }
}

/** Potential and force of each site from theta = theta_all + i theta_ML (after the inverse transform). */
KERNEL void pmeInterpolate(GLOBAL const real4* RESTRICT site, GLOBAL const int* RESTRICT siteAtom, GLOBAL const real2* RESTRICT theta,
        real4 recipA, real4 recipB, real4 recipC, GLOBAL mixed* RESTRICT potential, GLOBAL real4* RESTRICT extraForces) {
    for (int s = GLOBAL_ID; s < NUM_SITES; s += GLOBAL_SIZE) {
        const real4 p = site[s];
        int base[3];
        real w[3 * PME_ORDER], dw[3 * PME_ORDER];
        real3 g;
        meshStencil(p, recipA, recipB, recipC, GRID_X, GRID_Y, GRID_Z, base, w, dw);
        const real phi = meshInterpolate(base, w, dw, recipA, recipB, recipC, GRID_X, GRID_Y, GRID_Z, (GLOBAL const real*) theta, 2,
                                         s < NUM_ML ? 0 : 1, &g);
        if (s < NUM_ML)
            potential[s] += phi;
        addForce(extraForces, siteAtom[s], make_real3(-p.w * g.x, -p.w * g.y, -p.w * g.z));
    }
}

#ifdef LATENT_CHARGES
/** Latent (unconstrained) ML charges: the neutralizing background E_bg(Q_ML + Q_MM) - E_bg(Q_MM), E_bg(Q) = c Q^2,
 *  with Q_ML summed here, and its potential 2 c (Q_ML + Q_MM) on every ML charge; one work group. */
KERNEL void pmeLatentBackground(GLOBAL const real4* RESTRICT site, mixed mmTotal, mixed coefficient, GLOBAL mixed* RESTRICT potential,
        GLOBAL mixed* RESTRICT energyTerms) {
    LOCAL mixed buffer[REDUCE_SIZE];
    mixed sum = 0;
    for (int s = LOCAL_ID; s < NUM_ML; s += REDUCE_SIZE)
        sum += site[s].w;
    const mixed total = groupSum(sum, buffer) + mmTotal;
    for (int s = LOCAL_ID; s < NUM_ML; s += REDUCE_SIZE)
        potential[s] += 2 * coefficient * total;
    if (LOCAL_ID == 0)
        energyTerms[BACKGROUND_ENERGY_OFFSET] = coefficient * (total * total - mmTotal * mmTotal);
}
#endif
#endif

#if NUM_GB > 0
// Generalized Born over the GB particles: HCT integrals (plus GBn/GBn2's neck), rescaled by tanh
// (GB_TANH: OBC1/OBC2/GBn/GBn2) or not (HCT). params: (radius, radius - offset, (radius - offset) * scale,
// neck index); tanhParams: (alpha, beta, gamma, 0); neck: (m0, d0) of neck-index pair (a, b) at a + NECK_SIZE b.
// Without a cutoff every pair is summed; with one (GB_CUTOFF2, GB_SHIFT = 1/cutoff) the partners come from a cell
// list of the GB particles (ennCells.cc; gbCell, gbBucket*), each bucket sorted, and pairs take the nearest image
// with GB_PERIODIC.

/** Twice the integral of particle j's scaled sphere (and neck) seen from particle i at distance r, and its r-derivative. */
DEVICE real hctTerm(real4 pi, real4 pj, GLOBAL const real2* RESTRICT neck, real r, real* dterm) {
    const real ri = pi.y, sj = pj.z;
    real term = 0;
    *dterm = 0;
#ifdef NECK_SIZE
    if (r < pi.x + pj.x + NECK_CUT) {
        const real2 md = neck[(int) pi.w + NECK_SIZE * (int) pj.w];
        const real x = r - md.y, x2 = x * x, x5 = x2 * x2 * x;
        const real denominator = 1 + 100 * x2 + (real) 0.3e6 * x5 * x;
        term = 2 * NECK_SCALE * md.x / denominator;
        *dterm = -2 * NECK_SCALE * md.x * (200 * x + (real) 1.8e6 * x5) / (denominator * denominator);
    }
#endif
    if (ri >= r + sj)
        return term;
    const int inner = ri >= fabs(r - sj);
    const real l = 1 / (inner ? ri : fabs(r - sj)), u = 1 / (r + sj);
    const real dl = inner ? 0 : -(r > sj ? 1 : -1) * l * l, du = -u * u;
    const real l2 = l * l, u2 = u * u, logRatio = log(u / l);
    term += l - u + (real) 0.25 * r * (u2 - l2) + (real) 0.5 / r * logRatio + (real) 0.25 * sj * sj / r * (l2 - u2);
    *dterm += dl - du + (real) 0.25 * (u2 - l2) + (real) 0.5 * r * (u * du - l * dl) - (real) 0.5 / (r * r) * logRatio +
              (real) 0.5 / r * (du / u - dl / l) - (real) 0.25 * sj * sj / (r * r) * (l2 - u2) + (real) 0.5 * sj * sj / r * (l * dl - u * du);
#ifdef GB_BURIED_ATOM_TERM
    if (ri < sj - r) {
        term += 2 * (1 / ri - l);
        *dterm -= 2 * dl;
    }
#endif
    return term;
}

/** The GB pair function P(f) = S(f) (1/f - shift), S(f) = -k (1/eps_in - exp(-kappa f)/eps_out), and dP/df; shift is
 *  GB_SHIFT (1/cutoff) for pairs i != j with a cutoff, 0 otherwise (ENNCouplingParameters::gbPair). */
DEVICE real gbPair(real f, real shift, real* dPdf) {
#ifdef GB_KAPPA
    const real screened = exp(-(real) GB_KAPPA * f), dSdf = -(real) GB_COULOMB * (real) GB_KAPPA * screened * (real) GB_SOLVENT_INVERSE;
#else
    const real screened = 1, dSdf = 0;
#endif
    const real S = -(real) GB_COULOMB * ((real) GB_SOLUTE_INVERSE - screened * (real) GB_SOLVENT_INVERSE);
    *dPdf = dSdf * (1 / f - shift) - S / (f * f);
    return S * (1 / f - shift);
}

/** x_j - x_i of two GB particles: the nearest image with GB_PERIODIC. */
DEVICE real3 gbDisplacement(real4 pi, real4 pj, real4 boxA, real4 boxB, real4 boxC) {
    const real3 d = make_real3(pj.x - pi.x, pj.y - pi.y, pj.z - pi.z);
#ifdef GB_PERIODIC
    return wrapDisplacement(d, boxA, boxB, boxC);
#else
    return d;
#endif
}

#ifdef GB_CUTOFF2
#ifdef GB_PERIODIC
#define GB_PERIODIC_FLAG 1
#else
#define GB_PERIODIC_FLAG 0
#endif
/** Runs the statements that follow it (__VA_ARGS__) with j = each partner of GB particle i that this thread takes:
 *  the particles in the cells around i's, candidate q (in the cells' fixed order) taken by thread q mod REDUCE_SIZE.
 *  The statements test the cutoff themselves. */
#define FOR_EACH_GB_PARTNER(i, j, ...) { \
    const int4 home_ = gbCell[i], reach_ = cellReach(gbNumCells, GB_PERIODIC_FLAG); \
    const int around_ = (2 * reach_.x + 1) * (2 * reach_.y + 1) * (2 * reach_.z + 1); \
    int q_ = 0; \
    for (int k_ = 0; k_ < around_; k_++) { \
        const int4 cell_ = cellAround(home_, k_, reach_, gbNumCells, GB_PERIODIC_FLAG); \
        const int first_ = gbBucketStart[bucketOf(cell_)], last_ = first_ + gbBucketCount[bucketOf(cell_)]; \
        for (int slot_ = first_; slot_ < last_; slot_++, q_++) { \
            const int j = gbBucketNodes[slot_]; \
            const int4 cj_ = gbCell[j]; \
            if (q_ % REDUCE_SIZE != LOCAL_ID || j == i || cj_.x != cell_.x || cj_.y != cell_.y || cj_.z != cell_.z) \
                continue; \
            __VA_ARGS__ \
        } \
    } \
}
#define GB_CELL_ARGS , int4 gbNumCells, GLOBAL const int4* RESTRICT gbCell, GLOBAL const int* RESTRICT gbBucketStart, \
        GLOBAL const int* RESTRICT gbBucketCount, GLOBAL const int* RESTRICT gbBucketNodes
#define GB_WITHIN(r2) ((r2) <= (real) GB_CUTOFF2)
#else
/** Every partner j != i, thread k taking one contiguous range. */
#define FOR_EACH_GB_PARTNER(i, j, ...) { \
    const int chunk_ = (NUM_GB + REDUCE_SIZE - 1) / REDUCE_SIZE, first_ = LOCAL_ID * chunk_, last_ = min(first_ + chunk_, NUM_GB); \
    for (int j = first_; j < last_; j++) { \
        if (j == i) \
            continue; \
        __VA_ARGS__ \
    } \
}
#define GB_CELL_ARGS
#define GB_WITHIN(r2) 1
#endif

#ifdef GB_CUTOFF2
#define GB_SHIFT_OF_PAIRS ((real) GB_SHIFT)
#else
#define GB_SHIFT_OF_PAIRS ((real) 0)
#endif

// Each GB kernel runs a work group of REDUCE_SIZE threads per particle i; the threads share out i's partners
// (FOR_EACH_GB_PARTNER), and the group sums in a fixed order.

/** Born radius R_i and dR_i/d(sum_j term_ij) of each GB particle. */
KERNEL void gbBornRadii(GLOBAL const real4* RESTRICT pos, GLOBAL const real4* RESTRICT params, GLOBAL const real4* RESTRICT tanhParams,
        GLOBAL const real2* RESTRICT neck, GLOBAL real* RESTRICT born, GLOBAL real* RESTRICT chain, real4 boxA, real4 boxB, real4 boxC GB_CELL_ARGS) {
    LOCAL mixed buffer[REDUCE_SIZE];
    for (int i = GROUP_ID; i < NUM_GB; i += NUM_GROUPS) {
        const real4 pi = pos[i], qi = params[i];
        real partial = 0, unused;
        FOR_EACH_GB_PARTNER(i, j,
            const real3 d = gbDisplacement(pi, pos[j], boxA, boxB, boxC);
            const real r2 = d.x * d.x + d.y * d.y + d.z * d.z;
            if (GB_WITHIN(r2))
                partial += hctTerm(qi, params[j], neck, sqrt(r2), &unused);
        )
        const real sum = (real) groupSum(partial, buffer);
        if (LOCAL_ID == 0) {
#ifdef GB_TANH
            const real4 abg = tanhParams[i];
            const real psi = (real) 0.5 * qi.y * sum;
            const real t = tanh(abg.x * psi - abg.y * psi * psi + abg.z * psi * psi * psi);
            const real R = 1 / (1 / qi.y - t / qi.x);
            born[i] = R;
            chain[i] = R * R * (1 - t * t) * (abg.x - 2 * abg.y * psi + 3 * abg.z * psi * psi) / qi.x * (real) 0.5 * qi.y;
#else
            const real R = 1 / (1 / qi.y - (real) 0.5 * sum);
            born[i] = R;
            chain[i] = (real) 0.5 * R * R;
#endif
        }
    }
}

/**
 * Each particle's share of the GB energy (1/2) sum_ij P q_i q_j plus its ACE term, its potential sum_j P q_j, its
 * force at fixed Born radii, and dE/d(sum_i) for the Born-radius forces.
 */
KERNEL void gbPairs(GLOBAL const real4* RESTRICT pos, GLOBAL const real4* RESTRICT params, GLOBAL const real* RESTRICT born,
        GLOBAL const real* RESTRICT chain, GLOBAL mixed* RESTRICT energyTerms, GLOBAL real* RESTRICT dEdSum, GLOBAL real4* RESTRICT gbForce,
        GLOBAL mixed* RESTRICT gbPotential, real4 boxA, real4 boxB, real4 boxC GB_CELL_ARGS) {
    LOCAL mixed buffer[REDUCE_SIZE];
    for (int i = GROUP_ID; i < NUM_GB; i += NUM_GROUPS) {
        const real4 pi = pos[i];
        const real Ri = born[i];
        mixed energy = 0, phi = 0;
        real dEdR = 0;
        real3 force = make_real3(0, 0, 0);
        if (LOCAL_ID == 0) { // the self term: f = R_i, no shift
            real dPdf;
            const real P = gbPair(Ri, 0, &dPdf);
            energy += (mixed) ((real) 0.5 * P * pi.w * pi.w);
            phi += (mixed) (P * pi.w);
            dEdR += (real) 0.5 * dPdf * pi.w * pi.w;
        }
        FOR_EACH_GB_PARTNER(i, j,
            const real4 pj = pos[j];
            const real3 d = gbDisplacement(pi, pj, boxA, boxB, boxC);
            const real r2 = d.x * d.x + d.y * d.y + d.z * d.z;
            if (!GB_WITHIN(r2))
                continue;
            // f^2 = r^2 + R_i R_j exp(-r^2 / 4 R_i R_j); the pair enters E as P(f) q_i q_j.
            const real rr = Ri * born[j], D = r2 / (4 * rr), e = exp(-D);
            const real f = sqrt(r2 + rr * e);
            real dPdf;
            const real P = gbPair(f, GB_SHIFT_OF_PAIRS, &dPdf);
            energy += (mixed) ((real) 0.5 * P * pi.w * pj.w);
            phi += (mixed) (P * pj.w);
            const real dEdf = dPdf * pi.w * pj.w;
            dEdR += dEdf * e * (1 + D) / (2 * f) * born[j];
            const real c = dEdf * (1 - (real) 0.25 * e) / f; // the force on i is c (x_j - x_i)
            force.x += c * d.x;
            force.y += c * d.y;
            force.z += c * d.z;
        )
        energy = groupSum(energy, buffer);
        phi = groupSum(phi, buffer);
        dEdR = (real) groupSum(dEdR, buffer);
        force = make_real3((real) groupSum(force.x, buffer), (real) groupSum(force.y, buffer), (real) groupSum(force.z, buffer));
        if (LOCAL_ID == 0) {
            const real radius = params[i].x, ratio = radius / Ri, ratio3 = ratio * ratio * ratio;
            const real sa = SURFACE_FACTOR * (radius + ACE_PROBE) * (radius + ACE_PROBE) * ratio3 * ratio3;
            energyTerms[GB_ENERGY_OFFSET + i] = energy + sa;
            gbPotential[i] = phi;
            dEdSum[i] = (dEdR - 6 * sa / Ri) * chain[i];
            gbForce[i] = make_real4(force.x, force.y, force.z, 0);
        }
    }
}

/** Adds the forces through the Born radii, then each particle's GB force and potential to the outputs. */
KERNEL void gbBornForces(GLOBAL const real4* RESTRICT pos, GLOBAL const real4* RESTRICT params, GLOBAL const real2* RESTRICT neck,
        GLOBAL const real* RESTRICT dEdSum,
        GLOBAL const real4* RESTRICT gbForce, GLOBAL const mixed* RESTRICT gbPotential, GLOBAL const int* RESTRICT gbAtom,
        GLOBAL const int* RESTRICT gbML, GLOBAL mixed* RESTRICT potential, GLOBAL real4* RESTRICT extraForces,
        real4 boxA, real4 boxB, real4 boxC GB_CELL_ARGS) {
    LOCAL mixed buffer[REDUCE_SIZE];
    for (int i = GROUP_ID; i < NUM_GB; i += NUM_GROUPS) {
        const real4 pi = pos[i], qi = params[i];
        real3 force = make_real3(0, 0, 0);
        FOR_EACH_GB_PARTNER(i, k,
            const real4 qk = params[k];
            const real3 d = gbDisplacement(pi, pos[k], boxA, boxB, boxC);
            const real r2 = d.x * d.x + d.y * d.y + d.z * d.z;
            if (!GB_WITHIN(r2))
                continue;
            const real r = sqrt(r2);
            real dik, dki;
            hctTerm(qi, qk, neck, r, &dik);
            hctTerm(qk, qi, neck, r, &dki);
            const real c = (dEdSum[i] * dik + dEdSum[k] * dki) / r;
            force.x += c * d.x;
            force.y += c * d.y;
            force.z += c * d.z;
        )
        force = make_real3((real) groupSum(force.x, buffer), (real) groupSum(force.y, buffer), (real) groupSum(force.z, buffer));
        if (LOCAL_ID == 0) {
            const real4 direct = gbForce[i];
            addForce(extraForces, gbAtom[i], make_real3(force.x + direct.x, force.y + direct.y, force.z + direct.z));
            if (gbML[i] >= 0)
                potential[gbML[i]] += gbPotential[i];
        }
    }
}
#endif
