// Smooth PME's B-spline stencil along one axis (order PME_ORDER) and the check for the 64-bit atomic adds that spread
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
#endif
