#ifndef OPENMM_CPU_ENN_PARALLEL_H_
#define OPENMM_CPU_ENN_PARALLEL_H_

// Work sharing on the CPU platform's thread pool. Chunks are handed out dynamically, but every
// chunk writes only its own outputs, so results do not depend on which thread ran it.

#include "openmm/internal/ThreadPool.h"
#include <atomic>
#include <exception>
#include <mutex>

namespace OpenMMENN {

/** Runs body(chunk, thread) for chunk = 0 .. numChunks-1 on the pool; rethrows the first exception. */
template <class Body>
void parallelFor(OpenMM::ThreadPool& pool, int numChunks, Body body) {
    std::atomic<int> next(0);
    std::exception_ptr error;
    std::mutex errorMutex;
    pool.execute([&](OpenMM::ThreadPool&, int thread) {
        try {
            for (int chunk = next++; chunk < numChunks; chunk = next++)
                body(chunk, thread);
        } catch (...) {
            std::lock_guard<std::mutex> lock(errorMutex);
            if (!error)
                error = std::current_exception();
            next = numChunks; // stop handing out work
        }
    });
    pool.waitForThreads();
    if (error)
        std::rethrow_exception(error);
}

/** The half-open range [begin, end) of chunk `chunk` when n items are cut into chunks of `size`. */
inline void chunkRange(int chunk, int size, int n, int& begin, int& end) {
    begin = chunk * size;
    end = begin + size < n ? begin + size : n;
}

inline int numChunks(int n, int size) {
    return (n + size - 1) / size;
}

} // namespace OpenMMENN

#endif
