#include "CommonENNElectrostatics.h"
#include "CommonENNMesh.h"
#include "CommonENNCells.h"
#include "CommonENNKernelSources.h"
#include "CommonENNPrecision.h"
#include "ENNEwald.h"
#include "ENNPeriodicGeometry.h"
#include "openmm/OpenMMException.h"
#include "openmm/common/ComputeVectorTypes.h"
#include <algorithm>
#include <cmath>
#include <limits>

using namespace OpenMMENN;
using OpenMM::ComputeArray;
using OpenMM::ComputeKernel;
using OpenMM::Vec3;
using std::vector;

namespace {
const int ReduceSize = CommonENNKernelSources::ReduceSize;
} // namespace

CommonENNElectrostatics::CommonENNElectrostatics(OpenMM::ComputeContext& cc, ENNCouplingParameters parameters, int numAtoms,
                                                 ComputeArray& mlCharges, double totalCharge, ComputeArray& status, DeviceWork& deviceWork)
    : cc(cc), deviceWork(deviceWork), coupling(std::move(parameters)), totalCharge(totalCharge) {
    const ENNCouplingParameters& c = coupling;
    const int realSize = OpenMMENN::realSize(cc), mixedSize = OpenMMENN::mixedSize(cc), real4Size = 4 * realSize;
    const bool coulomb = c.method != ENNForce::NoElectrostatics, pme = c.method == ENNForce::PME;
    numSites = static_cast<int>(c.sites.size());
    numGB = static_cast<int>(c.gbParticles.size());
    if (pme)
        gridSize = c.grid[0] * c.grid[1] * c.grid[2];

    // Index maps between System particles, sites and GB particles.
    vector<int> siteOf(numAtoms, -1), gbOf(numAtoms, -1);
    for (int s = 0; s < numSites; s++)
        siteOf[c.sites[s]] = s;
    for (int g = 0; g < numGB; g++)
        gbOf[c.gbParticles[g]] = g;
    siteOfAtom.initialize<int>(cc, numAtoms, "ennSiteOfAtom");
    siteOfAtom.upload(siteOf);
    gbOfAtom.initialize<int>(cc, numAtoms, "ennGBOfAtom");
    gbOfAtom.upload(gbOf);
    siteAtom.initialize<int>(cc, numSites, "ennSiteAtom");
    siteAtom.upload(c.sites);
    mmCharges.initialize(cc, std::max<size_t>(1, c.mmCharges.size()), realSize, "ennMMCharges");
    gbML.initialize<int>(cc, std::max(1, numGB), "ennGBML");
    gbAtom.initialize<int>(cc, std::max(1, numGB), "ennGBAtom");
    gbCharges.initialize(cc, std::max(1, numGB), realSize, "ennGBCharges");
    gbParams.initialize(cc, std::max(1, numGB), real4Size, "ennGBParams");
    gbTanhParams.initialize(cc, std::max(1, numGB), real4Size, "ennGBTanhParams");
    gbNeck.initialize(cc, std::max(1, c.neckSize * c.neckSize), 2 * realSize, "ennGBNeck");
    if (numGB > 0) {
        gbML.upload(c.gbMLIndex);
        gbAtom.upload(c.gbParticles);
        vector<double> params, tanh;
        for (int g = 0; g < numGB; g++) {
            const double offsetRadius = c.gbRadii[g] - c.gbOffset;
            params.insert(params.end(), {c.gbRadii[g], offsetRadius, offsetRadius * c.gbScales[g], double(c.gbNeckIndex[g])});
            tanh.insert(tanh.end(), {c.gbAlpha[g], c.gbBeta[g], c.gbGamma[g], 0.0});
        }
        uploadReals(cc, gbParams, params);
        uploadReals(cc, gbTanhParams, tanh);
        if (c.neckSize > 0) {
            vector<double> neck;
            for (size_t k = 0; k < c.neckM0.size(); k++)
                neck.insert(neck.end(), {c.neckM0[k], c.neckD0[k]});
            uploadReals(cc, gbNeck, neck);
        }
    }
    uploadCharges();

    const ENNCouplingParameters::ExceptionLists exceptions = c.exceptionLists();
    const vector<int>& start = exceptions.start;
    const vector<int>& partner = exceptions.partner;
    const vector<double>& scale = exceptions.scale;
    exceptionStart.initialize<int>(cc, numSites + 1, "ennExceptionStart");
    exceptionStart.upload(start);
    exceptionPartner.initialize<int>(cc, std::max<size_t>(1, partner.size()), "ennExceptionPartner");
    exceptionScale.initialize(cc, std::max<size_t>(1, scale.size()), realSize, "ennExceptionScale");
    if (!partner.empty()) {
        exceptionPartner.upload(partner);
        exceptionScale.upload(scale, true);
    }

    // Per-step arrays. energyTerms: one per site (Coulomb), per grid point (PME), per GB particle.
    sites.initialize(cc, numSites, real4Size, "ennSites");
    gbPos.initialize(cc, std::max(1, numGB), real4Size, "ennGBPositions");
    for (ComputeArray* a : {&born, &chain, &dEdSum})
        a->initialize(cc, std::max(1, numGB), realSize, "ennGBPerParticle");
    gbForce.initialize(cc, std::max(1, numGB), real4Size, "ennGBForce");
    gbPotential.initialize(cc, std::max(1, numGB), mixedSize, "ennGBPotential");
    potential.initialize(cc, c.numML, mixedSize, "ennPotential");
    forces.initialize(cc, numAtoms, real4Size, "ennElectrostaticForces");
    const int numTerms = numSites + gridSize + numGB + 1; // (and the background of latent charges)
    energyTerms.initialize(cc, numTerms, mixedSize, "ennElectrostaticEnergies");
    cc.clearBuffer(energyTerms);

    std::map<std::string, std::string> defines;
    defines["NUM_ML"] = cc.intToString(c.numML);
    defines["NUM_SITES"] = cc.intToString(numSites);
    defines["NUM_GB"] = cc.intToString(c.implicitSolvent ? numGB : 0);
    defines["REDUCE_SIZE"] = cc.intToString(ReduceSize);
    defines["ONE_4PI_EPS0"] = cc.doubleToString(ONE_4PI_EPS0);
    defines["ML_CHARGE_SCALE"] = cc.doubleToString(c.mlChargeScale);
    defines["SQRT_PI"] = cc.doubleToString(std::sqrt(M_PI));
    defines["PME_ENERGY_OFFSET"] = cc.intToString(numSites);
    defines["GB_ENERGY_OFFSET"] = cc.intToString(numSites + gridSize);
    defines["BACKGROUND_ENERGY_OFFSET"] = cc.intToString(numSites + gridSize + numGB);
    if (c.latentCharges)
        defines["LATENT_CHARGES"] = "1";
    if (coulomb)
        defines["COULOMB"] = "1";
    if (c.periodic())
        defines["PERIODIC"] = "1";
    const bool cells = coulomb && c.useCutoff(), gbCells = c.implicitSolvent && c.gbCutoff > 0;
    if (cells || gbCells) {
        const int nodes = std::max(cells ? numSites : 0, gbCells ? numGB : 0);
        for (numBuckets = 64; numBuckets < 2 * nodes;)
            numBuckets *= 2;
        defines["NUM_BUCKETS"] = cc.intToString(numBuckets);
    }
    else
        defines["NUM_BUCKETS"] = "64"; // ennCells.cc compiles, unused
    if (cells)
        defines["CELL_LIST"] = "1";
    if (c.useCutoff()) {
        defines["USE_CUTOFF"] = "1";
        defines["CUTOFF2"] = cc.doubleToString(c.cutoff * c.cutoff);
        defines["KRF"] = cc.doubleToString(c.krf);
        defines["CRF"] = cc.doubleToString(c.crf);
    }
    if (c.mlPairsExcluded)
        defines["ML_PAIRS_EXCLUDED"] = "1";
    if (c.gaussianSelfEnergy > 0)
        defines["GAUSSIAN_SELF"] = cc.doubleToString(c.gaussianSelfEnergy);
    if (c.gaussianSigma > 0)
        defines["GAUSSIAN_S"] = cc.doubleToString(1.0 / (std::sqrt(2.0) * c.gaussianSigma));
    if (c.mlCoulombScale != 1)
        defines["ML_COULOMB_SCALE"] = cc.doubleToString(c.mlCoulombScale);
    if (pme) {
        defines["PME"] = "1";
        defines["PME_ORDER"] = cc.intToString(PMEOrder);
        defines["ALPHA"] = cc.doubleToString(c.alpha);
        defines["PI_SQUARED_OVER_ALPHA_SQUARED"] = cc.doubleToString(M_PI * M_PI / (c.alpha * c.alpha));
        defines["GRID_X"] = cc.intToString(c.grid[0]);
        defines["GRID_Y"] = cc.intToString(c.grid[1]);
        defines["GRID_Z"] = cc.intToString(c.grid[2]);
        defines["FIXED_SCALE"] = cc.doubleToString(MeshFixedPointScale);
    }
    if (c.implicitSolvent) {
        defines["GB_COULOMB"] = cc.doubleToString(c.gbCoulomb);
        defines["GB_SOLUTE_INVERSE"] = cc.doubleToString(c.gbSoluteInverse);
        defines["GB_SOLVENT_INVERSE"] = cc.doubleToString(c.gbSolventInverse);
        if (c.gbKappa > 0)
            defines["GB_KAPPA"] = cc.doubleToString(c.gbKappa);
        if (c.gbTanh)
            defines["GB_TANH"] = "1";
        if (c.gbBuriedAtomTerm)
            defines["GB_BURIED_ATOM_TERM"] = "1";
        if (c.neckSize > 0) {
            defines["NECK_SIZE"] = cc.intToString(c.neckSize);
            defines["NECK_SCALE"] = cc.doubleToString(c.neckScale);
            defines["NECK_CUT"] = cc.doubleToString(GBConstants::neckCut);
        }
        if (gbCells) {
            defines["GB_CUTOFF2"] = cc.doubleToString(c.gbCutoff * c.gbCutoff);
            defines["GB_SHIFT"] = cc.doubleToString(1.0 / c.gbCutoff);
        }
        if (c.gbPeriodic)
            defines["GB_PERIODIC"] = "1";
        defines["SURFACE_FACTOR"] = cc.doubleToString(c.surfaceAreaFactor);
        defines["ACE_PROBE"] = cc.doubleToString(GBConstants::probe);
    }
    OpenMM::ComputeProgram program = cc.compileProgram(CommonENNKernelSources::ennReduce + CommonENNKernelSources::ennCells +
                                                       CommonENNKernelSources::ennMesh + CommonENNKernelSources::ennElectrostatics, defines);

    gatherKernel = program->createKernel("gatherSites");
    gatherKernel->addArg(cc.getPosq());
    gatherKernel->addArg(cc.getAtomIndexArray());
    for (ComputeArray* a : {&siteOfAtom, &gbOfAtom})
        gatherKernel->addArg(*a);
    gatherKernel->addArg(numAtoms);
    for (ComputeArray* a : {&mlCharges, &mmCharges, &gbML, &gbCharges, &sites, &gbPos, &potential, &forces})
        gatherKernel->addArg(*a);
    if (coulomb)
        for (ComputeKernel* k : {&coulombMLKernel, &coulombMMKernel}) {
            *k = program->createKernel(k == &coulombMLKernel ? "coulombML" : "coulombMM");
            for (ComputeArray* a : {&sites, &siteAtom, &exceptionStart, &exceptionPartner, &exceptionScale})
                (*k)->addArg(*a);
            for (int i = 0; i < 3; i++)
                (*k)->addArg(); // box vectors, set every step
            for (ComputeArray* a : {&energyTerms, &potential, &forces})
                (*k)->addArg(*a);
        }
    if (cells) {
        siteCell.initialize(cc, numSites, 4 * sizeof(int), "ennSiteCell");
        siteLists[0].create(cc, program, sites, numSites, numBuckets, c.periodic(), c.cutoff, siteCell, true);
        siteLists[1].create(cc, program, sites, c.numML, numBuckets, c.periodic(), c.cutoff, siteCell, true);
        // The ML sites' kernel reads the list of every site, the MM sites' the list of the ML sites.
        for (int list = 0; list < 2; list++) {
            ComputeKernel& k = list == 0 ? coulombMLKernel : coulombMMKernel;
            k->addArg(); // cell counts, set every step
            k->addArg(siteCell);
            for (ComputeArray* a : {&siteLists[list].bucketStart, &siteLists[list].bucketCount, &siteLists[list].bucketNodes})
                k->addArg(*a);
        }
    }
    if (pme) {
        // The charge spreading needs 64-bit atomics; OpenCL devices may lack them.
        if (!hasAtomicAdds64(cc, program))
            throw OpenMM::OpenMMException("ENNForce: PME on this device needs 64-bit atomic adds (OpenCL: cl_khr_int64_base_atomics)");
        gridML.initialize<long long>(cc, gridSize, "ennGridML");
        gridMM.initialize<long long>(cc, gridSize, "ennGridMM");
        cc.clearBuffer(gridML);
        cc.clearBuffer(gridMM);
        gridA.initialize(cc, gridSize, 2 * realSize, "ennGridA");
        gridB.initialize(cc, gridSize, 2 * realSize, "ennGridB");
        vector<double> allModuli;
        for (int d = 0; d < 3; d++) {
            const int K = c.grid[d];
            vector<double> twiddle;
            for (int j = 0; j < K; j++)
                twiddle.insert(twiddle.end(), {std::cos(2 * M_PI * j / K), std::sin(2 * M_PI * j / K)});
            twiddles[d].initialize(cc, K, 2 * realSize, "ennTwiddles");
            uploadReals(cc, twiddles[d], twiddle);
            const vector<double> m = pmeSplineModuli(K);
            allModuli.insert(allModuli.end(), m.begin(), m.end());
        }
        moduli.initialize(cc, static_cast<int>(allModuli.size()), realSize, "ennPMEModuli");
        moduli.upload(allModuli, true);
        spreadKernel = program->createKernel("pmeSpread");
        spreadKernel->addArg(sites);
        for (int i = 0; i < 3; i++)
            spreadKernel->addArg(); // reciprocal box vectors, set every step
        spreadKernel->addArg(gridML);
        spreadKernel->addArg(gridMM);
        finishSpreadKernel = program->createKernel("pmeFinishSpread");
        for (ComputeArray* a : {&gridML, &gridMM, &gridA})
            finishSpreadKernel->addArg(*a);
#ifdef ENN_HAVE_COMMON_FFT
        bool legal = true;
        for (int d = 0; d < 3; d++)
            legal = legal && cc.findLegalFFTDimension(c.grid[d]) == c.grid[d];
        if (legal)
            fft = cc.createFFT(c.grid[0], c.grid[1], c.grid[2], false);
#endif
        // Forward transform A -> B -> A -> B, convolution B -> A, inverse A -> B -> A -> B.
        const int stride[3] = {c.grid[1] * c.grid[2], c.grid[2], 1};
        for (int direction = 0; direction < 2; direction++)
            for (int d = 0; d < 3; d++) {
                ComputeKernel& k = dftKernels[direction][d];
                k = program->createKernel("dftAxis");
                k->addArg(d % 2 == 0 ? gridA : gridB);
                k->addArg(d % 2 == 0 ? gridB : gridA);
                k->addArg(twiddles[d]);
                k->addArg(c.grid[d]);
                k->addArg(stride[d]);
                k->addArg(direction == 0 ? 1 : -1);
            }
        convolveKernel = program->createKernel("pmeConvolve");
        convolveKernel->addArg(gridB);
        convolveKernel->addArg(moduli);
        for (int i = 0; i < 4; i++)
            convolveKernel->addArg(); // reciprocal box vectors and the prefactor, set every step
        convolveKernel->addArg(gridA);
        convolveKernel->addArg(energyTerms);
        interpolateKernel = program->createKernel("pmeInterpolate");
        for (ComputeArray* a : {&sites, &siteAtom, &gridB})
            interpolateKernel->addArg(*a);
        for (int i = 0; i < 3; i++)
            interpolateKernel->addArg(); // reciprocal box vectors, set every step
        interpolateKernel->addArg(potential);
        interpolateKernel->addArg(forces);
        if (c.latentCharges) {
            backgroundKernel = program->createKernel("pmeLatentBackground");
            backgroundKernel->addArg(sites);
            addMixedArg(cc, backgroundKernel, 0.0); // the MM charges' total and the background's coefficient, set every step
            addMixedArg(cc, backgroundKernel, 0.0);
            backgroundKernel->addArg(potential);
            backgroundKernel->addArg(energyTerms);
        }
    }
    if (c.implicitSolvent) {
        bornKernel = program->createKernel("gbBornRadii");
        for (ComputeArray* a : {&gbPos, &gbParams, &gbTanhParams, &gbNeck, &born, &chain})
            bornKernel->addArg(*a);
        gbPairsKernel = program->createKernel("gbPairs");
        for (ComputeArray* a : {&gbPos, &gbParams, &born, &chain, &energyTerms, &dEdSum, &gbForce, &gbPotential})
            gbPairsKernel->addArg(*a);
        gbForcesKernel = program->createKernel("gbBornForces");
        for (ComputeArray* a : {&gbPos, &gbParams, &gbNeck, &dEdSum, &gbForce, &gbPotential, &gbAtom, &gbML, &potential, &forces})
            gbForcesKernel->addArg(*a);
        if (gbCells) {
            gbCell.initialize(cc, numGB, 4 * sizeof(int), "ennGBCell");
            gbList.create(cc, program, gbPos, numGB, numBuckets, c.gbPeriodic, c.gbCutoff, gbCell, true);
        }
        for (ComputeKernel* k : {&bornKernel, &gbPairsKernel, &gbForcesKernel}) {
            for (int i = 0; i < 3; i++)
                (*k)->addArg(); // box vectors, set every step
            if (gbCells) {
                (*k)->addArg(); // cell counts, set every step
                for (ComputeArray* a : {&gbCell, &gbList.bucketStart, &gbList.bucketCount, &gbList.bucketNodes})
                    (*k)->addArg(*a);
            }
        }
    }
    energyKernel = program->createKernel("sumEnergy");
    energyKernel->addArg(energyTerms);
    energyKernel->addArg(numTerms);
    addMixedArg(cc, energyKernel, 0.0); // the PME neutralizing background, set every step
    addMixedArg(cc, energyKernel, 1.0);
    energyKernel->addArg(cc.getEnergyBuffer());
    addMixedArg(cc, energyKernel, std::numeric_limits<double>::infinity()); // only a non-finite energy is refused
    energyKernel->addArg(status);
}

