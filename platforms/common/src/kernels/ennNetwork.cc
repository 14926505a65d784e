// The ENNForce network on GPUs, in OpenMM's common compute dialect (compiled at run time for CUDA
// and OpenCL). `real` is float in single and mixed precision and double in double precision.
// Every kernel loops over its index range with a grid stride, so any launch size is valid.
// Every output element is written by exactly one thread, in a fixed order, so results are identical
// from run to run; the only atomics are the cell list's integer counters, and each receiver's edges
// are sorted afterwards.
//
// Defines: NSH (number of spherical harmonics, (l_max+1)^2), NUM_SH_TERMS (entries of the harmonics
// recursion), NUM_BESSEL, ENVELOPE_P, R_MAX, BESSEL_PREFACTOR, MAX_WIDTH (widest hidden layer of
// any radial MLP), REDUCE_SIZE (ennReduce.cc), NUM_BUCKETS (cell hash table, a power of two).
//
// Edges live in fixed-capacity slots: the edges of receiver i are slots [i*cap, i*cap + count[i]).
// Edge vector = x[receiver] - image of x[sender], stored as (x, y, z, |v|).

DEVICE real activation(int kind, real scale, real x, real* derivative) {
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
 *  with du != 0, also dY/du (unprojected). terms: (index of Y_1 entry, index of Y_{l-1} entry, target). */
DEVICE void harmonics(real3 u, GLOBAL const int* shIndex, GLOBAL const real* shValue, real* y, real* du, int wantDerivative) {
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

/** For each edge i <- j, the slot of the edge j <- i with the opposite vector. */
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

/** For every edge, its reverse edge and its spherical harmonics (one launch for both); every slot's gradients with
 *  respect to the harmonics and the length, which the layers' backward passes add to, are cleared here too. */
KERNEL void edgeGeometry(GLOBAL const int* RESTRICT count, GLOBAL const int* RESTRICT sender, GLOBAL const real4* RESTRICT edgeVec, int cap,
        int numSlots, GLOBAL int* RESTRICT reverse, GLOBAL const int* RESTRICT shIndex, GLOBAL const real* RESTRICT shValue, GLOBAL real* RESTRICT sh,
        GLOBAL real* RESTRICT gradSh, GLOBAL real* RESTRICT gradR) {
    real y[NSH], du[3 * NSH];
    for (int e = GLOBAL_ID; e < numSlots; e += GLOBAL_SIZE) {
        for (int k = 0; k < NSH; k++)
            gradSh[e * NSH + k] = 0;
        gradR[e] = 0;
        const int i = e / cap;
        if (e - i * cap >= count[i])
            continue;
        reverse[e] = reverseEdge(e, i, count, sender, edgeVec, cap);
        const real4 v = edgeVec[e];
        harmonics(make_real3(v.x / v.w, v.y / v.w, v.z / v.w), shIndex, shValue, y, du, 0);
        for (int k = 0; k < NSH; k++)
            sh[e * NSH + k] = y[k];
    }
}

/** The tensor-product weights of one layer's radial MLP on every edge, with their derivatives with
 *  respect to r carried forward through the MLP. mlp holds each layer's matrix [in][out], already
 *  multiplied by its weight scale; sizes[0] = NUM_BESSEL. */
KERNEL void radialWeights(GLOBAL const int* RESTRICT count, GLOBAL const real4* RESTRICT edgeVec, int cap, int numSlots,
        GLOBAL const real* RESTRICT besselFrequencies, GLOBAL const real* RESTRICT reals, int mlpStart,
        GLOBAL const int* RESTRICT ints, int sizeStart, int numMlpLayers, int activationKind, real activationScale, int numWeights,
        GLOBAL real* RESTRICT w, GLOBAL real* RESTRICT dwdr) {
    real t[MAX_WIDTH], dt[MAX_WIDTH], next[MAX_WIDTH], dnext[MAX_WIDTH];
    GLOBAL const real* mlp = reals + mlpStart;
    GLOBAL const int* sizes = ints + sizeStart;
    for (int e = GLOBAL_ID; e < numSlots; e += GLOBAL_SIZE) {
        if (e % cap >= count[e / cap])
            continue;
        const real r = edgeVec[e].w;
        // Bessel basis times the polynomial envelope.
        const real p = ENVELOPE_P, x = r / R_MAX;
        const real xp = pow(x, p);
        const real envelope = 1 - (p + 1) * (p + 2) / 2 * xp + p * (p + 2) * xp * x - p * (p + 1) / 2 * xp * x * x;
        const real denvelope = (-(p + 1) * (p + 2) / 2 * p * xp / x + p * (p + 2) * (p + 1) * xp - p * (p + 1) / 2 * (p + 2) * xp * x) / R_MAX;
        for (int k = 0; k < NUM_BESSEL; k++) {
            const real f = besselFrequencies[k];
            const real s = sin(f * r), c = cos(f * r);
            const real bessel = BESSEL_PREFACTOR * s / r;
            const real dbessel = BESSEL_PREFACTOR * (f * c * r - s) / (r * r);
            t[k] = bessel * envelope;
            dt[k] = dbessel * envelope + bessel * denvelope;
        }
        int offset = 0;
        for (int layer = 0; layer < numMlpLayers; layer++) {
            const int nin = sizes[layer], nout = sizes[layer + 1];
            const bool last = (layer == numMlpLayers - 1);
            for (int j = 0; j < nout; j++) {
                real pre = 0, dpre = 0;
                for (int i = 0; i < nin; i++) {
                    const real weight = mlp[offset + i * nout + j];
                    pre += t[i] * weight;
                    dpre += dt[i] * weight;
                }
                if (last) {
                    w[e * numWeights + j] = pre;
                    dwdr[e * numWeights + j] = dpre;
                }
                else {
                    real derivative;
                    next[j] = activation(activationKind, activationScale, pre, &derivative);
                    dnext[j] = derivative * dpre;
                }
            }
            if (!last)
                for (int j = 0; j < nout; j++) {
                    t[j] = next[j];
                    dt[j] = dnext[j];
                }
            offset += nin * nout;
        }
    }
}

/** The same weights and derivatives from the layer's cubic Hermite table (ENNRadialTable: per node, the values and
 *  then the derivatives times the interval's width), in single and mixed precision: thread (slot, k) gives weight k of
 *  the edge in that slot, so that neighbouring threads read neighbouring table entries. */
KERNEL void radialTableWeights(GLOBAL const int* RESTRICT count, GLOBAL const real4* RESTRICT edgeVec, int cap, int numSlots,
        GLOBAL const real* RESTRICT table, int tableStart, int intervals, real inverseSpacing, int numWeights,
        GLOBAL real* RESTRICT w, GLOBAL real* RESTRICT dwdr) {
    for (int index = GLOBAL_ID; index < numSlots * numWeights; index += GLOBAL_SIZE) {
        const int e = index / numWeights, k = index - e * numWeights;
        if (e % cap >= count[e / cap])
            continue;
        const real x = edgeVec[e].w * inverseSpacing;
        const int i = min((int) x, intervals - 1);
        const real u = x - i, u2 = u * u, u3 = u2 * u;
        GLOBAL const real* p0 = table + tableStart + i * 2 * numWeights;
        GLOBAL const real* p1 = p0 + 2 * numWeights;
        const real v0 = p0[k], m0 = p0[numWeights + k], v1 = p1[k], m1 = p1[numWeights + k];
        w[index] = (2 * u3 - 3 * u2 + 1) * v0 + (u3 - 2 * u2 + u) * m0 + (-2 * u3 + 3 * u2) * v1 + (u3 - u2) * m1;
        dwdr[index] = ((6 * u2 - 6 * u) * (v0 - v1) + (3 * u2 - 4 * u + 1) * m0 + (3 * u2 - 2 * u) * m1) * inverseSpacing;
    }
}

/** out[n, o] (+)= sum over the terms of row o of value[set(n), t] * in[n, column[t]]: every e3nn linear
 *  and its transpose. rows/columns index `tables`; values are per element when termsPerSet > 0. */
KERNEL void sparseProduct(GLOBAL const real* RESTRICT in, GLOBAL real* RESTRICT out, GLOBAL const int* RESTRICT species,
        GLOBAL const int* RESTRICT tables, GLOBAL const real* RESTRICT values, int rowStart, int columnStart, int valueStart,
        int termsPerSet, int numNodes, int dIn, int dOut, int accumulate) {
    for (int index = GLOBAL_ID; index < numNodes * dOut; index += GLOBAL_SIZE) {
        const int n = index / dOut, o = index - n * dOut;
        const int begin = tables[rowStart + o], end = tables[rowStart + o + 1];
        GLOBAL const real* v = values + valueStart + (termsPerSet > 0 ? species[n] * termsPerSet : 0);
        real sum = 0;
        for (int t = begin; t < end; t++)
            sum += v[t] * in[n * dIn + tables[columnStart + t]];
        out[index] = (accumulate ? out[index] + sum : sum);
    }
}

KERNEL void fill(GLOBAL real* RESTRICT data, int size, real value) {
    for (int i = GLOBAL_ID; i < size; i += GLOBAL_SIZE)
        data[i] = value;
}

KERNEL void activate(GLOBAL const real* RESTRICT pre, GLOBAL real* RESTRICT out, int size, int kind, real scale) {
    for (int i = GLOBAL_ID; i < size; i += GLOBAL_SIZE) {
        real derivative;
        out[i] = activation(kind, scale, pre[i], &derivative);
    }
}

/** grad *= activation'(pre). */
KERNEL void activationBackward(GLOBAL const real* RESTRICT pre, GLOBAL real* RESTRICT grad, int size, int kind, real scale) {
    for (int i = GLOBAL_ID; i < size; i += GLOBAL_SIZE) {
        real derivative;
        activation(kind, scale, pre[i], &derivative);
        grad[i] *= derivative;
    }
}

/** The first layer's input from each node's element; also clears the node energies the layers add to, and the
 *  gradient gradH that the backward pass starts from (one launch). */
KERNEL void embed(GLOBAL const int* RESTRICT species, GLOBAL const real* RESTRICT table, int tableStart, int numNodes, int dim, GLOBAL real* RESTRICT h,
        GLOBAL mixed* RESTRICT nodeEnergy, GLOBAL real* RESTRICT gradH, int gradHSize) {
    for (int index = GLOBAL_ID; index < numNodes * dim; index += GLOBAL_SIZE) {
        const int n = index / dim;
        h[index] = table[tableStart + species[n] * dim + index - n * dim];
    }
    for (int n = GLOBAL_ID; n < numNodes; n += GLOBAL_SIZE)
        nodeEnergy[n] = 0;
    for (int i = GLOBAL_ID; i < gradHSize; i += GLOBAL_SIZE)
        gradH[i] = 0;
}

/** The tensor product of sender features with edge harmonics, weighted per edge, summed per receiver.
 *  Terms of row o: (column in hUp, harmonic, radial weight) at tables[termStart + 3t], with value[t]. */
KERNEL void convolution(GLOBAL const real* RESTRICT hUp, GLOBAL const real* RESTRICT sh, GLOBAL const real* RESTRICT w,
        GLOBAL const int* RESTRICT count, GLOBAL const int* RESTRICT sender, int cap,
        GLOBAL const int* RESTRICT tables, GLOBAL const real* RESTRICT values, int rowStart, int termStart, int valueStart,
        int numNodes, int dUp, int dTp, int numWeights, GLOBAL real* RESTRICT M) {
    for (int index = GLOBAL_ID; index < numNodes * dTp; index += GLOBAL_SIZE) {
        const int n = index / dTp, o = index - n * dTp;
        const int begin = tables[rowStart + o], end = tables[rowStart + o + 1];
        real sum = 0;
        for (int k = 0; k < count[n]; k++) {
            const int e = n * cap + k, s = sender[e];
            for (int t = begin; t < end; t++) {
                GLOBAL const int* term = tables + termStart + 3 * t;
                sum += values[valueStart + t] * w[e * numWeights + term[2]] * hUp[s * dUp + term[0]] * sh[e * NSH + term[1]];
            }
        }
        M[index] = sum;
    }
}

/** Gradient of the convolution with respect to the sender features, gathered per sender through the
 *  reverse edges. Terms of row i (an hUp column): (output o, harmonic, radial weight). */
KERNEL void convolutionBackwardNodes(GLOBAL const real* RESTRICT gradM, GLOBAL const real* RESTRICT sh, GLOBAL const real* RESTRICT w,
        GLOBAL const int* RESTRICT count, GLOBAL const int* RESTRICT sender, GLOBAL const int* RESTRICT reverse, int cap,
        GLOBAL const int* RESTRICT tables, GLOBAL const real* RESTRICT values, int rowStart, int termStart, int valueStart,
        int numNodes, int dUp, int dTp, int numWeights, GLOBAL real* RESTRICT gradUp) {
    for (int index = GLOBAL_ID; index < numNodes * dUp; index += GLOBAL_SIZE) {
        const int s = index / dUp, i = index - s * dUp;
        const int begin = tables[rowStart + i], end = tables[rowStart + i + 1];
        real sum = 0;
        for (int k = 0; k < count[s]; k++) {
            const int r = sender[s * cap + k], e = reverse[s * cap + k];
            if (e < 0)
                continue; // only after an overflowed list, whose step is discarded
            for (int t = begin; t < end; t++) {
                GLOBAL const int* term = tables + termStart + 3 * t;
                sum += values[valueStart + t] * w[e * numWeights + term[2]] * gradM[r * dTp + term[0]] * sh[e * NSH + term[1]];
            }
        }
        gradUp[index] = sum;
    }
}

/** Gradient of the convolution with respect to each edge's harmonics and length (through the radial
 *  weights), accumulated over layers into gradSh and gradR. Uses the forward table. */
KERNEL void convolutionBackwardEdges(GLOBAL const real* RESTRICT gradM, GLOBAL const real* RESTRICT hUp, GLOBAL const real* RESTRICT sh,
        GLOBAL const real* RESTRICT w, GLOBAL const real* RESTRICT dwdr, GLOBAL const int* RESTRICT count, GLOBAL const int* RESTRICT sender,
        int cap, int numSlots, GLOBAL const int* RESTRICT tables, GLOBAL const real* RESTRICT values, int rowStart, int termStart,
        int valueStart, int dUp, int dTp, int numWeights, GLOBAL real* RESTRICT gradSh, GLOBAL real* RESTRICT gradR) {
    real gy[NSH];
    for (int e = GLOBAL_ID; e < numSlots; e += GLOBAL_SIZE) {
        const int n = e / cap;
        if (e - n * cap >= count[n])
            continue;
        const int s = sender[e];
        for (int k = 0; k < NSH; k++)
            gy[k] = 0;
        real gr = 0;
        for (int o = 0; o < dTp; o++) {
            const real g = gradM[n * dTp + o];
            const int begin = tables[rowStart + o], end = tables[rowStart + o + 1];
            for (int t = begin; t < end; t++) {
                GLOBAL const int* term = tables + termStart + 3 * t;
                const real c = values[valueStart + t] * g * hUp[s * dUp + term[0]];
                gy[term[1]] += c * w[e * numWeights + term[2]];
                gr += c * sh[e * NSH + term[1]] * dwdr[e * numWeights + term[2]];
            }
        }
        for (int k = 0; k < NSH; k++)
            gradSh[e * NSH + k] += gy[k];
        gradR[e] += gr;
    }
}

/** Symmetric contraction, one thread per (node, channel). A term: (output offset, output stride,
 *  correlation, then (offset, stride) of up to three factors); coefficients [element][term][channel]. */
KERNEL void contraction(GLOBAL const real* RESTRICT A, GLOBAL const int* RESTRICT species, GLOBAL const int* RESTRICT tables,
        GLOBAL const real* RESTRICT values, int termStart, int valueStart, int numTerms, int outputStart, int numOutputs, int channels,
        int numNodes, int dMsg, int dProd, GLOBAL real* RESTRICT B) {
    for (int index = GLOBAL_ID; index < numNodes * channels; index += GLOBAL_SIZE) {
        const int n = index / channels, c = index - n * channels;
        for (int f = 0; f < numOutputs; f++) // this thread's entries of B: no separate clearing launch
            B[n * dProd + tables[outputStart + 2 * f] + c * tables[outputStart + 2 * f + 1]] = 0;
        GLOBAL const real* a = A + n * dMsg;
        GLOBAL const real* coefficient = values + valueStart + species[n] * numTerms * channels + c;
        for (int t = 0; t < numTerms; t++) {
            GLOBAL const int* term = tables + termStart + 9 * t;
            real product = coefficient[t * channels];
            for (int f = 0; f < term[2]; f++)
                product *= a[term[3 + 2 * f] + c * term[4 + 2 * f]];
            B[n * dProd + term[0] + c * term[1]] += product;
        }
    }
}

/** Gradient of the symmetric contraction with respect to A. features: (offset, stride) of each of the
 *  D features, so that this thread first clears exactly the entries of its channel. */
KERNEL void contractionBackward(GLOBAL const real* RESTRICT A, GLOBAL const real* RESTRICT gradB, GLOBAL const int* RESTRICT species,
        GLOBAL const int* RESTRICT tables, GLOBAL const real* RESTRICT values, int termStart, int valueStart, int numTerms,
        int featureStart, int numFeatures, int channels, int numNodes, int dMsg, int dProd, GLOBAL real* RESTRICT gradA) {
    for (int index = GLOBAL_ID; index < numNodes * channels; index += GLOBAL_SIZE) {
        const int n = index / channels, c = index - n * channels;
        GLOBAL const real* a = A + n * dMsg;
        GLOBAL real* ga = gradA + n * dMsg;
        for (int f = 0; f < numFeatures; f++)
            ga[tables[featureStart + 2 * f] + c * tables[featureStart + 2 * f + 1]] = 0;
        GLOBAL const real* coefficient = values + valueStart + species[n] * numTerms * channels + c;
        for (int t = 0; t < numTerms; t++) {
            GLOBAL const int* term = tables + termStart + 9 * t;
            const real g = gradB[n * dProd + term[0] + c * term[1]] * coefficient[t * channels];
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

KERNEL void addNodeEnergies(GLOBAL const real* RESTRICT nodeOut, GLOBAL mixed* RESTRICT nodeEnergy, int numNodes) {
    for (int n = GLOBAL_ID; n < numNodes; n += GLOBAL_SIZE)
        nodeEnergy[n] += nodeOut[n];
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

/** q_i = raw_i + offset[element] + (Q_g - sum_g)/N_g: the predicted charges with each charge group's charge imposed. */
KERNEL void normalizeCharges(GLOBAL const real* RESTRICT raw, GLOBAL const int* RESTRICT species, GLOBAL const real* RESTRICT elementOffsets,
        int numNodes, int numGroups, GLOBAL const int* RESTRICT groupStart, GLOBAL const int* RESTRICT groupMembers,
        GLOBAL const int* RESTRICT nodeGroup, GLOBAL const mixed* RESTRICT groupCharge, GLOBAL mixed* RESTRICT groupMean,
        GLOBAL mixed* RESTRICT work, GLOBAL real* RESTRICT charges, real maxCharge, GLOBAL int* RESTRICT status) {
    for (int n = LOCAL_ID; n < numNodes; n += REDUCE_SIZE)
        work[n] = raw[n] + elementOffsets[species[n]];
    SYNC_THREADS;
    groupMeans(work, numGroups, groupStart, groupMembers, groupMean);
    for (int n = LOCAL_ID; n < numNodes; n += REDUCE_SIZE) {
        const int g = nodeGroup[n];
        const real q = (real) (work[n] + groupCharge[g] / (groupStart[g + 1] - groupStart[g]) - groupMean[g]);
        charges[n] = q;
        if (!(fabs(q) <= maxCharge)) { // NaN too
            status[4] = 1;
            status[5] = n;
        }
    }
}

/** The charge head's input gradient from the potential phi_i = dE/dq_i (kJ/mol/e): since
 *  q_i = raw_i + (Q_g - sum_{j in g} raw_j)/N_g, dE/draw_i = phi_i - mean of phi over i's group, in the model's energy unit. */
KERNEL void chargeGradient(GLOBAL const mixed* RESTRICT potential, int numNodes, int numGroups, GLOBAL const int* RESTRICT groupStart,
        GLOBAL const int* RESTRICT groupMembers, GLOBAL const int* RESTRICT nodeGroup, GLOBAL mixed* RESTRICT groupMean, mixed toModel,
        GLOBAL real* RESTRICT gradScalar) {
    groupMeans(potential, numGroups, groupStart, groupMembers, groupMean);
    for (int n = LOCAL_ID; n < numNodes; n += REDUCE_SIZE)
        gradScalar[n] = (real) ((potential[n] - groupMean[nodeGroup[n]]) * toModel);
}

/** dE/dv of each edge from the gradients with respect to its harmonics and its length. */
KERNEL void edgeGradients(GLOBAL const int* RESTRICT count, GLOBAL const real4* RESTRICT edgeVec, int cap, int numSlots,
        GLOBAL const int* RESTRICT shIndex, GLOBAL const real* RESTRICT shValue, GLOBAL const real* RESTRICT gradSh,
        GLOBAL const real* RESTRICT gradR, GLOBAL real4* RESTRICT gradVec) {
    real y[NSH], du[3 * NSH];
    for (int e = GLOBAL_ID; e < numSlots; e += GLOBAL_SIZE) {
        if (e % cap >= count[e / cap])
            continue;
        const real4 v = edgeVec[e];
        const real3 u = make_real3(v.x / v.w, v.y / v.w, v.z / v.w);
        harmonics(u, shIndex, shValue, y, du, 1);
        // dY/dv = (dY/du - (dY/du . u) u) / r
        real3 g = u * gradR[e];
        for (int k = 0; k < NSH; k++) {
            const real3 d = make_real3(du[3 * k], du[3 * k + 1], du[3 * k + 2]);
            const real radial = d.x * u.x + d.y * u.y + d.z * u.z;
            g += (d - u * radial) * (gradSh[e * NSH + k] / v.w);
        }
        gradVec[e] = make_real4(g.x, g.y, g.z, 0);
    }
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
