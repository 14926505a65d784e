// Smooth PME's B-spline stencil (order PME_ORDER), spreading on it and interpolating through it, and the check for the 64-bit atomic adds that spread
// charges on a fixed-point grid, shared by the electrostatics' PME (ennElectrostatics.cc)
// and a PolarMACE region's MM mesh (ennPolarMesh.cc). Arithmetic in `real`.

/** Marks the device able to do the 64-bit atomic adds that charge spreading needs. */
KERNEL void checkAtomics(GLOBAL int* RESTRICT flag) {
#ifdef SUPPORTS_64_BIT_ATOMICS
    if (GLOBAL_ID == 0)
        flag[0] = 1;
#endif
}

#ifdef PME_ORDER
/** Grid indices and B-spline weights (with derivatives) of one axis: weight j sits at (base - j) mod size. */
DEVICE void splineWeights(real u, int size, int* base, real* w, real* dw) {
    const real s = u - floor(u);
    const real x = s * size;
    int b = (int) floor(x);
    const real f = x - b;
    *base = b >= size ? b - size : b;
    // m[j] = M_k(f + j), built up from M_2 by M_k(x) = (x M_{k-1}(x) + (k - x) M_{k-1}(x - 1)) / (k - 1).
    real m[PME_ORDER];
    for (int j = 0; j < PME_ORDER; j++)
        m[j] = 0;
    m[0] = f;
    m[1] = 1 - f;
    for (int k = 3; k <= PME_ORDER; k++) {
        if (k == PME_ORDER)
            for (int j = 0; j < PME_ORDER; j++)
                dw[j] = m[j] - (j > 0 ? m[j - 1] : 0);
        for (int j = k - 1; j >= 0; j--)
            m[j] = ((f + j) * m[j] + (j > 0 ? (k - f - j) * m[j - 1] : 0)) / (k - 1);
    }
    for (int j = 0; j < PME_ORDER; j++)
        w[j] = m[j];
}

DEVICE int wrapIndex(int i, int size) {
    return i < 0 ? i + size : i;
}

/** The stencil of a charge at p on a grid of the given sizes (recipA, B, C: the reciprocal box vectors, fractional
 *  coordinate u = p . recip): splineWeights along each axis, weights and derivatives at [axis * PME_ORDER + j]. */
DEVICE void meshStencil(real4 p, real4 recipA, real4 recipB, real4 recipC, int gridX, int gridY, int gridZ, int* base, real* w, real* dw) {
    splineWeights(p.x * recipA.x + p.y * recipA.y + p.z * recipA.z, gridX, &base[0], &w[0], &dw[0]);
    splineWeights(p.x * recipB.x + p.y * recipB.y + p.z * recipB.z, gridY, &base[1], &w[PME_ORDER], &dw[PME_ORDER]);
    splineWeights(p.x * recipC.x + p.y * recipC.y + p.z * recipC.z, gridZ, &base[2], &w[2 * PME_ORDER], &dw[2 * PME_ORDER]);
}

/** Spreads the charge q over its stencil (meshStencil's base and w) on a fixed-point grid (row-major, z fastest): 64-bit
 *  atomic adds of q w_a w_b w_c FIXED_SCALE, whose sum does not depend on their order. */
DEVICE void meshSpread(real q, const int* base, const real* w, int gridX, int gridY, int gridZ, GLOBAL mm_ulong* RESTRICT grid) {
#ifdef SUPPORTS_64_BIT_ATOMICS
    for (int a = 0; a < PME_ORDER; a++) {
        const int ix = wrapIndex(base[0] - a, gridX);
        for (int b = 0; b < PME_ORDER; b++) {
            const int iy = wrapIndex(base[1] - b, gridY);
            const real qxy = q * w[a] * w[PME_ORDER + b];
            for (int c = 0; c < PME_ORDER; c++) {
                const int iz = wrapIndex(base[2] - c, gridZ);
                const real add = qxy * w[2 * PME_ORDER + c];
                ATOMIC_ADD(&grid[(ix * gridY + iy) * gridZ + iz], (mm_ulong) ((mm_long) (add * FIXED_SCALE)));
            }
        }
    }
#endif
}

/** A grid's value at a point through its stencil (meshStencil's base, w and dw), sum_g v(g) w_a w_b w_c, with v(g) =
 *  values[stride g + offset]; *gradient gets its derivative with respect to the point (through the fractional
 *  coordinates u_a = size_a x . recip_a). */
DEVICE real meshInterpolate(const int* base, const real* w, const real* dw, real4 recipA, real4 recipB, real4 recipC, int gridX, int gridY,
        int gridZ, GLOBAL const real* RESTRICT values, int stride, int offset, real3* gradient) {
    real phi = 0, gx = 0, gy = 0, gz = 0;
    for (int a = 0; a < PME_ORDER; a++) {
        const int ix = wrapIndex(base[0] - a, gridX);
        for (int b = 0; b < PME_ORDER; b++) {
            const int iy = wrapIndex(base[1] - b, gridY);
            for (int c = 0; c < PME_ORDER; c++) {
                const int iz = wrapIndex(base[2] - c, gridZ);
                const real value = values[stride * ((ix * gridY + iy) * gridZ + iz) + offset];
                const real wa = w[a], wb = w[PME_ORDER + b], wc = w[2 * PME_ORDER + c];
                phi += value * wa * wb * wc;
                gx += value * dw[a] * wb * wc;
                gy += value * wa * dw[PME_ORDER + b] * wc;
                gz += value * wa * wb * dw[2 * PME_ORDER + c];
            }
        }
    }
    gx *= gridX;
    gy *= gridY;
    gz *= gridZ;
    *gradient = make_real3(recipA.x * gx + recipB.x * gy + recipC.x * gz, recipA.y * gx + recipB.y * gy + recipC.y * gz,
                           recipA.z * gx + recipB.z * gy + recipC.z * gz);
    return phi;
}
#endif