void CommonENNElectrostatics::uploadCharges() {
    if (!coupling.mmCharges.empty())
        mmCharges.upload(coupling.mmCharges, true);
    if (numGB > 0)
        gbCharges.upload(coupling.gbCharges, true);
}

void CommonENNElectrostatics::updateCharges(const ENNForce& force, double total) {
    coupling.updateCharges(force);
    totalCharge = total;
    uploadCharges();
}

void CommonENNElectrostatics::transform(bool forward) {
#ifdef ENN_HAVE_COMMON_FFT
    if (fft) {
        fft->execFFT(gridA, gridB, forward);
        deviceWork.fft();
        return;
    }
#endif
    for (int d = 0; d < 3; d++)
        deviceWork.launch(dftKernels[forward ? 0 : 1][d], gridSize);
}

void CommonENNElectrostatics::checkBox() const {
    Vec3 box[3];
    cc.getPeriodicBoxVectors(box[0], box[1], box[2]);
    coupling.checkBox(box);
}

void CommonENNElectrostatics::compute(bool includeEnergy) {
    const ENNCouplingParameters& c = coupling;
    Vec3 box[3];
    cc.getPeriodicBoxVectors(box[0], box[1], box[2]);
    deviceWork.launch(gatherKernel, cc.getNumAtoms());
    double background = 0;
    if (c.method != ENNForce::NoElectrostatics) {
        for (int i = 0; i < 3; i++) {
            setReal4Arg(cc, coulombMLKernel, 5 + i, box[i]);
            setReal4Arg(cc, coulombMMKernel, 5 + i, box[i]);
        }
        if (siteLists[0].numNodes > 0) {
            const OpenMM::mm_int4 numCells = siteLists[0].build(cc, deviceWork, box);
            siteLists[1].build(cc, deviceWork, box);
            coulombMLKernel->setArg(11, numCells);
            coulombMMKernel->setArg(11, numCells);
        }
        deviceWork.launch(coulombMLKernel, c.numML * ReduceSize, ReduceSize);
        if (numSites > c.numML)
            deviceWork.launch(coulombMMKernel, numSites - c.numML);
    }
    if (c.method == ENNForce::PME) {
        const double volume = boxVolume(box);
        Vec3 recip[3];
        reciprocalVectors(box, recip);
        for (int i = 0; i < 3; i++) {
            setReal4Arg(cc, spreadKernel, 1 + i, recip[i]);
            setReal4Arg(cc, convolveKernel, 2 + i, recip[i]);
            setReal4Arg(cc, interpolateKernel, 3 + i, recip[i]);
        }
        setRealArg(cc, convolveKernel, 5, ONE_4PI_EPS0 / (M_PI * volume));
        deviceWork.launch(spreadKernel, numSites);
        deviceWork.launch(finishSpreadKernel, gridSize);
        transform(true);
        deviceWork.launch(convolveKernel, gridSize);
        transform(false);
        deviceWork.launch(interpolateKernel, numSites);
        double mmTotal = 0;
        for (double q : c.mmCharges)
            mmTotal += q;
        if (c.latentCharges) { // the net charge moves with the charges: summed on the device, with its potential
            setMixedArg(cc, backgroundKernel, 1, mmTotal);
            setMixedArg(cc, backgroundKernel, 2, neutralizingBackgroundEnergy(1.0, box, c.alpha));
            deviceWork.launch(backgroundKernel, ReduceSize, ReduceSize);
        } else // the ML charges sum to the constrained total, so the net charge needs no reduction
            background = neutralizingBackgroundEnergy(totalCharge + mmTotal, box, c.alpha) - neutralizingBackgroundEnergy(mmTotal, box, c.alpha);
    }
    if (c.implicitSolvent) {
        const OpenMM::mm_int4 numCells = gbList.numNodes > 0 ? gbList.build(cc, deviceWork, box) : OpenMM::mm_int4(1, 1, 1, 0);
        // Argument positions: gbBornRadii has 6 arrays before the box, gbPairs 8, gbBornForces 10.
        const int boxArg[3] = {6, 8, 10};
        ComputeKernel* kernels[3] = {&bornKernel, &gbPairsKernel, &gbForcesKernel};
        for (int k = 0; k < 3; k++) {
            for (int i = 0; i < 3; i++)
                setReal4Arg(cc, *kernels[k], boxArg[k] + i, box[i]);
            if (gbList.numNodes > 0)
                (*kernels[k])->setArg(boxArg[k] + 3, numCells);
            deviceWork.launch(*kernels[k], numGB * ReduceSize, ReduceSize);
        }
    }
    if (includeEnergy) {
        setMixedArg(cc, energyKernel, 2, background);
        deviceWork.launch(energyKernel, ReduceSize, ReduceSize);
    }
}
