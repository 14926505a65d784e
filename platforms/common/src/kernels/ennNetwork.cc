// The ENNForce network on GPUs, in OpenMM's common compute dialect (compiled at run time for CUDA
// and OpenCL). `real` is float in single and mixed precision and double in double precision.
// Every kernel loops over its index range with a grid stride (the node programs over nodes, a work group
// each), so any launch size is valid.
// Every output element is written by exactly one thread, in a fixed order, so results are identical
// from run to run; the only atomics are the cell list's integer counters, and each receiver's edges
// are sorted afterwards.
//
// Defines: NSH (number of spherical harmonics, (l_max+1)^2), NUM_SH_TERMS (entries of the harmonics
// recursion), NUM_BESSEL, ENVELOPE_P, R_MAX, BESSEL_PREFACTOR, MAX_WIDTH (widest hidden layer of
// any radial MLP), REDUCE_SIZE (ennReduce.cc), NUM_BUCKETS (cell hash table, a power of two),
// OP_WORDS and OP_* (node programs, below), WEIGHT_STRIDE (radial outputs per edge slot), NUM_ELEMENTS, APPLY_CUTOFF
// (MACE's apply_cutoff: the envelope on the radial basis rather than on the radial outputs); for MACE's
// materials blocks AGNESI_TRANSFORM with AGNESI_A, AGNESI_Q, AGNESI_P, or SOFT_TRANSFORM with SOFT_ALPHA, and
// COVALENT_RADII_START (in the reals table),
// and ZBL_C0..3, ZBL_E0..3, ZBL_P, ZBL_ENVELOPE(u), ZBL_ENVELOPE_DU(u) (the ZBL pair repulsion).
//
// Edges live in fixed-capacity slots: the edges of receiver i are slots [i*cap, i*cap + count[i]).
// Edge vector = x[receiver] - image of x[sender], stored as (x, y, z, |v|).

DEVICE real activation(int kind, real scale, real x, real* derivative) {
    if (kind == 2) { // sigmoid
        real s = 1 / (1 + exp(-x));
        *derivative = scale * s * (1 - s);
        return scale * s;
    }
    if (kind == 0) { // SiLU
        real s = 1 / (1 + exp(-x));
        *derivative = scale * s * (1 + x * (1 - s));
        return scale * x * s;
    }
    real t = tanh(x);
    *derivative = scale * (1 - t * t);
    return scale * t;
}

/** Spherical harmonics of the direction u by the model's own recursion Y_l = norm C(1,l-1,l) Y_1 Y_{l-1};
 *  with du != 0, also dY/du (unprojected). terms: (index of Y_1 entry, index of Y_{l-1} entry, target).
 *  HARMONICS_OF_YZX (PolarMACE): the harmonics of (u.y, u.z, u.x), dY/du still with respect to (x, y, z). */
DEVICE void harmonics(real3 u, GLOBAL const int* shIndex, GLOBAL const real* shValue, real* y, real* du, int wantDerivative) {
#ifdef HARMONICS_OF_YZX
    u = make_real3(u.y, u.z, u.x);
#endif
    for (int k = 0; k < NSH; k++) {
        y[k] = 0;
        if (wantDerivative)
            du[3 * k] = du[3 * k + 1] = du[3 * k + 2] = 0;
    }
    y[0] = 1;
#if NSH > 1
    const real s3 = sqrt((real) 3);
    y[1] = s3 * u.x;
    y[2] = s3 * u.y;
    y[3] = s3 * u.z;
    if (wantDerivative) {
        du[3] = s3;
        du[7] = s3;
        du[11] = s3;
    }
#endif
    for (int t = 0; t < NUM_SH_TERMS; t++) {
        const int a = shIndex[3 * t], b = shIndex[3 * t + 1], c = shIndex[3 * t + 2];
        const real v = shValue[t];
        y[c] += v * y[a] * y[b];
        if (wantDerivative)
            for (int d = 0; d < 3; d++)
                du[3 * c + d] += v * (du[3 * a + d] * y[b] + y[a] * du[3 * b + d]);
    }
#ifdef HARMONICS_OF_YZX
    if (wantDerivative) // d/d(y, z, x) back to d/d(x, y, z)
        for (int k = 0; k < NSH; k++) {
            const real dy = du[3 * k], dz = du[3 * k + 1], dx = du[3 * k + 2];
            du[3 * k] = dx;
            du[3 * k + 1] = dy;
            du[3 * k + 2] = dz;
        }
#endif
}

/** Positions of the ML particles in the model's length unit, in ML order, from the reordered posq. */
KERNEL void gatherPositions(GLOBAL const real4* RESTRICT posq, GLOBAL const int* RESTRICT atomIndex, GLOBAL const int* RESTRICT mlOfAtom,
        int numAtoms, real toModel, GLOBAL real4* RESTRICT pos, real maxCoordinate, GLOBAL int* RESTRICT status) {
    for (int j = GLOBAL_ID; j < numAtoms; j += GLOBAL_SIZE) {
        const int i = mlOfAtom[atomIndex[j]];
        if (i >= 0) {
            real4 p = posq[j];
            pos[i] = make_real4(p.x * toModel, p.y * toModel, p.z * toModel, 0);
            if (fabs(p.x) > maxCoordinate || fabs(p.y) > maxCoordinate || fabs(p.z) > maxCoordinate) {
                status[3] = 1; // a blown-up simulation: the host names the particle
                status[5] = i;
            }
        }
    }
}

// ---- Neighbour search through cells (the cell list: ennCells.cc) ----

/** All pairs within the cutoff, per receiver, from the cells around it. Periodic boxes are in OpenMM's
 *  reduced triclinic form. Each pair vector is first brought to lattice coordinates in [-1/2, 1/2]; then
 *  the images n in [-images, images] of each box vector are visited (images = floor(cutoff / plane
 *  spacing + 1/2), zero unless the box is narrower than twice the cutoff). status[0]: capacity exceeded,
 *  status[1]: a non-finite position, status[2]: two atoms at the same position. The host reads the
 *  status only after the whole step is queued, so the step must run safely when the list overflowed:
 *  count is clamped to the capacity (needed keeps the true number, for resizing). */
