#ifndef OPENMM_ENN_SANITY_BOUNDS_H_
#define OPENMM_ENN_SANITY_BOUNDS_H_

namespace OpenMMENN {

/** Bounds past which a simulation has blown up rather than sampled anything, each an OpenMMException
 *  that names the particle (the GPU kernels check positions and charges on the device, as kernel
 *  arguments; the energy stays on the device and is checked by the CPU and Reference kernels): an ML particle more than MaxCoordinate nm from the origin along
 *  an axis (10 um: larger than any simulated system, reached by unwrapped periodic coordinates only after
 *  milliseconds of diffusion), a predicted charge beyond MaxCharge e, an energy beyond MaxEnergyPerAtom
 *  kJ/mol per ML atom away from the sum of its reference energies E0 (1e5: a thousand eV per atom). */
struct ENNSanityBounds {
    static constexpr double MaxCoordinate = 1e4, MaxCharge = 10.0, MaxEnergyPerAtom = 1e5;
};

} // namespace OpenMMENN

#endif
