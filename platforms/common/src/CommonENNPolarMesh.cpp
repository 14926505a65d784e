#include "CommonENNPolarMesh.h"
#include "CommonENNKernelSources.h"
#include "CommonENNMesh.h"
#include "CommonENNPrecision.h"
#include "ENNEwald.h"
#include "ENNPeriodicGeometry.h"
#include "openmm/common/ContextSelector.h"
#include <algorithm>
#include <cmath>
#include <map>
#include <string>

using namespace OpenMMENN;
using OpenMM::ComputeArray;
using OpenMM::ComputeKernel;
using OpenMM::Vec3;
using std::vector;
typedef std::complex<double> Complex;

CommonENNPolarMesh::CommonENNPolarMesh(OpenMM::ComputeContext& cc, DeviceWork& deviceWork) : cc(cc), deviceWork(deviceWork) {
    OpenMM::ContextSelector selector(cc);
    std::map<std::string, std::string> defines;
    defines["PME_ORDER"] = cc.intToString(PMEOrder);
    defines["FIXED_SCALE"] = cc.doubleToString(MeshFixedPointScale);
    defines["INVERSE_FIXED_SCALE"] = cc.doubleToString(1.0 / MeshFixedPointScale);
    OpenMM::ComputeProgram program = cc.compileProgram(CommonENNKernelSources::ennMesh + CommonENNKernelSources::ennPolarMesh, defines);
    atomics = hasAtomicAdds64(cc, program);
    spreadKernel = program->createKernel("polarMeshSpread");
    rowsKernel = program->createKernel("polarMeshRows");
    axisKernel = program->createKernel("polarMeshAxis");
    gradientKernel = program->createKernel("polarMeshGradient");
    for (int i = 0; i < 9; i++) // (set in compute and gradient)
        spreadKernel->addArg();
    for (int i = 0; i < 6; i++)
        rowsKernel->addArg();
    for (int i = 0; i < 10; i++)
        axisKernel->addArg();
    for (int i = 0; i < 10; i++)
        gradientKernel->addArg();
}

void CommonENNPolarMesh::prepare(const Vec3* box, const vector<Vec3>& k) {
    reciprocalVectors(box, recip); // recip[a] . box[b] = delta_ab: k = 2 pi sum_a n_a recip[a]
    const PolarMeshGrid mesh(box, k);
    if (!std::equal(mesh.size, mesh.size + 3, grid) || !std::equal(mesh.reach, mesh.reach + 3, reach)) {
        std::copy(mesh.size, mesh.size + 3, grid);
        std::copy(mesh.reach, mesh.reach + 3, reach);
        for (int a = 0; a < 3; a++) // x and y: -reach .. reach; z: 0 .. reach (the grid is real: F(-n) = conj F(n))
            kept[a] = a == 2 ? reach[a] + 1 : 2 * reach[a] + 1;
        const int points = grid[0] * grid[1] * grid[2], real = realSize(cc);
        sizeArray(cc, fixedGrid, points, sizeof(long long), "ennPolarMeshFixedGrid");
        sizeArray(cc, rows, 2 * grid[0] * grid[1] * kept[2], real, "ennPolarMeshRows");
        sizeArray(cc, columns, 2 * grid[0] * kept[1] * kept[2], real, "ennPolarMeshColumns");
        sizeArray(cc, frequencies, 2 * kept[0] * kept[1] * kept[2], real, "ennPolarMeshFrequencies");
        sizeArray(cc, potential, points, real, "ennPolarMeshPotential");
        for (int a = 0; a < 3; a++) { // exp(-2 pi i t / size), t = 0 .. size - 1
            vector<double> twiddle;
            for (int t = 0; t < grid[a]; t++)
                twiddle.insert(twiddle.end(), {std::cos(2 * M_PI * t / grid[a]), -std::sin(2 * M_PI * t / grid[a])});
            sizeArray(cc, twiddles[a], 2 * grid[a], real, "ennPolarMeshTwiddles");
            uploadReals(cc, twiddles[a], twiddle);
        }
    }
    compactIndex.resize(k.size());
    for (size_t i = 0; i < k.size(); i++) { // (n_2 >= 0: PolarMeshGrid's)
        const int* n = &mesh.n[3 * i];
        compactIndex[i] = ((n[0] + reach[0]) * kept[1] + n[1] + reach[1]) * kept[2] + n[2];
    }
    conjugate = mesh.conjugate;
    splineFactor = mesh.splineFactor;
}

void CommonENNPolarMesh::setGridArgs(ComputeKernel& kernel) {
    kernel->setArg(0, positions);
    kernel->setArg(1, numCharges);
    for (int a = 0; a < 3; a++) {
        setReal4Arg(cc, kernel, 2 + a, recip[a]);
        kernel->setArg(5 + a, grid[a]);
    }
}