KERNEL void findNeighbors(GLOBAL const real4* RESTRICT pos, int numNodes, int cap, real cutoff2, int periodic,
        real4 boxA, real4 boxB, real4 boxC, int imagesA, int imagesB, int imagesC, int4 numCells,
        GLOBAL const int4* RESTRICT cellOfNode, GLOBAL const int* RESTRICT bucketStart, GLOBAL const int* RESTRICT bucketCount,
        GLOBAL const int* RESTRICT bucketNodes, GLOBAL int* RESTRICT count, GLOBAL int* RESTRICT needed, GLOBAL int* RESTRICT sender,
        GLOBAL real4* RESTRICT edgeVec, GLOBAL int* RESTRICT edgeKey, GLOBAL int* RESTRICT status) {
    const int numImages = (2 * imagesA + 1) * (2 * imagesB + 1) * (2 * imagesC + 1);
    const int4 reach = cellReach(numCells, periodic);
    const int numAround = (2 * reach.x + 1) * (2 * reach.y + 1) * (2 * reach.z + 1);
    for (int i = GLOBAL_ID; i < numNodes; i += GLOBAL_SIZE) {
        const real4 pi = pos[i];
        if (!(isfinite(pi.x) && isfinite(pi.y) && isfinite(pi.z)))
            status[1] = 1;
        const int4 home = cellOfNode[i];
        int n = 0;
        for (int around = 0; around < numAround; around++) {
            const int4 cell = cellAround(home, around, reach, numCells, periodic);
            const int bucket = bucketOf(cell);
            for (int slot = bucketStart[bucket]; slot < bucketStart[bucket] + bucketCount[bucket]; slot++) {
                const int j = bucketNodes[slot];
                const int4 cj = cellOfNode[j];
                if (cj.x != cell.x || cj.y != cell.y || cj.z != cell.z)
                    continue;
                const real4 pj = pos[j];
                real3 v = make_real3(pi.x - pj.x, pi.y - pj.y, pi.z - pj.z);
                if (periodic) {
                    const real sc = round(v.z / boxC.z);
                    const real sb = round((v.y - v.z / boxC.z * boxC.y) / boxB.y);
                    const real sa = round((v.x - (v.y - v.z / boxC.z * boxC.y) / boxB.y * boxB.x - v.z / boxC.z * boxC.x) / boxA.x);
                    v -= trimTo3(boxA) * sa + trimTo3(boxB) * sb + trimTo3(boxC) * sc;
                }
                int image = 0;
                for (int a = -imagesA; a <= imagesA; a++)
                    for (int b = -imagesB; b <= imagesB; b++)
                        for (int c = -imagesC; c <= imagesC; c++, image++) {
                            if (j == i && a == 0 && b == 0 && c == 0)
                                continue;
                            const real3 w = v + trimTo3(boxA) * (real) a + trimTo3(boxB) * (real) b + trimTo3(boxC) * (real) c;
                            const real r2 = w.x * w.x + w.y * w.y + w.z * w.z;
                            if (r2 >= cutoff2)
                                continue;
                            if (r2 == 0)
                                status[2] = 1;
                            if (n < cap) {
                                sender[i * cap + n] = j;
                                edgeVec[i * cap + n] = make_real4(w.x, w.y, w.z, sqrt(r2));
                                edgeKey[i * cap + n] = j * numImages + image;
                            }
                            n++;
                        }
            }
        }
        // Insertion sort by (sender, image): the order of a plain loop over senders and images.
        const int kept = min(n, cap);
        for (int k = 1; k < kept; k++) {
            const int e = i * cap + k, key = edgeKey[e], s = sender[e];
            const real4 vec = edgeVec[e];
            int m = k - 1;
            while (m >= 0 && edgeKey[i * cap + m] > key) {
                edgeKey[i * cap + m + 1] = edgeKey[i * cap + m];
                sender[i * cap + m + 1] = sender[i * cap + m];
                edgeVec[i * cap + m + 1] = edgeVec[i * cap + m];
                m--;
            }
            edgeKey[i * cap + m + 1] = key;
            sender[i * cap + m + 1] = s;
            edgeVec[i * cap + m + 1] = vec;
        }
        count[i] = kept;
        needed[i] = n;
        if (n > cap)
            status[0] = 1;
    }
}

/** The slot of the edge j <- i with the vector opposite to edge e = i <- j (slot of receiver i). */
DEVICE int reverseEdge(int e, int i, GLOBAL const int* RESTRICT count, GLOBAL const int* RESTRICT sender, GLOBAL const real4* RESTRICT edgeVec,
        int cap) {
    const int j = sender[e];
    const real4 v = edgeVec[e];
    int best = -1;
    real bestDistance = 0;
    for (int k = 0; k < count[j]; k++) {
        const int e2 = j * cap + k;
        if (sender[e2] != i)
            continue;
        const real4 w = edgeVec[e2];
        const real d = (v.x + w.x) * (v.x + w.x) + (v.y + w.y) * (v.y + w.y) + (v.z + w.z) * (v.z + w.z);
        if (best < 0 || d < bestDistance) {
            best = e2;
            bestDistance = d;
        }
    }
    return best;
}

// ---- Node programs ----
// Everything the network does between two global synchronisations is one launch of nodeProgram: a work group per
// node runs a list of operations (`ops`, OP_WORDS ints each: the kind, then its parameters) in order, with a barrier
// between them, on that node's rows of the node arrays and that node's edge slots. Node arrays ([node][feature],
// real) are slices of one buffer, `data`, named by their offsets; an operation reads other nodes' rows only when they
// were written by an earlier launch (the convolution's senders, the backward convolution's receivers). The kinds
// (OP_*) are defines from the host's enum (CommonENNNetwork::Op). Threads of the group take the node's outputs in
// turn; every output element still has one writer and every sum a fixed order.

/** For each of the node's edges, its reverse edge and its spherical harmonics; every slot's gradients with respect
 *  to the harmonics and the length, which the layers' backward passes add to, are cleared. */
DEVICE void nodeEdgeGeometry(int n, GLOBAL const int* RESTRICT count, GLOBAL const int* RESTRICT sender,
        GLOBAL const real4* RESTRICT edgeVec, int cap, GLOBAL int* RESTRICT reverse, GLOBAL const int* RESTRICT shIndex,
        GLOBAL const real* RESTRICT shValue, GLOBAL real* RESTRICT sh, GLOBAL real* RESTRICT gradSh, GLOBAL real* RESTRICT gradR) {
    real y[NSH], du[3 * NSH];
    for (int k = LOCAL_ID; k < cap; k += LOCAL_SIZE) {
        const int e = n * cap + k;
        for (int m = 0; m < NSH; m++)
            gradSh[e * NSH + m] = 0;
        gradR[e] = 0;
        if (k >= count[n])
            continue;
        reverse[e] = reverseEdge(e, n, count, sender, edgeVec, cap);
        const real4 v = edgeVec[e];
        harmonics(make_real3(v.x / v.w, v.y / v.w, v.z / v.w), shIndex, shValue, y, du, 0);
        for (int m = 0; m < NSH; m++)
            sh[e * NSH + m] = y[m];
    }
}

/** The argument of the radial basis for an edge between elements a and b at distance r: r itself, or MACE's Agnesi
 *  transform of it (AgnesiTransform), y = 1 / (1 + A x^Q / (1 + x^(Q-P))), x = r / r0, r0 the mean of the covalent radii; sets dy/dr. */
