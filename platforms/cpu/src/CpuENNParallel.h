#ifndef OPENMM_CPU_ENN_PARALLEL_H_
#define OPENMM_CPU_ENN_PARALLEL_H_

// Work sharing on the CPU platform's thread pool. Chunks are handed out dynamically, but every
// chunk writes only its own outputs, so results do not depend on which thread ran it.
//
// Each ThreadPool::execute wakes the pool's threads and puts them back to sleep: ~90 us per call on
// the 2-core development machine, against a few us of work per pass for a small molecule, and an
// evaluation makes some twenty passes. A ParallelSession holds the pool's threads for one whole
// evaluation instead: they wait for work by spinning (yielding after a while, so an oversubscribed
// machine keeps running), and the calling thread takes part as thread 0, so parallelFor costs a few
// atomic operations.

#include "ENNThreadPool.h"
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace OpenMMENN {

/** FFTW's planner is not thread-safe, and Contexts may be created from several threads: every plan is made under this. */
inline std::mutex& fftwPlannerMutex() {
    static std::mutex mutex;
    return mutex;
}

namespace parallel {

/** Waits until ready() is true: a short spin, then yielding the core between checks. */
template <class Ready>
void spinUntil(Ready ready) {
    for (int spins = 0; !ready(); spins++) {
        if (spins < 2000) {
#if defined(__x86_64__) || defined(__i386__)
            _mm_pause();
#endif
        } else
            std::this_thread::yield();
    }
}

} // namespace parallel

/**
 * The pool's threads, held for the lifetime of this object (one force evaluation) and fed by parallelFor
 * on `pool` from the thread that made it. Threads 1 .. n-1 of the pool work; the caller is thread 0.
 */
class ParallelSession {
public:
    explicit ParallelSession(OpenMM::ThreadPool& pool) : pool(pool), previous(active()) {
        numThreads = pool.getNumThreads();
        active() = this;
        if (numThreads > 1)
            pool.execute([this](OpenMM::ThreadPool&, int thread) {
                if (thread > 0)
                    workerLoop(thread);
            });
    }
    ~ParallelSession() {
        if (numThreads > 1) {
            stop = true;
            generation.fetch_add(1, std::memory_order_release);
            pool.waitForThreads();
        }
        active() = previous;
    }
    ParallelSession(const ParallelSession&) = delete;
    ParallelSession& operator=(const ParallelSession&) = delete;

    /** The session of `pool` opened on this thread, or null. */
    static ParallelSession* of(const OpenMM::ThreadPool& pool) {
        ParallelSession* s = active();
        return s != nullptr && &s->pool == &pool ? s : nullptr;
    }

    void run(int chunks, const std::function<void(int, int)>& work) {
        std::exception_ptr error;
        std::mutex errorMutex;
        body = &work;
        numChunks = chunks;
        next = 0;
        finished.store(0, std::memory_order_relaxed);
        firstError = &error;
        firstErrorMutex = &errorMutex;
        generation.fetch_add(1, std::memory_order_release);
        parallel::runChunks(next, chunks, work, 0, error, errorMutex);
        parallel::spinUntil([&] { return finished.load(std::memory_order_acquire) == numThreads - 1; });
        if (error)
            std::rethrow_exception(error);
    }

private:
    static ParallelSession*& active() {
        thread_local ParallelSession* session = nullptr;
        return session;
    }
    void workerLoop(int thread) {
        uint64_t seen = 0;
        while (true) {
            parallel::spinUntil([&] { return generation.load(std::memory_order_acquire) != seen; });
            seen = generation.load(std::memory_order_acquire);
            if (stop)
                return;
            parallel::runChunks(next, numChunks, *body, thread, *firstError, *firstErrorMutex);
            finished.fetch_add(1, std::memory_order_release);
        }
    }

    OpenMM::ThreadPool& pool;
    ParallelSession* previous;
    int numThreads;
    std::atomic<uint64_t> generation{0};
    std::atomic<int> next{0}, finished{0};
    std::atomic<bool> stop{false};
    const std::function<void(int, int)>* body = nullptr;
    int numChunks = 0;
    std::exception_ptr* firstError = nullptr;
    std::mutex* firstErrorMutex = nullptr;
};

/** Runs body(chunk, thread) for chunk = 0 .. numChunks-1 on the pool (through its ParallelSession if this
 *  thread has one open); rethrows the first exception. */
template <class Body>
void parallelFor(OpenMM::ThreadPool& pool, int numChunks, Body body) {
    if (numChunks <= 0)
        return;
    const std::function<void(int, int)> work = std::ref(body); // a reference: no copy of the captures on the heap
    if (ParallelSession* session = ParallelSession::of(pool)) {
        session->run(numChunks, work);
        return;
    }
    runOnThreadPool(pool, numChunks, work);
}

/** The half-open range [begin, end) of chunk `chunk` when n items are cut into chunks of `size`. */
inline void chunkRange(int chunk, int size, int n, int& begin, int& end) {
    begin = chunk * size;
    end = begin + size < n ? begin + size : n;
}

inline int numChunks(int n, int size) {
    return (n + size - 1) / size;
}

/** Runs visit(i) for i = 0 .. n-1 on the pool, in pieces of `chunkSize` consecutive items (fixed by n, not by the
 *  threads, so outputs written per item do not depend on the thread count). */
template <class Visit>
void parallelForEach(OpenMM::ThreadPool& pool, int n, int chunkSize, Visit visit) {
    parallelFor(pool, numChunks(n, chunkSize), [&](int chunk, int) {
        int begin, end;
        chunkRange(chunk, chunkSize, n, begin, end);
        for (int i = begin; i < end; i++)
            visit(i);
    });
}

} // namespace OpenMMENN

#endif
