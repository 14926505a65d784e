// The structure factor of the MM charges a PolarMACE region is coupled to in a periodic cell, on a mesh
// (CommonENNPolarMesh): the charges spread by smooth PME's B-splines (ennMesh.cc) onto a fixed-point grid, a DFT pruned to
// the frequencies the k set reads (one axis at a time), and for the gradient the same steps backwards. The grid follows
// the box, so its sizes are arguments, not defines: one program serves every grid. Arithmetic in `real`; the spreading's
// 64-bit atomic adds of fixed-point values give a sum that does not depend on their order.

/** Spreads the charges (w of each position, model units) onto the fixed-point grid (row-major, z fastest). */
KERNEL void polarMeshSpread(GLOBAL const real4* RESTRICT pos, int numCharges, real4 recipA, real4 recipB, real4 recipC, int gridX, int gridY,
        int gridZ, GLOBAL mm_ulong* RESTRICT grid) {
    for (int m = GLOBAL_ID; m < numCharges; m += GLOBAL_SIZE) {
        const real4 p = pos[m];
        int base[3];
        real w[3 * PME_ORDER], dw[3 * PME_ORDER];
        meshStencil(p, recipA, recipB, recipC, gridX, gridY, gridZ, base, w, dw);
        meshSpread(p.w, base, w, gridX, gridY, gridZ, grid);
    }
}

/** The pruned DFT's first stage: the z rows of the fixed-point grid (real values) into z frequencies 0 .. count - 1 (the
 *  grid is real: the others are their conjugates), out[r, c] = sum_z Q[r, z] exp(-2 pi i c z / size) for each row r < rows. */
KERNEL void polarMeshRows(GLOBAL const mm_long* RESTRICT fixed, GLOBAL real2* RESTRICT out, GLOBAL const real2* RESTRICT twiddle, int size,
        int count, int rows) {
    for (int k = GLOBAL_ID; k < rows * count; k += GLOBAL_SIZE) {
        const int c = k % count;
        GLOBAL const mm_long* x = fixed + (k / count) * size;
        int phase = 0;
        real re = 0, im = 0;
        for (int j = 0; j < size; j++) {
            const real v = (real) (x[j] * (mixed) INVERSE_FIXED_SCALE);
            const real2 t = twiddle[phase];
            re += v * t.x;
            im += v * t.y;
            phase += c;
            if (phase >= size)
                phase -= size;
        }
        out[k] = make_real2(re, im);
    }
}

/** One axis of the pruned DFT: out[a, m, b] = sum_j in[a, j, b] exp(-2 pi i p(m, j) / size) for a < outer and b < inner,
 *  between the axis's grid points 0 .. size - 1 and `count` kept frequencies first, first + 1, ... (at index frequency -
 *  first): p = (frequency of m) j into frequencies (toFrequencies), (frequency of j) m out of them; realOut: only the
 *  real part, into a real array. twiddle[t] = exp(-2 pi i t / size); the phases are exact integers mod size. */
KERNEL void polarMeshAxis(GLOBAL const real2* RESTRICT in, GLOBAL real2* RESTRICT out, GLOBAL const real2* RESTRICT twiddle, int size,
        int first, int count, int outer, int inner, int toFrequencies, int realOut) {
    const int inLength = toFrequencies ? size : count, outLength = toFrequencies ? count : size;
    for (int k = GLOBAL_ID; k < outer * outLength * inner; k += GLOBAL_SIZE) {
        const int b = k % inner, m = (k / inner) % outLength, a = k / (inner * outLength);
        GLOBAL const real2* x = in + a * inLength * inner + b;
        // term j's phase: step j + start (mod size)
        const int step = toFrequencies ? ((m + first) % size + size) % size : m;
        int phase = toFrequencies ? 0 : ((first * m) % size + size) % size;
        real re = 0, im = 0;
        for (int j = 0; j < inLength; j++) {
            const real2 v = x[j * inner], t = twiddle[phase];
            re += v.x * t.x - v.y * t.y;
            im += v.x * t.y + v.y * t.x;
            phase += step;
            if (phase >= size)
                phase -= size;
        }
        if (realOut)
            ((GLOBAL real*) out)[k] = re;
        else
            out[k] = make_real2(re, im);
    }
}

/** d/dx of sum_g Q(g) Phi(g) for each charge, Phi a real grid (the stencil's derivatives along the three fractional
 *  coordinates, u_a = size_a x . recip_a), into gradient[3m .. 3m + 2]. */
KERNEL void polarMeshGradient(GLOBAL const real4* RESTRICT pos, int numCharges, real4 recipA, real4 recipB, real4 recipC, int gridX, int gridY,
        int gridZ, GLOBAL const real* RESTRICT phi, GLOBAL mixed* RESTRICT gradient) {
    for (int m = GLOBAL_ID; m < numCharges; m += GLOBAL_SIZE) {
        const real4 p = pos[m];
        int base[3];
        real w[3 * PME_ORDER], dw[3 * PME_ORDER];
        real3 g;
        meshStencil(p, recipA, recipB, recipC, gridX, gridY, gridZ, base, w, dw);
        meshInterpolate(base, w, dw, recipA, recipB, recipC, gridX, gridY, gridZ, phi, 1, 0, &g);
        gradient[3 * m] = p.w * g.x;
        gradient[3 * m + 1] = p.w * g.y;
        gradient[3 * m + 2] = p.w * g.z;
    }
}
