// Structure factors of point charges over a set of k vectors (real4: kx, ky, kz, unused), and their gradient: MACELES's
// latent charges (CommonENNLatentEwald) and the MM charges a PolarMACE head is coupled to in a cell
// (CommonENNPolarStructureFactor). Phases in `real`, sums in `mixed`, each in a fixed order.

/** S(k) = sum_i q_i exp(i k.r_i) (real and imaginary parts at 2m, 2m + 1), one thread per k vector, summed in atom order. */
KERNEL void structureFactors(GLOBAL const real4* RESTRICT pos, GLOBAL const real* RESTRICT charges, GLOBAL const real4* RESTRICT kvectors,
        int numK, int numNodes, GLOBAL mixed* RESTRICT structure) {
    for (int m = GLOBAL_ID; m < numK; m += GLOBAL_SIZE) {
        const real4 k = kvectors[m];
        mixed re = 0, im = 0;
        for (int i = 0; i < numNodes; i++) {
            const real4 r = pos[i];
            const real phase = k.x * r.x + k.y * r.y + k.z * r.z;
            re += charges[i] * cos(phase);
            im += charges[i] * sin(phase);
        }
        structure[2 * m] = re;
        structure[2 * m + 1] = im;
    }
}

/** d/dr_i of sum_k (a_k Re S(k) + b_k Im S(k)) = q_i sum_k k (b_k cos(k.r_i) - a_k sin(k.r_i)), with (a_k, b_k) at
 *  2k, 2k + 1 of weights; one thread per charge, summed in k order; into gradient[3i .. 3i + 2]. */
KERNEL void structureFactorGradient(GLOBAL const real4* RESTRICT pos, GLOBAL const real* RESTRICT charges, GLOBAL const real4* RESTRICT kvectors,
        int numK, int numNodes, GLOBAL const mixed* RESTRICT weights, GLOBAL mixed* RESTRICT gradient) {
    for (int i = GLOBAL_ID; i < numNodes; i += GLOBAL_SIZE) {
        const real4 r = pos[i];
        mixed gx = 0, gy = 0, gz = 0;
        for (int m = 0; m < numK; m++) {
            const real4 k = kvectors[m];
            const real phase = k.x * r.x + k.y * r.y + k.z * r.z;
            const mixed g = weights[2 * m + 1] * cos(phase) - weights[2 * m] * sin(phase);
            gx += g * k.x;
            gy += g * k.y;
            gz += g * k.z;
        }
        const mixed q = charges[i];
        gradient[3 * i] = q * gx;
        gradient[3 * i + 1] = q * gy;
        gradient[3 * i + 2] = q * gz;
    }
}
