#ifndef OPENMM_ENN_CHARGE_GROUPS_H_
#define OPENMM_ENN_CHARGE_GROUPS_H_

// The predicted charges for every platform: the constraint on them (each charge group's charges sum to its
// charge, by a uniform shift within the group, q_i = raw_i + (Q_g - sum_{j in g} raw_j) / N_g; without
// groups in the force, one group of all ML particles with the total charge; a model with unconstrained (latent)
// charges has no group, and groupOf is -1), and the callback through which a
// network asks the energy terms that depend on them for their potential.

#include "openmmenn/ENNForce.h"
#include "openmm/OpenMMException.h"
#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace OpenMMENN {

/** Given the predicted charges, fills potential[i] = dE_other/dq_i of an energy term that depends on them. */
typedef std::function<void(const std::vector<double>& charges, std::vector<double>& potential)> ChargeCoupling;

struct ENNChargeGroups {
    ENNChargeGroups() = default;
    std::vector<int> groupOf;    // group of each ML particle
    std::vector<double> charge;  // of each group (e)
    std::vector<int> start, members; // members of group g: members[start[g] .. start[g + 1])

    /** Read and check the force's groups; throws OpenMMException naming the problem. */
    explicit ENNChargeGroups(const ENNForce& force) {
        const int n = force.getNumParticles();
        if (force.hasLatentCharges()) { // every particle in no group, nothing shifted
            groupOf.assign(n, -1);
            start = {0};
            return;
        }
        if (force.getNumChargeGroups() == 0) {
            groupOf.assign(n, 0);
            charge = {force.getTotalCharge()};
            start = {0, n};
            for (int i = 0; i < n; i++)
                members.push_back(i);
            return;
        }
        groupOf.assign(n, -1);
        double sum = 0.0;
        start.push_back(0);
        for (int g = 0; g < force.getNumChargeGroups(); g++) {
            std::vector<int> particles;
            double q;
            force.getChargeGroupParameters(g, particles, q);
            if (particles.empty())
                throw OpenMM::OpenMMException("ENNForce: charge group " + std::to_string(g) + " is empty");
            for (int p : particles) {
                if (p < 0 || p >= n)
                    throw OpenMM::OpenMMException("ENNForce: charge group " + std::to_string(g) + " names particle " + std::to_string(p) +
                                                  ", but the force has " + std::to_string(n) + " particles");
                if (groupOf[p] >= 0)
                    throw OpenMM::OpenMMException("ENNForce: particle " + std::to_string(p) + " is in charge groups " +
                                                  std::to_string(groupOf[p]) + " and " + std::to_string(g));
                groupOf[p] = g;
                members.push_back(p);
            }
            start.push_back(static_cast<int>(members.size()));
            charge.push_back(q);
            sum += q;
        }
        for (int i = 0; i < n; i++)
            if (groupOf[i] < 0)
                throw OpenMM::OpenMMException("ENNForce: particle " + std::to_string(i) + " is in no charge group (with charge groups, every particle needs one)");
        if (std::abs(sum - force.getTotalCharge()) > 1e-6)
            throw OpenMM::OpenMMException("ENNForce: the charge groups' charges add up to " + std::to_string(sum) + " e, but the total charge is " +
                                          std::to_string(force.getTotalCharge()) + " e");
    }
    int numGroups() const { return static_cast<int>(charge.size()); }
    int size(int g) const { return start[g + 1] - start[g]; }
    double total() const {
        double sum = 0.0;
        for (double q : charge)
            sum += q;
        return sum;
    }
    /** raw charges -> constrained charges, in place (particle order). */
    void apply(std::vector<double>& q) const {
        std::vector<double> sum(charge.size(), 0.0);
        for (size_t i = 0; i < q.size(); i++)
            if (groupOf[i] >= 0)
                sum[groupOf[i]] += q[i];
        for (size_t i = 0; i < q.size(); i++)
            if (groupOf[i] >= 0)
                q[i] += (charge[groupOf[i]] - sum[groupOf[i]]) / size(groupOf[i]);
    }
    /** dE/dq -> dE/draw: the potential minus its mean over the group (particle order). */
    std::vector<double> project(const std::vector<double>& phi) const {
        std::vector<double> mean(charge.size(), 0.0), out(phi);
        for (size_t i = 0; i < phi.size(); i++)
            if (groupOf[i] >= 0)
                mean[groupOf[i]] += phi[i] / size(groupOf[i]);
        for (size_t i = 0; i < phi.size(); i++)
            if (groupOf[i] >= 0)
                out[i] -= mean[groupOf[i]];
        return out;
    }
};

} // namespace OpenMMENN

#endif
