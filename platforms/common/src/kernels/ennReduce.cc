// Reductions shared by the ENNForce programs: one work group of REDUCE_SIZE threads sums an array in a
// fixed order, so that sums are identical from run to run (no atomics).

/** The sum of one value per thread of a work group of REDUCE_SIZE threads, by a fixed-order tree;
 *  every thread gets it. buffer: REDUCE_SIZE local entries, free again on return. */
DEVICE mixed groupSum(mixed value, LOCAL_ARG mixed* buffer) {
    buffer[LOCAL_ID] = value;
    SYNC_THREADS;
    for (int step = REDUCE_SIZE / 2; step > 0; step /= 2) {
        if (LOCAL_ID < step)
            buffer[LOCAL_ID] += buffer[LOCAL_ID + step];
        SYNC_THREADS;
    }
    const mixed sum = buffer[0];
    SYNC_THREADS;
    return sum;
}

/** The sum of values[0..n) by one work group. */
DEVICE mixed reduceSum(GLOBAL const mixed* values, int n, LOCAL_ARG mixed* buffer) {
    mixed sum = 0;
    for (int i = LOCAL_ID; i < n; i += REDUCE_SIZE)
        sum += values[i];
    return groupSum(sum, buffer);
}

/** Adds (sum of the terms + constant) * scale to the context's energy buffer; sets status[6] if the sum
 *  times scale is not finite or beyond bound (the host refuses the step). */
KERNEL void sumEnergy(GLOBAL const mixed* RESTRICT terms, int numTerms, mixed constantEnergy, mixed scale, GLOBAL mixed* RESTRICT energyBuffer,
        mixed bound, GLOBAL int* RESTRICT status) {
    LOCAL mixed buffer[REDUCE_SIZE];
    const mixed sum = reduceSum(terms, numTerms, buffer);
    if (LOCAL_ID == 0) {
        energyBuffer[0] += (sum + constantEnergy) * scale;
        if (!(isfinite(sum * scale) && fabs(sum * scale) <= bound))
            status[6] = 1;
    }
}
