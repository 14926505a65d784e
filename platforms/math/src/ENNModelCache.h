#ifndef OPENMM_ENN_MODEL_CACHE_H_
#define OPENMM_ENN_MODEL_CACHE_H_

// What a platform derives from a model whatever the particles are (float weights, radial tables), built once per
// model and shared read-only by every Context of that model in the process.

#include "openmmenn/ENNModel.h"
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

namespace OpenMMENN {

/** The T of `model`: build()'s result, built on first use and shared while anything holds it (thread-safe). Keyed
 *  by the model's address; each value holds its model, so that address cannot be reused while the entry can be
 *  found, and expired entries are dropped. One cache per T. */
template <class T>
std::shared_ptr<const T> sharedPerModel(const std::shared_ptr<const ENNModel>& model, const std::function<std::shared_ptr<const T>()>& build) {
    static std::mutex mutex;
    static std::map<const ENNModel*, std::weak_ptr<const T>> cache;
    std::lock_guard<std::mutex> lock(mutex);
    std::shared_ptr<const T> found = cache[model.get()].lock();
    if (!found) {
        auto holder = std::make_shared<std::pair<std::shared_ptr<const ENNModel>, std::shared_ptr<const T>>>(model, build());
        found = std::shared_ptr<const T>(holder, holder->second.get());
        cache[model.get()] = found;
    }
    for (auto entry = cache.begin(); entry != cache.end();)
        entry = entry->second.expired() ? cache.erase(entry) : std::next(entry);
    return found;
}

} // namespace OpenMMENN

#endif
