#include "CommonENNPolarStructureFactor.h"
#include "CommonENNKernelSources.h"
#include "CommonENNPrecision.h"
#include "openmm/common/ContextSelector.h"

using namespace OpenMMENN;
using OpenMM::Vec3;
using std::vector;

CommonENNPolarStructureFactor::CommonENNPolarStructureFactor(OpenMM::ComputeContext& cc, DeviceWork& deviceWork) : cc(cc), deviceWork(deviceWork) {
    OpenMM::ComputeProgram program = cc.compileProgram(CommonENNKernelSources::ennStructureFactors, {});
    structureKernel = program->createKernel("structureFactors");
    gradientKernel = program->createKernel("structureFactorGradient");
    for (int i = 0; i < 6; i++) // (set in resize and compute)
        structureKernel->addArg();
    for (int i = 0; i < 7; i++)
        gradientKernel->addArg();
    resize(1, 1);
}

void CommonENNPolarStructureFactor::resize(int n, int K) {
    n = std::max(1, n);
    K = std::max(1, K);
    const int real4 = 4 * realSize(cc), mixed = mixedSize(cc);
    sizeArray(cc, positions, n, real4, "ennPolarMMPositions");
    sizeArray(cc, charges, n, realSize(cc), "ennPolarMMCharges");
    sizeArray(cc, gradients, 3 * n, mixed, "ennPolarMMGradients");
    sizeArray(cc, kvectors, K, real4, "ennPolarKVectors");
    sizeArray(cc, structure, 2 * K, mixed, "ennPolarStructure");
    sizeArray(cc, weights, 2 * K, mixed, "ennPolarStructureWeights");
    for (OpenMM::ComputeKernel* kernel : {&structureKernel, &gradientKernel}) {
        (*kernel)->setArg(0, positions);
        (*kernel)->setArg(1, charges);
        (*kernel)->setArg(2, kvectors);
    }
    structureKernel->setArg(5, structure);
    gradientKernel->setArg(5, weights);
    gradientKernel->setArg(6, gradients);
}

void CommonENNPolarStructureFactor::compute(const Vec3*, const vector<Vec3>& x, const vector<double>& q, const vector<Vec3>& k,
                                            vector<double>& re, vector<double>& im) {
    OpenMM::ContextSelector selector(cc);
    numCharges = static_cast<int>(x.size());
    numK = static_cast<int>(k.size());
    resize(numCharges, numK);
    vector<double> values, kvalues;
    for (const Vec3& p : x)
        values.insert(values.end(), {p[0], p[1], p[2], 0.0});
    for (const Vec3& v : k)
        kvalues.insert(kvalues.end(), {v[0], v[1], v[2], 0.0});
    values.resize(4 * std::max(1, numCharges), 0.0);
    kvalues.resize(4 * std::max(1, numK), 0.0);
    uploadReals(cc, positions, values);
    uploadReals(cc, kvectors, kvalues);
    vector<double> charge = q;
    charge.resize(std::max(1, numCharges), 0.0);
    uploadReals(cc, charges, charge);
    for (OpenMM::ComputeKernel* kernel : {&structureKernel, &gradientKernel}) {
        (*kernel)->setArg(3, numK);
        (*kernel)->setArg(4, numCharges);
    }
    deviceWork.launch(structureKernel, std::max(1, numK));
    const vector<double> s = downloadMixed(cc, structure);
    deviceWork.transfer();
    re.resize(numK);
    im.resize(numK);
    for (int n = 0; n < numK; n++) { // the kernel's S(k) has exp(+i k.x); this one exp(-i k.x): its conjugate
        re[n] = s[2 * n];
        im[n] = -s[2 * n + 1];
    }
}

void CommonENNPolarStructureFactor::gradient(const vector<double>& gRe, const vector<double>& gIm, vector<Vec3>& gradient) {
    OpenMM::ContextSelector selector(cc);
    vector<double> w(2 * std::max(1, numK), 0.0);
    for (int n = 0; n < numK; n++) { // gRe Re S + gIm Im S = gRe Re S+ - gIm Im S+ (S+ the kernel's)
        w[2 * n] = gRe[n];
        w[2 * n + 1] = -gIm[n];
    }
    uploadMixed(cc, weights, w);
    deviceWork.launch(gradientKernel, std::max(1, numCharges));
    const vector<double> g = downloadMixed(cc, gradients);
    deviceWork.transfer();
    gradient.assign(numCharges, Vec3());
    for (int m = 0; m < numCharges; m++)
        gradient[m] = Vec3(g[3 * m], g[3 * m + 1], g[3 * m + 2]);
}