DEVICE real radialArgument(real r, int a, int b, GLOBAL const real* RESTRICT reals, real* dydr) {
#if defined(AGNESI_TRANSFORM)
    const real r0 = (reals[COVALENT_RADII_START + a] + reals[COVALENT_RADII_START + b]) / 2, x = r / r0;
    const real xq = pow(x, (real) AGNESI_Q), v = pow(x, (real) AGNESI_Q - (real) AGNESI_P);
    const real y = 1 / (1 + AGNESI_A * xq / (1 + v));
    *dydr = -y * y * AGNESI_A * (xq / x) * (AGNESI_Q + AGNESI_P * v) / ((1 + v) * (1 + v)) / r0;
    return y;
#elif defined(SOFT_TRANSFORM) // MACE's SoftTransform: y = p0 + (r - p0) (1 + tanh(k (r - m))) / 2
    const real r0 = reals[COVALENT_RADII_START + a] + reals[COVALENT_RADII_START + b], p0 = (real) 0.75 * r0, p1 = r0 * 4 / 3;
    const real k = SOFT_ALPHA / (p1 - p0), h = tanh(k * (r - (p0 + p1) / 2)), s = (1 + h) / 2;
    *dydr = s + (r - p0) * k * (1 - h * h) / 2;
    return p0 + (r - p0) * s;
#else
    *dydr = 1;
    return r;
#endif
}

/** The polynomial envelope f_p(r / rc) (zero from rc on) and its r-derivative. */
DEVICE real polynomialEnvelope(real p, real rc, real r, real* derivative) {
    if (r >= rc) {
        *derivative = 0;
        return 0;
    }
    const real x = r / rc, xp = pow(x, p);
    *derivative = (-(p + 1) * (p + 2) / 2 * p * xp / x + p * (p + 2) * (p + 1) * xp - p * (p + 1) / 2 * (p + 2) * xp * x) / rc;
    return 1 - (p + 1) * (p + 2) / 2 * xp + p * (p + 2) * xp * x - p * (p + 1) / 2 * xp * x * x;
}

/** A radial MLP in forward mode: t and dt (its inputs and their r-derivatives) become its outputs and theirs. d, in
 *  the ints: (layers, activation, index of its scale, weights' start, biases' start or -1, layer norms' start or -1,
 *  sizes...), the weights [in][out] per layer already multiplied by their scales, the biases per layer, per hidden
 *  layer a layer norm's weight and bias then its eps (torch's LayerNorm, before the activation). */
DEVICE void radialMLPForward(GLOBAL const int* RESTRICT d, GLOBAL const real* RESTRICT reals, real* t, real* dt, real* next, real* dnext) {
    const int numLayers = d[0], activationKind = d[1];
    const real activationScale = reals[d[2]];
    GLOBAL const int* sizes = d + 6;
    int weights = d[3], biases = d[4], norms = d[5];
    for (int layer = 0; layer < numLayers; layer++) {
        const int nin = sizes[layer], nout = sizes[layer + 1];
        const bool last = (layer == numLayers - 1);
        for (int j = 0; j < nout; j++) {
            real pre = (biases >= 0 ? reals[biases + j] : 0), dpre = 0;
            for (int i = 0; i < nin; i++) {
                const real weight = reals[weights + i * nout + j];
                pre += t[i] * weight;
                dpre += dt[i] * weight;
            }
            next[j] = pre;
            dnext[j] = dpre;
        }
        weights += nin * nout;
        if (biases >= 0)
            biases += nout;
        if (!last && norms >= 0) { // (x - mean) / sqrt(var + eps) * weight + bias, with its tangent
            real mean = 0, dmean = 0;
            for (int j = 0; j < nout; j++) {
                mean += next[j];
                dmean += dnext[j];
            }
            mean /= nout;
            dmean /= nout;
            real var = 0, dvar = 0;
            for (int j = 0; j < nout; j++) {
                var += (next[j] - mean) * (next[j] - mean);
                dvar += 2 * (next[j] - mean) * (dnext[j] - dmean);
            }
            var /= nout;
            dvar /= nout;
            const real inv = 1 / sqrt(var + reals[norms + 2 * nout]), dinv = -inv * inv * inv * dvar / 2;
            for (int j = 0; j < nout; j++) {
                const real centred = next[j] - mean, dcentred = dnext[j] - dmean;
                next[j] = centred * inv * reals[norms + j] + reals[norms + nout + j];
                dnext[j] = (dcentred * inv + centred * dinv) * reals[norms + j];
            }
            norms += 2 * nout + 1;
        }
        for (int j = 0; j < nout; j++) {
            if (last) {
                t[j] = next[j];
                dt[j] = dnext[j];
            }
            else {
                real derivative;
                t[j] = activation(activationKind, activationScale, next[j], &derivative);
                dt[j] = derivative * dnext[j];
            }
        }
    }
}

/** The radial networks' inputs of an edge from an atom of element `from` to one of element `to` at distance r, and
 *  their r-derivatives: the Bessel basis of the (transformed) distance (times the envelope with APPLY_CUTOFF), then,
 *  with embeddings >= 0, the sender's and the receiver's element embeddings; returns how many. */
DEVICE int radialInputs(real r, int from, int to, int embeddings, int embeddingDim, GLOBAL const real* RESTRICT besselFrequencies,
        GLOBAL const real* RESTRICT reals, real* t, real* dt) {
    real denvelope, dydr;
    const real envelope = polynomialEnvelope(ENVELOPE_P, R_MAX, r, &denvelope);
    const real y = radialArgument(r, from, to, reals, &dydr);
    for (int b = 0; b < NUM_BESSEL; b++) {
        const real f = besselFrequencies[b];
        const real s = sin(f * y), c = cos(f * y);
        const real bessel = BESSEL_PREFACTOR * s / y;
        const real dbessel = BESSEL_PREFACTOR * (f * c * y - s) / (y * y) * dydr;
#ifdef APPLY_CUTOFF
        t[b] = bessel * envelope;
        dt[b] = dbessel * envelope + bessel * denvelope;
#else
        t[b] = bessel;
        dt[b] = dbessel;
#endif
    }
    if (embeddings < 0)
        return NUM_BESSEL;
    for (int i = 0; i < embeddingDim; i++) {
        t[NUM_BESSEL + i] = reals[embeddings + from * embeddingDim + i];
        t[NUM_BESSEL + embeddingDim + i] = reals[embeddings + (NUM_ELEMENTS + to) * embeddingDim + i];
        dt[NUM_BESSEL + i] = dt[NUM_BESSEL + embeddingDim + i] = 0;
    }
    return NUM_BESSEL + 2 * embeddingDim;
}

