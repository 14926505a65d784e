#include "CommonENNLatentEwald.h"
#include "CommonENNKernelSources.h"
#include "CommonENNPrecision.h"
#include "openmmenn/ENNModel.h"
#include <algorithm>
#include <limits>

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::vector;

CommonENNLatentEwald::CommonENNLatentEwald(OpenMM::ComputeContext& cc, const ENNModel& model, OpenMM::ComputeArray& positions,
                                           OpenMM::ComputeArray& charges, const vector<int>& particles, int numAtoms, OpenMM::ComputeArray& status,
                                           DeviceWork& deviceWork)
    : cc(cc), model(model), deviceWork(deviceWork), numNodes(static_cast<int>(particles.size())) {
    const int realSize = OpenMMENN::realSize(cc), mixedSize = OpenMMENN::mixedSize(cc);
    particleOfNode.initialize<int>(cc, std::max(1, numNodes), "ennLatentParticle");
    if (numNodes > 0)
        particleOfNode.upload(particles);
    potential.initialize(cc, std::max(1, numNodes), mixedSize, "ennLatentPotential");
    energyTerms.initialize(cc, std::max(1, numNodes), mixedSize, "ennLatentEnergies");
    forces.initialize(cc, numAtoms, 4 * realSize, "ennLatentForces");
    cc.clearBuffer(forces);
    cc.clearBuffer(energyTerms);
    kvectors.initialize(cc, 1, 4 * realSize, "ennLatentKVectors");
    structure.initialize(cc, 2, mixedSize, "ennLatentStructure");
    std::map<std::string, std::string> defines;
    defines["REDUCE_SIZE"] = cc.intToString(CommonENNKernelSources::ReduceSize);
    OpenMM::ComputeProgram program = cc.compileProgram(CommonENNKernelSources::ennReduce + CommonENNKernelSources::ennStructureFactors +
                                                        CommonENNKernelSources::ennLatentEwald, defines);
    structureKernel = program->createKernel("structureFactors");
    potentialKernel = program->createKernel("latentPotentials");
    energyKernel = program->createKernel("sumEnergy");
    structureKernel->addArg(positions);
    structureKernel->addArg(charges);
    for (int i = 0; i < 3; i++)
        structureKernel->addArg(); // k vectors, their number (set with the box) and numNodes
    structureKernel->addArg(); // S(k), set with the k set
    potentialKernel->addArg(positions);
    potentialKernel->addArg(charges);
    for (int i = 0; i < 4; i++)
        potentialKernel->addArg(); // k vectors, their number, numNodes, S(k)
    addMixedArg(cc, potentialKernel, 0.0); // the self coefficient, set with the k set
    addMixedArg(cc, potentialKernel, model.energyToKJPerMol);
    addMixedArg(cc, potentialKernel, model.energyToKJPerMol / model.lengthToNm);
    potentialKernel->addArg(particleOfNode);
    potentialKernel->addArg(potential);
    potentialKernel->addArg(forces);
    potentialKernel->addArg(energyTerms);
    energyKernel->addArg(energyTerms);
    energyKernel->addArg(numNodes);
    addMixedArg(cc, energyKernel, 0.0);
    addMixedArg(cc, energyKernel, model.energyToKJPerMol);
    energyKernel->addArg(cc.getEnergyBuffer());
    addMixedArg(cc, energyKernel, std::numeric_limits<double>::infinity()); // only a non-finite energy is refused
    energyKernel->addArg(status);
}

void CommonENNLatentEwald::compute(bool includeEnergy) {
    Vec3 box[3];
    cc.getPeriodicBoxVectors(box[0], box[1], box[2]);
    for (Vec3& v : box)
        v /= model.lengthToNm;
    if (numK == 0 || !sameBox(box, setBox)) { // a new k set: only when the box changes (a barostat's step)
        const LatentEwaldKSet set = latentEwaldKSet(model, box);
        std::copy(box, box + 3, setBox);
        numK = static_cast<int>(set.k.size());
        vector<double> values;
        for (int m = 0; m < numK; m++)
            values.insert(values.end(), {set.k[m][0], set.k[m][1], set.k[m][2], set.weight[m]});
        if (numK == 0)
            values.assign(4, 0.0);
        if (static_cast<int>(kvectors.getSize()) != std::max(1, numK)) {
            kvectors.resize(std::max(1, numK));
            structure.resize(2 * std::max(1, numK));
        }
        uploadReals(cc, kvectors, values);
        structureKernel->setArg(2, kvectors);
        structureKernel->setArg(5, structure);
        structureKernel->setArg(3, numK);
        structureKernel->setArg(4, numNodes);
        potentialKernel->setArg(2, kvectors);
        potentialKernel->setArg(3, numK);
        potentialKernel->setArg(4, numNodes);
        potentialKernel->setArg(5, structure);
        setMixedArg(cc, potentialKernel, 6, set.selfCoefficient);
        deviceWork.transfer();
    }
    if (numK > 0)
        deviceWork.launch(structureKernel, numK);
    deviceWork.launch(potentialKernel, std::max(1, numNodes));
    if (includeEnergy)
        deviceWork.launch(energyKernel, CommonENNKernelSources::ReduceSize, CommonENNKernelSources::ReduceSize);
}
