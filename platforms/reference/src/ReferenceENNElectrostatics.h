#ifndef OPENMM_REFERENCE_ENN_ELECTROSTATICS_H_
#define OPENMM_REFERENCE_ENN_ELECTROSTATICS_H_

// Every electrostatic term that involves the ML atoms' predicted charges, in double precision:
// ML-ML and ML-MM Coulomb (NoCutoff, reaction field, or PME real + reciprocal + self + exclusion
// corrections + neutralizing background), and generalized Born OBC2 with the ACE surface term over
// all atoms. Returns the energy, adds forces on every atom at fixed charges, and gives
// phi_i = dE/dq_i for the network's chain rule. Units: nm, e, kJ/mol.

#include "openmmenn/ENNForce.h"
#include "ENNCouplingParameters.h"
#include "openmm/Vec3.h"
#include <vector>

namespace OpenMMENN {

class ReferenceENNElectrostatics {
public:
    ReferenceENNElectrostatics(const OpenMM::System& system, const ENNForce& force) : c(system, force) {}
    bool active() const { return c.active(); }
    void updateCharges(const ENNForce& force) { c.updateCharges(force); }

    /**
     * @param positions  all System particles (nm)
     * @param box        periodic box vectors (used by periodic methods)
     * @param mlCharges  predicted charges, in the order of the force's ML particles
     * @param forces     forces on all System particles, added to
     * @param potential  receives dE/dq for each ML particle (kJ/mol/e)
     */
    double compute(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box, const std::vector<double>& mlCharges,
                   std::vector<OpenMM::Vec3>& forces, std::vector<double>& potential) const;

private:
    /** Generalized Born over all GB particles (O(N^2) pairs, within the GB cutoff if any): returns the energy, adds
     *  forces, adds dE/dq to `potential`. */
    double generalizedBorn(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box, const std::vector<double>& mlCharges,
                           std::vector<OpenMM::Vec3>& forces, std::vector<double>& potential) const;
    double coulomb(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box, const std::vector<double>& siteCharges,
                   std::vector<OpenMM::Vec3>& forces, std::vector<double>& sitePotential) const;
    ENNCouplingParameters c;
};

} // namespace OpenMMENN

#endif
