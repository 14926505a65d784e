#ifndef OPENMM_ENN_SANITY_BOUNDS_H_
#define OPENMM_ENN_SANITY_BOUNDS_H_

#include <cstdio>
#include <string>

namespace OpenMMENN {

/** Bounds past which a simulation has blown up rather than sampled anything, each an OpenMMException
 *  that names the problem (the GPU kernels check them on the device and flag them in the step's status,
 *  read once per step): an ML particle more than MaxCoordinate nm from the origin along an axis (10 um:
 *  larger than any simulated system, reached by unwrapped periodic coordinates only after milliseconds of
 *  diffusion), a predicted charge beyond MaxCharge e, an energy beyond MaxEnergyPerAtom kJ/mol per ML atom
 *  away from the sum of its reference energies E0 (1e5: a thousand eV per atom), and any non-finite energy
 *  or force. */
struct ENNSanityBounds {
    static constexpr double MaxCoordinate = 1e4, MaxCharge = 10.0, MaxEnergyPerAtom = 1e5;
    /** A cutoff may reach at most this many periodic images along a lattice direction: the plane spacing of
     *  the box must be at least cutoff / MaxPeriodicImages (boxes smaller than the cutoff are fine; a box that a
     *  barostat or a bad input shrank to nothing would make the image loops unbounded). */
    static constexpr int MaxPeriodicImages = 4;
    /** A model's own reciprocal sums (MACELES's truncated sum, PolarMACE's) may take at most this many k vectors (half
     *  set): their number grows with the box volume, and an exploded box would otherwise take gigabytes. */
    static constexpr double MaxReciprocalKVectors = 1e7;
};

/** x for an error message: 6 significant digits, "nan" or "inf" (std::to_string writes 1e300 out in full). */
inline std::string shortNumber(double x) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.6g", x);
    return text;
}

} // namespace OpenMMENN

#endif
