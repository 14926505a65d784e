// MACELES's truncated periodic sum of its latent charges (ENNLatentEwald.h; CommonENNLatentEwald drives these
// kernels), in the model's units: k vectors (kx, ky, kz, w_k) from the host, S(k) per k vector (ennStructureFactors.cc), then per ML atom the
// potential, the force at fixed charges and its energy term q_i phi_i / 2 (the energy is a quadratic form in the charges).

/** phi_i = sum_k 2 w_k Re(S(k) exp(-i k.r_i)) - 2 c q_i (kJ/mol/e), the force -dE/dr_i at fixed charges (kJ/mol/nm, at
 *  the System particle), and the energy term q_i phi_i / 2 (model units), one thread per ML atom. */
KERNEL void latentPotentials(GLOBAL const real4* RESTRICT pos, GLOBAL const real* RESTRICT charges, GLOBAL const real4* RESTRICT kvectors,
        int numK, int numNodes, GLOBAL const mixed* RESTRICT structure, mixed selfCoefficient, mixed energyToKJ, mixed forceToKJNm,
        GLOBAL const int* RESTRICT particleOfNode, GLOBAL mixed* RESTRICT potential, GLOBAL real4* RESTRICT forces,
        GLOBAL mixed* RESTRICT energyTerms) {
    for (int i = GLOBAL_ID; i < numNodes; i += GLOBAL_SIZE) {
        const real4 r = pos[i];
        const mixed q = charges[i];
        mixed phi = 0, gx = 0, gy = 0, gz = 0;
        for (int m = 0; m < numK; m++) {
            const real4 k = kvectors[m];
            const real phase = k.x * r.x + k.y * r.y + k.z * r.z;
            const mixed c = cos(phase), s = sin(phase);
            const mixed re = structure[2 * m], im = structure[2 * m + 1];
            phi += 2 * k.w * (re * c + im * s);
            const mixed g = 2 * k.w * q * (im * c - re * s);
            gx += g * k.x;
            gy += g * k.y;
            gz += g * k.z;
        }
        phi -= 2 * selfCoefficient * q;
        potential[i] = phi * energyToKJ;
        energyTerms[i] = q * phi / 2;
        forces[particleOfNode[i]] = make_real4((real) (-gx * forceToKJNm), (real) (-gy * forceToKJNm), (real) (-gz * forceToKJNm), 0);
    }
}