/** One layer's radial outputs on the node's edges, exactly (double precision): the tensor-product weights of its
 *  radial MLP, then a density-normalised layer's edge density tanh(s^2), s its density network's output, with their
 *  r-derivatives carried forward (radialInputs are each network's inputs); without APPLY_CUTOFF the outputs are
 *  multiplied by the envelope. o: (radial MLP descriptor, density MLP descriptor or -1, the density's column, start of
 *  the per-element embeddings in the reals or -1, their dimension, reversed: those of the edges the node sends, at the
 *  slots of their reverses, the edges it receives). */
DEVICE void nodeRadialMLP(int n, GLOBAL const int* RESTRICT o, GLOBAL const int* RESTRICT count, GLOBAL const int* RESTRICT sender,
        GLOBAL const int* RESTRICT species, GLOBAL const real4* RESTRICT edgeVec, int cap,
        GLOBAL const real* RESTRICT besselFrequencies, GLOBAL const int* RESTRICT ints, GLOBAL const real* RESTRICT reals,
        GLOBAL real* RESTRICT w, GLOBAL real* RESTRICT dwdr) {
    real t[MAX_WIDTH], dt[MAX_WIDTH], next[MAX_WIDTH], dnext[MAX_WIDTH];
    GLOBAL const int* radial = ints + o[1];
    const int numOutputs = radial[6 + radial[0]];
    for (int k = LOCAL_ID; k < count[n]; k += LOCAL_SIZE) {
        const int e = n * cap + k;
        const int from = (o[6] ? species[n] : species[sender[e]]), to = (o[6] ? species[sender[e]] : species[n]);
        const real r = edgeVec[e].w;
#ifdef APPLY_CUTOFF
        const real scale = 1, dscale = 0;
#else
        real dscale;
        const real scale = polynomialEnvelope(ENVELOPE_P, R_MAX, r, &dscale);
#endif
        if (o[2] >= 0) { // the edge density
            radialInputs(r, from, to, o[4], o[5], besselFrequencies, reals, t, dt);
            radialMLPForward(ints + o[2], reals, t, dt, next, dnext);
            const real density = tanh(t[0] * t[0]), ddensity = (1 - density * density) * 2 * t[0] * dt[0];
            w[e * WEIGHT_STRIDE + o[3]] = density * scale;
            dwdr[e * WEIGHT_STRIDE + o[3]] = ddensity * scale + density * dscale;
        }
        radialInputs(r, from, to, o[4], o[5], besselFrequencies, reals, t, dt);
        radialMLPForward(radial, reals, t, dt, next, dnext);
        for (int j = 0; j < numOutputs; j++) {
            w[e * WEIGHT_STRIDE + j] = t[j] * scale;
            dwdr[e * WEIGHT_STRIDE + j] = dt[j] * scale + t[j] * dscale;
        }
    }
}

/** The same outputs and derivatives from the layer's cubic Hermite table for the edge's element pair (ENNRadialTable:
 *  per node, the values and then the derivatives times the interval's width), in single and mixed precision: thread
 *  (edge, k) gives output k, so that neighbouring threads read neighbouring table entries. o: (start of the per-pair
 *  entries (table start, intervals, index of the inverse spacing) in ints, outputs, reversed: those of the edges the
 *  node sends, at the slots of their reverses, the edges it receives). */
DEVICE void nodeRadialTable(int n, GLOBAL const int* RESTRICT o, GLOBAL const int* RESTRICT count, GLOBAL const int* RESTRICT sender,
        GLOBAL const int* RESTRICT species, GLOBAL const real4* RESTRICT edgeVec, int cap, GLOBAL const real* RESTRICT table,
        GLOBAL const int* RESTRICT ints, GLOBAL const real* RESTRICT reals, GLOBAL real* RESTRICT w, GLOBAL real* RESTRICT dwdr) {
    const int numWeights = o[2], reversed = o[3];
    for (int index = LOCAL_ID; index < count[n] * numWeights; index += LOCAL_SIZE) {
        const int edge = index / numWeights, k = index - edge * numWeights, e = n * cap + edge;
        const int a = species[sender[e]], b = species[n];
        GLOBAL const int* pair = ints + o[1] + 3 * (reversed ? b * NUM_ELEMENTS + a : a * NUM_ELEMENTS + b);
        const int intervals = pair[1];
        const real inverseSpacing = reals[pair[2]];
        const real x = edgeVec[e].w * inverseSpacing;
        const int i = min((int) x, intervals - 1);
        const real u = x - i, u2 = u * u, u3 = u2 * u;
        GLOBAL const real* p0 = table + pair[0] + i * 2 * numWeights;
        GLOBAL const real* p1 = p0 + 2 * numWeights;
        const real v0 = p0[k], m0 = p0[numWeights + k], v1 = p1[k], m1 = p1[numWeights + k];
        w[e * WEIGHT_STRIDE + k] = (2 * u3 - 3 * u2 + 1) * v0 + (u3 - 2 * u2 + u) * m0 + (-2 * u3 + 3 * u2) * v1 + (u3 - u2) * m1;
        dwdr[e * WEIGHT_STRIDE + k] = ((6 * u2 - 6 * u) * (v0 - v1) + (3 * u2 - 4 * u + 1) * m0 + (3 * u2 - 2 * u) * m1) * inverseSpacing;
    }
}

/** out[o] (+)= sum over the terms t of row o of value[set(n), t] * in[column[t]]: every e3nn linear and its
 *  transpose. o: (in, out, row start, column start, value start, terms per set (values per element when > 0), dIn,
 *  dOut, accumulate). */
DEVICE void nodeSparseProduct(int n, GLOBAL const int* RESTRICT o, GLOBAL real* RESTRICT data, GLOBAL const int* RESTRICT species,
        GLOBAL const int* RESTRICT tables, GLOBAL const real* RESTRICT values) {
    const int dIn = o[7], dOut = o[8];
    GLOBAL const real* in = data + o[1] + n * dIn;
    GLOBAL real* out = data + o[2] + n * dOut;
    GLOBAL const real* v = values + o[5] + (o[6] > 0 ? species[n] * o[6] : 0);
    for (int row = LOCAL_ID; row < dOut; row += LOCAL_SIZE) {
        const int begin = tables[o[3] + row], end = tables[o[3] + row + 1];
        real sum = 0;
        for (int t = begin; t < end; t++)
            sum += v[t] * in[tables[o[4] + t]];
        out[row] = (o[9] ? out[row] + sum : sum);
    }
}

/** The tensor product of sender features with edge harmonics, weighted per edge, summed over the node's edges:
 *  out[row] = sum over the node's edges e (from sender s) and the terms t of the row of
 *  value[t] * w[e, weight(t)] * in[s, column(t)] * Y[e, harmonic(t)], terms (column, harmonic, weight) at
 *  tables[termStart + 3t]. Also its transpose, the gradient with respect to the senders' features: each node gathers
 *  the receivers' gradients over its own edges, since the edge r <- n is the reverse of the node's edge n <- r, with
 *  the same length (so the same radial weights, bit for bit: the pair vector is computed antisymmetrically) and
 *  harmonics (-1)^l times the node's, a sign folded into the transposed table's values. Radial weights are at
 *  w[slot * WEIGHT_STRIDE + k] for every layer, so that no layer's weights of one node reach another node's slots.
 *  o: (in, out, row start, term start, value start, dIn, dOut): (hUp, M, ..., dUp, dTp) forward, (gradM, gradUp, ...,
 *  dTp, dUp) for the transpose. */
