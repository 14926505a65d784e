#ifndef OPENMM_ENN_THREAD_POOL_H_
#define OPENMM_ENN_THREAD_POOL_H_

// Work shared out on an OpenMM ThreadPool: chunks handed out dynamically, the first exception kept and rethrown on
// the calling thread (a pool thread must not let one escape). Every chunk writes only its own outputs, so results do
// not depend on which thread ran it. The CPU platform's ParallelSession (CpuENNParallel.h) builds on it.

#include "openmm/internal/ThreadPool.h"
#include <atomic>
#include <exception>
#include <functional>
#include <mutex>

namespace OpenMMENN {

namespace parallel {

/** Runs body(chunk, thread) for chunks handed out from `next`; the first exception is kept and stops the hand-out. */
inline void runChunks(std::atomic<int>& next, int numChunks, const std::function<void(int, int)>& body, int thread,
                      std::exception_ptr& error, std::mutex& errorMutex) {
    try {
        for (int chunk = next++; chunk < numChunks; chunk = next++)
            body(chunk, thread);
    } catch (...) {
        std::lock_guard<std::mutex> lock(errorMutex);
        if (!error)
            error = std::current_exception();
        next = numChunks;
    }
}

} // namespace parallel

/** Runs work(chunk, thread) for chunk = 0 .. numChunks - 1 on the pool's threads (woken for this call) and waits for
 *  them; rethrows the first exception. */
inline void runOnThreadPool(OpenMM::ThreadPool& pool, int numChunks, const std::function<void(int, int)>& work) {
    if (numChunks <= 0)
        return;
    std::atomic<int> next(0);
    std::exception_ptr error;
    std::mutex errorMutex;
    pool.execute([&](OpenMM::ThreadPool&, int thread) { parallel::runChunks(next, numChunks, work, thread, error, errorMutex); });
    pool.waitForThreads();
    if (error)
        std::rethrow_exception(error);
}

} // namespace OpenMMENN

#endif
