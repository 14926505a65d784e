// libFuzzer harness for the model-file loader (safetensors header, JSON architecture, tensors) and for what a
// model that loads computes. The invariant, for every input: ENNForce::createFromModelData throws
// OpenMMException, or the model evaluates a small molecule of its own elements on the Reference platform to an
// OpenMMException or to a finite energy and finite forces. Anything else is a finding: a crash, a sanitizer
// report, another exception type, a non-finite result returned (abort), or a hang or runaway memory (libFuzzer's
// -timeout and -rss_limit_mb). Build: tools/sanitize-and-fuzz.sh; findings become tests in TestBadInput.
#include "openmmenn/ENNForce.h"
#include "openmmenn/ENNModel.h"
#include "openmm/Context.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/State.h"
#include "openmm/System.h"
#include "openmm/VerletIntegrator.h"
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

extern "C" void registerENNReferenceKernelFactories();

static OpenMM::Platform& reference() {
    static OpenMM::Platform& platform = [] () -> OpenMM::Platform& {
        registerENNReferenceKernelFactories();
        return OpenMM::Platform::getPlatformByName("Reference");
    }();
    return platform;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::unique_ptr<OpenMMENN::ENNForce> force;
    try {
        force.reset(OpenMMENN::ENNForce::createFromModelData(std::string(reinterpret_cast<const char*>(data), size)));
    } catch (const OpenMM::OpenMMException&) {
        return 0;
    }
    const std::vector<int>& elements = force->getModel().elements;
    if (elements.empty())
        return 0;
    // Five atoms 0.1-0.15 nm apart, cycling through the model's elements (the model's units are its own
    // business: ENNForce converts to nm).
    OpenMM::System system;
    std::vector<OpenMM::Vec3> positions;
    for (int i = 0; i < 5; i++) {
        force->addParticle(system.addParticle(12.0), elements[i % elements.size()]);
        positions.push_back(OpenMM::Vec3(0.1 * i, 0.05 * (i % 2), 0.03 * i * i / 4.0));
    }
    system.addForce(force.release());
    try {
        OpenMM::VerletIntegrator integrator(0.001);
        OpenMM::Context context(system, integrator, reference());
        context.setPositions(positions);
        const OpenMM::State state = context.getState(OpenMM::State::Energy | OpenMM::State::Forces);
        bool finite = std::isfinite(state.getPotentialEnergy());
        for (const OpenMM::Vec3& f : state.getForces())
            finite = finite && std::isfinite(f[0]) && std::isfinite(f[1]) && std::isfinite(f[2]);
        if (!finite) {
            std::fprintf(stderr, "a model loaded and returned a non-finite energy or force without an exception\n");
            std::abort();
        }
    } catch (const OpenMM::OpenMMException&) {
    }
    return 0;
}