void CommonENNPolarMesh::axisStage(ComputeArray& in, ComputeArray& out, int axis, int outer, int inner, bool toFrequencies, bool realOut) {
    axisKernel->setArg(0, in);
    axisKernel->setArg(1, out);
    axisKernel->setArg(2, twiddles[axis]);
    axisKernel->setArg(3, grid[axis]);
    axisKernel->setArg(4, axis == 2 ? 0 : -reach[axis]); // the first kept frequency
    axisKernel->setArg(5, kept[axis]);
    axisKernel->setArg(6, outer);
    axisKernel->setArg(7, inner);
    axisKernel->setArg(8, toFrequencies ? 1 : 0);
    axisKernel->setArg(9, realOut ? 1 : 0);
    deviceWork.launch(axisKernel, outer * inner * (toFrequencies ? kept[axis] : grid[axis]));
}

void CommonENNPolarMesh::compute(const Vec3* box, const vector<Vec3>& x, const vector<double>& q, const vector<Vec3>& k, vector<double>& re,
                                 vector<double>& im) {
    OpenMM::ContextSelector selector(cc);
    prepare(box, k);
    numCharges = static_cast<int>(x.size());
    sizeArray(cc, positions, numCharges, 4 * realSize(cc), "ennPolarMeshPositions");
    sizeArray(cc, gradients, 3 * numCharges, mixedSize(cc), "ennPolarMeshGradients");
    vector<double> values(4 * positions.getSize(), 0.0);
    for (int m = 0; m < numCharges; m++)
        std::copy_n(vector<double>{x[m][0], x[m][1], x[m][2], q[m]}.data(), 4, &values[4 * m]);
    uploadReals(cc, positions, values);
    setGridArgs(spreadKernel);
    spreadKernel->setArg(8, fixedGrid);
    deviceWork.clear(cc, fixedGrid);
    deviceWork.launch(spreadKernel, std::max(1, numCharges));
    rowsKernel->setArg(0, fixedGrid);                                       // z rows of the whole grid
    rowsKernel->setArg(1, rows);
    rowsKernel->setArg(2, twiddles[2]);
    rowsKernel->setArg(3, grid[2]);
    rowsKernel->setArg(4, kept[2]);
    rowsKernel->setArg(5, grid[0] * grid[1]);
    deviceWork.launch(rowsKernel, grid[0] * grid[1] * kept[2]);
    axisStage(rows, columns, 1, grid[0], kept[2], true, false);              // y columns at the kept z
    axisStage(columns, frequencies, 0, 1, kept[1] * kept[2], true, false);   // x columns at the kept (y, z)
    const vector<double> F = downloadReals(cc, frequencies);
    deviceWork.transfer();
    re.resize(k.size());
    im.resize(k.size());
    for (size_t i = 0; i < k.size(); i++) { // S(n) = F(n) / prod_a Bhat_a(n_a)
        const Complex f(F[2 * compactIndex[i]], F[2 * compactIndex[i] + 1]);
        const Complex s = (conjugate[i] ? std::conj(f) : f) * splineFactor[i];
        re[i] = s.real();
        im[i] = s.imag();
    }
}

void CommonENNPolarMesh::gradient(const vector<double>& gRe, const vector<double>& gIm, vector<Vec3>& gradient) {
    // As CpuENNPolarMesh: A(n) = (gRe - i gIm)(n) / prod_a Bhat_a(n_a) at the kept frequencies (a term of n_2 < 0 as the
    // conjugate at -n: the same real part), Phi = Re of its transform (the same sign) over the whole grid, then each
    // charge's stencil derivatives.
    OpenMM::ContextSelector selector(cc);
    vector<double> A(frequencies.getSize(), 0.0);
    for (size_t i = 0; i < compactIndex.size(); i++) {
        const Complex a = Complex(gRe[i], -gIm[i]) * splineFactor[i];
        A[2 * compactIndex[i]] += a.real();
        A[2 * compactIndex[i] + 1] += conjugate[i] ? -a.imag() : a.imag();
    }
    uploadReals(cc, frequencies, A);
    axisStage(frequencies, columns, 0, 1, kept[1] * kept[2], false, false);  // x at the kept (y, z)
    axisStage(columns, rows, 1, grid[0], kept[2], false, false);             // y at the kept z
    axisStage(rows, potential, 2, grid[0] * grid[1], 1, false, true);        // z: the whole grid, real
    setGridArgs(gradientKernel);
    gradientKernel->setArg(8, potential);
    gradientKernel->setArg(9, gradients);
    deviceWork.launch(gradientKernel, std::max(1, numCharges));
    const vector<double> g = downloadMixed(cc, gradients);
    deviceWork.transfer();
    gradient.assign(numCharges, Vec3());
    for (int m = 0; m < numCharges; m++)
        gradient[m] = Vec3(g[3 * m], g[3 * m + 1], g[3 * m + 2]);
}