DEVICE void nodeConvolution(int n, GLOBAL const int* RESTRICT o, GLOBAL real* RESTRICT data, GLOBAL const real* RESTRICT sh,
        GLOBAL const real* RESTRICT w, GLOBAL const int* RESTRICT count, GLOBAL const int* RESTRICT sender, int cap,
        GLOBAL const real* RESTRICT wReverse, GLOBAL const int* RESTRICT tables, GLOBAL const real* RESTRICT values) {
    GLOBAL const real* in = data + o[1];
    const int rowStart = o[3], termStart = o[4], valueStart = o[5], dIn = o[6], dOut = o[7];
    // The transpose gathers over the node's received edges for the edges it sent: where the radial weights depend on
    // the direction (edge embeddings), those of the sent edges, which a reversed radial op left in wReverse.
    GLOBAL const real* weights = (o[8] ? wReverse : w);
    for (int row = LOCAL_ID; row < dOut; row += LOCAL_SIZE) {
        const int begin = tables[rowStart + row], end = tables[rowStart + row + 1];
        real sum = 0;
        for (int k = 0; k < count[n]; k++) {
            const int e = n * cap + k, s = sender[e];
            for (int t = begin; t < end; t++) {
                GLOBAL const int* term = tables + termStart + 3 * t;
                sum += values[valueStart + t] * weights[e * WEIGHT_STRIDE + term[2]] * in[s * dIn + term[0]] * sh[e * NSH + term[1]];
            }
        }
        data[o[2] + n * dOut + row] = sum;
    }
}

/** Gradient of the convolution with respect to each of the node's edges' harmonics and length (through the radial
 *  weights, and a density-normalised layer's edge densities), accumulated over layers into gradSh and gradR. Uses the
 *  forward table; o as nodeConvolution's, with (gradM, hUp) first, then the node slice of dE/dd (or -1) and the
 *  density's column. */
DEVICE void nodeConvolutionBackwardEdges(int n, GLOBAL const int* RESTRICT o, GLOBAL real* RESTRICT data, GLOBAL const real* RESTRICT sh,
        GLOBAL const real* RESTRICT w, GLOBAL const real* RESTRICT dwdr, GLOBAL const int* RESTRICT count, GLOBAL const int* RESTRICT sender,
        int cap, GLOBAL const int* RESTRICT tables, GLOBAL const real* RESTRICT values, GLOBAL real* RESTRICT gradSh, GLOBAL real* RESTRICT gradR) {
    GLOBAL const real* gradM = data + o[1];
    GLOBAL const real* hUp = data + o[2];
    const int rowStart = o[3], termStart = o[4], valueStart = o[5], dUp = o[6], dTp = o[7];
    real gy[NSH];
    for (int k = LOCAL_ID; k < count[n]; k += LOCAL_SIZE) {
        const int e = n * cap + k, s = sender[e];
        for (int m = 0; m < NSH; m++)
            gy[m] = 0;
        real gr = 0;
        for (int row = 0; row < dTp; row++) {
            const real g = gradM[n * dTp + row];
            const int begin = tables[rowStart + row], end = tables[rowStart + row + 1];
            for (int t = begin; t < end; t++) {
                GLOBAL const int* term = tables + termStart + 3 * t;
                const real c = values[valueStart + t] * g * hUp[s * dUp + term[0]];
                gy[term[1]] += c * w[e * WEIGHT_STRIDE + term[2]];
                gr += c * sh[e * NSH + term[1]] * dwdr[e * WEIGHT_STRIDE + term[2]];
            }
        }
        if (o[8] >= 0) // a density-normalised layer: the node's dE/dd times the edge density's r-derivative
            gr += data[o[8] + n] * dwdr[e * WEIGHT_STRIDE + o[9]];
        for (int m = 0; m < NSH; m++)
            gradSh[e * NSH + m] += gy[m];
        gradR[e] += gr;
    }
}

/** Symmetric contraction, a thread per channel. A term: (output offset, output stride per channel, correlation,
 *  then (offset, stride) of up to three factors); coefficients [element][term][channel]. o: (A, B, term start,
 *  value start, terms, output start, outputs, channels, dMsg, dProd). */
DEVICE void nodeContraction(int n, GLOBAL const int* RESTRICT o, GLOBAL real* RESTRICT data, GLOBAL const int* RESTRICT species,
        GLOBAL const int* RESTRICT tables, GLOBAL const real* RESTRICT values) {
    const int termStart = o[3], numTerms = o[5], outputStart = o[6], numOutputs = o[7], channels = o[8];
    GLOBAL const real* a = data + o[1] + n * o[9];
    GLOBAL real* b = data + o[2] + n * o[10];
    for (int c = LOCAL_ID; c < channels; c += LOCAL_SIZE) {
        for (int f = 0; f < numOutputs; f++) // this thread's entries of B
            b[tables[outputStart + 2 * f] + c * tables[outputStart + 2 * f + 1]] = 0;
        GLOBAL const real* coefficient = values + o[4] + species[n] * numTerms * channels + c;
        for (int t = 0; t < numTerms; t++) {
            GLOBAL const int* term = tables + termStart + 9 * t;
            real product = coefficient[t * channels];
            for (int f = 0; f < term[2]; f++)
                product *= a[term[3 + 2 * f] + c * term[4 + 2 * f]];
            b[term[0] + c * term[1]] += product;
        }
    }
}

/** Gradient of the symmetric contraction with respect to A. features: (offset, stride) of each of the D features,
 *  so that this thread first clears exactly the entries of its channel. o: (A, gradB, gradA, term start, value start,
 *  terms, feature start, features, channels, dMsg, dProd). */
DEVICE void nodeContractionBackward(int n, GLOBAL const int* RESTRICT o, GLOBAL real* RESTRICT data, GLOBAL const int* RESTRICT species,
        GLOBAL const int* RESTRICT tables, GLOBAL const real* RESTRICT values) {
    const int termStart = o[4], numTerms = o[6], featureStart = o[7], numFeatures = o[8], channels = o[9];
    GLOBAL const real* a = data + o[1] + n * o[10];
    GLOBAL const real* gradB = data + o[2] + n * o[11];
    GLOBAL real* ga = data + o[3] + n * o[10];
    for (int c = LOCAL_ID; c < channels; c += LOCAL_SIZE) {
        for (int f = 0; f < numFeatures; f++)
            ga[tables[featureStart + 2 * f] + c * tables[featureStart + 2 * f + 1]] = 0;
        GLOBAL const real* coefficient = values + o[5] + species[n] * numTerms * channels + c;
        for (int t = 0; t < numTerms; t++) {
            GLOBAL const int* term = tables + termStart + 9 * t;
            const real g = gradB[term[0] + c * term[1]] * coefficient[t * channels];
            const int nu = term[2];
            for (int i = 0; i < nu; i++) {
                real product = g;
                for (int j = 0; j < nu; j++)
                    if (j != i)
                        product *= a[term[3 + 2 * j] + c * term[4 + 2 * j]];
                ga[term[3 + 2 * i] + c * term[4 + 2 * i]] += product;
            }
        }
    }
}

