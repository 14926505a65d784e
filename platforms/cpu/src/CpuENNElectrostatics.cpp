#include "CpuENNElectrostatics.h"
#include "openmm/OpenMMException.h"
#include <mutex>
#include <vector>

using namespace OpenMMENN;

namespace {
// FFTW's planner is not thread-safe; Contexts may be created from several threads.
std::mutex& plannerMutex() {
    static std::mutex mutex;
    return mutex;
}
} // namespace

CpuENNElectrostatics::CpuENNElectrostatics(const OpenMM::System& system, const ENNForce& force) : ReferenceENNElectrostatics(system, force) {
    setTransform([this](std::complex<double>* data, const int grid[3], int sign) { transform(data, grid, sign); });
}

CpuENNElectrostatics::~CpuENNElectrostatics() {
    std::lock_guard<std::mutex> lock(plannerMutex());
    for (auto& plan : plans)
        fftw_destroy_plan(plan.second);
}

void CpuENNElectrostatics::transform(std::complex<double>* data, const int grid[3], int sign) {
    // sign +1 is FFTW_BACKWARD (exp(+2 pi i jk/n)), -1 FFTW_FORWARD; both unnormalised, as PME expects.
    const std::array<int, 4> key{grid[0], grid[1], grid[2], sign};
    auto it = plans.find(key);
    if (it == plans.end()) {
        std::lock_guard<std::mutex> lock(plannerMutex());
        std::vector<std::complex<double>> scratch(size_t(grid[0]) * grid[1] * grid[2]);
        fftw_complex* buffer = reinterpret_cast<fftw_complex*>(scratch.data());
        fftw_plan plan = fftw_plan_dft_3d(grid[0], grid[1], grid[2], buffer, buffer, sign > 0 ? FFTW_BACKWARD : FFTW_FORWARD,
                                          FFTW_ESTIMATE | FFTW_UNALIGNED);
        if (plan == nullptr)
            throw OpenMM::OpenMMException("ENNForce: FFTW could not plan a PME transform");
        it = plans.emplace(key, plan).first;
    }
    fftw_complex* buffer = reinterpret_cast<fftw_complex*>(data);
    fftw_execute_dft(it->second, buffer, buffer);
}