/** dE/dv of each of the node's edges from the gradients with respect to its harmonics and its length. */
DEVICE void nodeEdgeGradients(int n, GLOBAL const int* RESTRICT count, GLOBAL const real4* RESTRICT edgeVec, int cap,
        GLOBAL const int* RESTRICT shIndex, GLOBAL const real* RESTRICT shValue, GLOBAL const real* RESTRICT gradSh,
        GLOBAL const real* RESTRICT gradR, GLOBAL real4* RESTRICT gradVec) {
    real y[NSH], du[3 * NSH];
    for (int k = LOCAL_ID; k < count[n]; k += LOCAL_SIZE) {
        const int e = n * cap + k;
        const real4 v = edgeVec[e];
        const real3 u = make_real3(v.x / v.w, v.y / v.w, v.z / v.w);
        harmonics(u, shIndex, shValue, y, du, 1);
        // dY/dv = (dY/du - (dY/du . u) u) / r
        real3 g = u * gradR[e];
        for (int m = 0; m < NSH; m++) {
            const real3 d = make_real3(du[3 * m], du[3 * m + 1], du[3 * m + 2]);
            const real radial = d.x * u.x + d.y * u.y + d.z * u.z;
            g += (d - u * radial) * (gradSh[e * NSH + m] / v.w);
        }
        gradVec[e] = make_real4(g.x, g.y, g.z, 0);
    }
}

/** MACE's density normalisation (its density blocks, alpha = beta = 1, and the non-linear block): the node's messages A
 *  over D = alpha + beta d, d the sum of its edges' densities (a radial output); keeps D for the backward pass.
 *  o: (A, dMsg, density column, node slice of D, index of alpha, index of beta in the reals). */
DEVICE void nodeDensityNormalize(int n, GLOBAL const int* RESTRICT o, GLOBAL real* RESTRICT data, GLOBAL const real* RESTRICT w,
        GLOBAL const int* RESTRICT count, int cap, GLOBAL const real* RESTRICT reals) {
    real density = 0;
    for (int k = 0; k < count[n]; k++)
        density += w[(n * cap + k) * WEIGHT_STRIDE + o[3]];
    density = reals[o[5]] + reals[o[6]] * density;
    for (int i = LOCAL_ID; i < o[2]; i += LOCAL_SIZE)
        data[o[1] + n * o[2] + i] /= density;
    if (LOCAL_ID == 0)
        data[o[4] + n] = density;
}

/** Its gradient with respect to d: -beta (gradA . A) / D, into a node slice (one thread, a fixed order).
 *  o: (A, gradA, dMsg, D, dE/dd, index of beta). */
DEVICE void nodeDensityGradient(int n, GLOBAL const int* RESTRICT o, GLOBAL real* RESTRICT data, GLOBAL const real* RESTRICT reals) {
    if (LOCAL_ID == 0) {
        real dot = 0;
        for (int i = 0; i < o[3]; i++)
            dot += data[o[2] + n * o[3] + i] * data[o[1] + n * o[3] + i];
        data[o[5] + n] = -reals[o[6]] * dot / data[o[4] + n];
    }
}

/** e3nn's Gate (GateSpec) on x = S + R: forward, out = gate(x), a thread per output; backward, out = (dGate/dx)^T
 *  gradOut, a thread per input (written, not added). g, in the ints: (scalar start, scalar count, gate start, gated
 *  entries, scalar activation, index of its scale, gate activation, index of its scale, dimension in, out), then per
 *  gated entry (start, mul, dim, gate offset). o: (S, R, gradOut (backward), out, g). */
DEVICE void nodeGate(int n, GLOBAL const int* RESTRICT o, GLOBAL real* RESTRICT data, GLOBAL const int* RESTRICT ints,
        GLOBAL const real* RESTRICT reals, int backward) {
    GLOBAL const int* g = ints + o[5];
    const int dIn = g[8], dOut = g[9];
    GLOBAL const real* S = data + o[1] + n * dIn;
    GLOBAL const real* R = data + o[2] + n * dIn;
    GLOBAL const real* gradOut = data + o[3] + n * dOut;
    GLOBAL real* out = data + o[4] + n * (backward ? dIn : dOut);
    real derivative;
    if (!backward) {
        for (int i = LOCAL_ID; i < dOut; i += LOCAL_SIZE) {
            if (i < g[1]) {
                out[i] = activation(g[4], reals[g[5]], S[g[0] + i] + R[g[0] + i], &derivative);
                continue;
            }
            for (int k = 0, first = g[1]; k < g[3]; k++) {
                GLOBAL const int* entry = g + 10 + 4 * k;
                const int size = entry[1] * entry[2];
                if (i < first + size) {
                    const int component = i - first, gate = g[2] + entry[3] + component / entry[2];
                    out[i] = (S[entry[0] + component] + R[entry[0] + component]) * activation(g[6], reals[g[7]], S[gate] + R[gate], &derivative);
                    break;
                }
                first += size;
            }
        }
        return;
    }
    for (int j = LOCAL_ID; j < dIn; j += LOCAL_SIZE) {
        real value = 0;
        if (j >= g[0] && j < g[0] + g[1]) {
            activation(g[4], reals[g[5]], S[j] + R[j], &derivative);
            value = derivative * gradOut[j - g[0]];
        }
        for (int k = 0, first = g[1]; k < g[3]; k++) {
            GLOBAL const int* entry = g + 10 + 4 * k;
            const int size = entry[1] * entry[2];
            if (j >= entry[0] && j < entry[0] + size) { // a gated component: times its gate
                const int gate = g[2] + entry[3] + (j - entry[0]) / entry[2];
                value += gradOut[first + j - entry[0]] * activation(g[6], reals[g[7]], S[gate] + R[gate], &derivative);
            }
            const int u = j - g[2] - entry[3];
            if (u >= 0 && u < entry[1]) { // this entry's gate of channel u
                activation(g[6], reals[g[7]], S[j] + R[j], &derivative);
                real dot = 0;
                for (int m = 0; m < entry[2]; m++) {
                    const int c = entry[0] + u * entry[2] + m;
                    dot += (S[c] + R[c]) * gradOut[first + u * entry[2] + m];
                }
                value += derivative * dot;
            }
            first += size;
        }
        out[j] = value;
    }
}

#ifdef ZBL_P
/** MACE's ZBL pair repulsion (ZBLBasis) of the node's edges: half the screened nuclear repulsion of each, with its own
 *  envelope at the sum of the covalent radii, into the node's energy (one thread, in edge order) and each edge's length
 *  gradient. o: (start of the per-pair (screening length, prefactor with the energy scale, cutoff) in the reals). */
DEVICE void nodeZBLBasis(int n, GLOBAL const int* RESTRICT o, GLOBAL const real* RESTRICT values, GLOBAL const int* RESTRICT species,
        GLOBAL const int* RESTRICT count, GLOBAL const int* RESTRICT sender, GLOBAL const real4* RESTRICT edgeVec, int cap,
        GLOBAL mixed* RESTRICT nodeEnergy, GLOBAL real* RESTRICT gradR) {
    if (LOCAL_ID != 0)
        return;
    real energy = 0;
    for (int k = 0; k < count[n]; k++) {
        const int e = n * cap + k;
        GLOBAL const real* pair = values + o[1] + 3 * (species[sender[e]] * NUM_ELEMENTS + species[n]);
        const real r = edgeVec[e].w;
        if (r >= pair[2])
            continue;
        // The envelope as a polynomial in u = 1 - r / rc (ZBL_ENVELOPE: precise near rc in float).
        const real u = (pair[2] - r) / pair[2];
        const real envelope = ZBL_ENVELOPE(u), denvelope = -ZBL_ENVELOPE_DU(u) / pair[2];
        const real x = r / pair[0];
        const real terms[4] = {ZBL_C0 * exp(-ZBL_E0 * x), ZBL_C1 * exp(-ZBL_E1 * x), ZBL_C2 * exp(-ZBL_E2 * x), ZBL_C3 * exp(-ZBL_E3 * x)};
        const real phi = terms[0] + terms[1] + terms[2] + terms[3];
        const real dphi = -(ZBL_E0 * terms[0] + ZBL_E1 * terms[1] + ZBL_E2 * terms[2] + ZBL_E3 * terms[3]) / pair[0];
        const real v = pair[1] * phi / r, dv = pair[1] * (dphi / r - phi / (r * r));
        energy += v * envelope;
        gradR[e] += dv * envelope + v * denvelope;
    }
    nodeEnergy[n] += energy;
}
#endif

/** Runs ops [firstOp, firstOp + numOps) on every node, a work group per node (see above). */
KERNEL void nodeProgram(GLOBAL const int* RESTRICT ops, int firstOp, int numOps, int numNodes, GLOBAL real* RESTRICT data,
        GLOBAL mixed* RESTRICT nodeEnergy, GLOBAL const int* RESTRICT species, GLOBAL const int* RESTRICT tables, GLOBAL const real* RESTRICT values,
        GLOBAL const int* RESTRICT count, GLOBAL const int* RESTRICT sender, GLOBAL const real4* RESTRICT edgeVec, int cap,
        GLOBAL int* RESTRICT reverse, GLOBAL const int* RESTRICT shIndex, GLOBAL const real* RESTRICT shValue, GLOBAL real* RESTRICT sh,
        GLOBAL real* RESTRICT w, GLOBAL real* RESTRICT dwdr, GLOBAL real* RESTRICT gradSh, GLOBAL real* RESTRICT gradR,
        GLOBAL real4* RESTRICT gradVec, GLOBAL const real* RESTRICT radialTable, GLOBAL const real* RESTRICT besselFrequencies,
        GLOBAL real* RESTRICT wReverse, GLOBAL real* RESTRICT dwdrReverse) {
    for (int n = GROUP_ID; n < numNodes; n += NUM_GROUPS) {
        for (int op = firstOp; op < firstOp + numOps; op++) {
            GLOBAL const int* o = ops + OP_WORDS * op;
            const int kind = o[0];
            if (kind == OP_SPARSE_PRODUCT)
                nodeSparseProduct(n, o, data, species, tables, values);
            else if (kind == OP_CONVOLUTION)
                nodeConvolution(n, o, data, sh, w, count, sender, cap, wReverse, tables, values);
            else if (kind == OP_CONTRACTION)
                nodeContraction(n, o, data, species, tables, values);
            else if (kind == OP_CONTRACTION_BACKWARD)
                nodeContractionBackward(n, o, data, species, tables, values);
            else if (kind == OP_CONVOLUTION_BACKWARD_EDGES)
                nodeConvolutionBackwardEdges(n, o, data, sh, w, dwdr, count, sender, cap, tables, values, gradSh, gradR);
            else if (kind == OP_RADIAL_TABLE)
                nodeRadialTable(n, o, count, sender, species, edgeVec, cap, radialTable, tables, values, o[3] ? wReverse : w, o[3] ? dwdrReverse : dwdr);
            else if (kind == OP_RADIAL_MLP)
                nodeRadialMLP(n, o, count, sender, species, edgeVec, cap, besselFrequencies, tables, values, o[6] ? wReverse : w,
                              o[6] ? dwdrReverse : dwdr);
            else if (kind == OP_DENSITY_NORMALIZE)
                nodeDensityNormalize(n, o, data, w, count, cap, values);
            else if (kind == OP_DENSITY_GRADIENT)
                nodeDensityGradient(n, o, data, values);
            else if (kind == OP_GATE || kind == OP_GATE_BACKWARD)
                nodeGate(n, o, data, tables, values, kind == OP_GATE_BACKWARD);
            else if (kind == OP_DENSITY_SCALE) { // o: (gradA, dMsg, 1 + d): gradA /= 1 + d
                for (int i = LOCAL_ID; i < o[2]; i += LOCAL_SIZE)
                    data[o[1] + n * o[2] + i] /= data[o[3] + n];
            }
#ifdef ZBL_P
            else if (kind == OP_PAIR_REPULSION)
                nodeZBLBasis(n, o, values, species, count, sender, edgeVec, cap, nodeEnergy, gradR);
#endif
            else if (kind == OP_ACTIVATE || kind == OP_ACTIVATION_BACKWARD) { // o: (pre, out or gradient, size, kind, index of scale)
                const int size = o[3];
                for (int i = LOCAL_ID; i < size; i += LOCAL_SIZE) {
                    real derivative;
                    const real y = activation(o[4], values[o[5]], data[o[1] + n * size + i], &derivative);
                    if (kind == OP_ACTIVATE)
                        data[o[2] + n * size + i] = y;
                    else
                        data[o[2] + n * size + i] *= derivative;
                }
            }
            else if (kind == OP_ZERO) { // o: (array, size)
                for (int i = LOCAL_ID; i < o[2]; i += LOCAL_SIZE)
                    data[o[1] + n * o[2] + i] = 0;
            }
            else if (kind == OP_ADD) { // o: (array, to, size): to += array
                for (int i = LOCAL_ID; i < o[3]; i += LOCAL_SIZE)
                    data[o[2] + n * o[3] + i] += data[o[1] + n * o[3] + i];
            }
            else if (kind == OP_EMBED) { // o: (h, table start, dim); also clears the node's energy, which the layers add to
                for (int i = LOCAL_ID; i < o[3]; i += LOCAL_SIZE)
                    data[o[1] + n * o[3] + i] = values[o[2] + species[n] * o[3] + i];
                if (LOCAL_ID == 0)
                    nodeEnergy[n] = 0;
            }
            else if (kind == OP_ADD_ENERGY) { // o: (readout output)
                if (LOCAL_ID == 0)
                    nodeEnergy[n] += data[o[1] + n];
            }
            else if (kind == OP_EDGE_GEOMETRY)
                nodeEdgeGeometry(n, count, sender, edgeVec, cap, reverse, shIndex, shValue, sh, gradSh, gradR);
            else if (kind == OP_EDGE_GRADIENTS)
                nodeEdgeGradients(n, count, edgeVec, cap, shIndex, shValue, gradSh, gradR, gradVec);
            SYNC_THREADS;
        }
    }
}

/** The mean of values over each charge group g (members[start[g] .. start[g + 1]), summed in order), into mean[g]. */
DEVICE void groupMeans(GLOBAL const mixed* RESTRICT values, int numGroups, GLOBAL const int* RESTRICT start,
        GLOBAL const int* RESTRICT members, GLOBAL mixed* RESTRICT mean) {
    for (int g = LOCAL_ID; g < numGroups; g += REDUCE_SIZE) {
        mixed sum = 0;
        for (int k = start[g]; k < start[g + 1]; k++)
            sum += values[members[k]];
        mean[g] = sum / (start[g + 1] - start[g]);
    }
    SYNC_THREADS;
}

/** q_i = raw_i (data[rawStart + i]) + offset[element] + (Q_g - sum_g)/N_g: the predicted charges with each charge group's charge imposed. */
KERNEL void normalizeCharges(GLOBAL const real* RESTRICT data, int rawStart, GLOBAL const int* RESTRICT species, GLOBAL const real* RESTRICT elementOffsets,
        int numNodes, int numGroups, GLOBAL const int* RESTRICT groupStart, GLOBAL const int* RESTRICT groupMembers,
        GLOBAL const int* RESTRICT nodeGroup, GLOBAL const mixed* RESTRICT groupCharge, GLOBAL mixed* RESTRICT groupMean,
        GLOBAL mixed* RESTRICT work, GLOBAL real* RESTRICT charges, real maxCharge, GLOBAL int* RESTRICT status) {
    for (int n = LOCAL_ID; n < numNodes; n += REDUCE_SIZE)
        work[n] = data[rawStart + n] + elementOffsets[species[n]];
    SYNC_THREADS;
    groupMeans(work, numGroups, groupStart, groupMembers, groupMean);
    for (int n = LOCAL_ID; n < numNodes; n += REDUCE_SIZE) {
        const int g = nodeGroup[n]; // -1: unconstrained (latent) charges
        const real q = (real) (g < 0 ? work[n] : work[n] + groupCharge[g] / (groupStart[g + 1] - groupStart[g]) - groupMean[g]);
        charges[n] = q;
        if (!(fabs(q) <= maxCharge)) { // NaN too
            status[4] = 1;
            status[5] = n;
        }
    }
}

/** The charge head's input gradient from the potential phi_i = dE/dq_i (kJ/mol/e): since
 *  q_i = raw_i + (Q_g - sum_{j in g} raw_j)/N_g, dE/draw_i = phi_i - mean of phi over i's group, in the model's energy unit, into data[gradientStart + i]. */
KERNEL void chargeGradient(GLOBAL const mixed* RESTRICT potential, int numNodes, int numGroups, GLOBAL const int* RESTRICT groupStart,
        GLOBAL const int* RESTRICT groupMembers, GLOBAL const int* RESTRICT nodeGroup, GLOBAL mixed* RESTRICT groupMean, mixed toModel,
        GLOBAL real* RESTRICT data, int gradientStart) {
    groupMeans(potential, numGroups, groupStart, groupMembers, groupMean);
    for (int n = LOCAL_ID; n < numNodes; n += REDUCE_SIZE)
        data[gradientStart + n] = (real) ((nodeGroup[n] < 0 ? potential[n] : potential[n] - groupMean[nodeGroup[n]]) * toModel);
}

/** Forces on the ML particles (and any extra forces, in original atom order) into the fixed-point
 *  force buffer, one thread per reordered atom: -sum over edges received minus edges sent. A force
 *  that is not finite sets status[7] and, in status[8], its System particle. */
KERNEL void applyForces(GLOBAL const real4* RESTRICT gradVec, GLOBAL const int* RESTRICT count, GLOBAL const int* RESTRICT reverse, int cap,
        GLOBAL const int* RESTRICT atomIndex, GLOBAL const int* RESTRICT mlOfAtom, int numAtoms, int paddedNumAtoms,
        real forceScale, GLOBAL const real4* RESTRICT extraForces, int hasExtraForces, GLOBAL mm_long* RESTRICT forceBuffer,
        GLOBAL int* RESTRICT status) {
    for (int j = GLOBAL_ID; j < numAtoms; j += GLOBAL_SIZE) {
        const int atom = atomIndex[j], i = mlOfAtom[atom];
        real3 f = make_real3(0, 0, 0);
        if (i >= 0) {
            for (int k = 0; k < count[i]; k++) {
                const int e = i * cap + k;
                f -= trimTo3(gradVec[e]);
                if (reverse[e] >= 0) // always, unless the list overflowed and the step is discarded
                    f += trimTo3(gradVec[reverse[e]]);
            }
            f *= forceScale;
        }
        if (hasExtraForces)
            f += trimTo3(extraForces[atom]);
        if (!(isfinite(f.x) && isfinite(f.y) && isfinite(f.z))) { // NaN from weights that overflow, inf from coincident charges
            status[7] = 1;
            status[8] = atom;
        }
        forceBuffer[j] += (mm_long) (f.x * (real) 0x100000000);
        forceBuffer[j + paddedNumAtoms] += (mm_long) (f.y * (real) 0x100000000);
        forceBuffer[j + 2 * paddedNumAtoms] += (mm_long) (f.z * (real) 0x100000000);
    }
}

/** Copies count reals of data from offset on into out (a head that reads the layers' features on the host). */
KERNEL void copyReals(GLOBAL const real* RESTRICT data, int offset, int count, GLOBAL real* RESTRICT out) {
    for (int i = GLOBAL_ID; i < count; i += GLOBAL_SIZE)
        out[i] = data[offset + i];
}
