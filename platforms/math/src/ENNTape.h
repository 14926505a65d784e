#ifndef OPENMM_ENN_TAPE_H_
#define OPENMM_ENN_TAPE_H_

// Reverse-mode differentiation by a tape, in double precision, for the PolarMACE head (ENNPolarHead): its forward
// pass is written once, over TapeValue, and the gradient of its energy with respect to every input comes from
// replaying the tape backwards. Blocks whose weights are large (e3nn linears, channel-wise products) record one entry
// with their own transpose instead of an entry per weight, so that memory follows the activations.

#include <cmath>
#include <functional>
#include <utility>
#include <vector>

namespace OpenMMENN {

class ENNTape;

/** A double and, unless it is a constant, its node on the active tape. */
struct TapeValue {
    double value = 0.0;
    int node = -1; // -1: a constant
    TapeValue() = default;
    TapeValue(double v) : value(v) {}
    TapeValue(double v, int n) : value(v), node(n) {}
};

/** Nodes with their parents and the partial derivatives to them. One tape is active per thread while it records
 *  (ENNTape::Recording). */
class ENNTape {
public:
    /** reuseLastSize: reserve the size of the last tape made with it on this thread (one evaluation is much like the
     *  next), and leave this one's size for the next. */
    explicit ENNTape(bool reuseLastSize = false) : remembersSize(reuseLastSize) {
        if (remembersSize) {
            starts.reserve(sizes().first);
            parents.reserve(sizes().second);
        }
    }
    ~ENNTape() {
        if (remembersSize)
            sizes() = {starts.size(), parents.size()};
    }
    ENNTape(const ENNTape&) = delete;
    ENNTape& operator=(const ENNTape&) = delete;

    /** An input: a node with no parents. */
    TapeValue input(double value) {
        starts.push_back(static_cast<int>(parents.size()));
        return TapeValue(value, static_cast<int>(starts.size()) - 1);
    }
    /** A node of `value` with parents (node, d value / d parent); constants among them are skipped. */
    TapeValue node(double value, std::initializer_list<std::pair<TapeValue, double>> inputs) {
        bool any = false;
        for (const auto& p : inputs)
            any = any || p.first.node >= 0;
        if (!any)
            return TapeValue(value);
        starts.push_back(static_cast<int>(parents.size()));
        for (const auto& p : inputs)
            if (p.first.node >= 0)
                parents.push_back({p.first.node, p.second});
        return TapeValue(value, static_cast<int>(starts.size()) - 1);
    }
    /** A node with many parents: start with begin(), add each with parent(), close with end(value). */
    void begin() { pending = static_cast<int>(parents.size()); }
    void parent(const TapeValue& p, double derivative) {
        if (p.node >= 0)
            parents.push_back({p.node, derivative});
    }
    TapeValue end(double value) {
        if (static_cast<int>(parents.size()) == pending)
            return TapeValue(value);
        starts.push_back(pending);
        return TapeValue(value, static_cast<int>(starts.size()) - 1);
    }
    /** A block with its own backward pass, so that the tape holds its activations, not its weights: `count` new
     *  nodes (returned: the first) with the given values; when the reverse sweep reaches them (every later node's
     *  contribution to their adjoints made), backward(adjoint, first) adds their adjoints' contributions to its
     *  inputs' (nodes before them). */
    using BlockBackward = std::function<void(std::vector<double>& adjoint, int first)>;
    int block(int count, BlockBackward backward) {
        const int first = static_cast<int>(starts.size());
        for (int i = 0; i < count; i++)
            starts.push_back(static_cast<int>(parents.size()));
        blocks.push_back({first, std::move(backward)});
        return first;
    }
    /** d output / d node for every node (zero for nodes output does not depend on). */
    std::vector<double> gradient(const TapeValue& output) const {
        std::vector<double> adjoint(starts.size(), 0.0);
        if (output.node < 0)
            return adjoint;
        adjoint[output.node] = 1.0;
        sweep(adjoint);
        return adjoint;
    }
    /** The reverse sweep: adjoint (one per node, seeded with d output / d node at the nodes output is made of) becomes
     *  d output / d node for every node. */
    void sweep(std::vector<double>& adjoint) const {
        int nextBlock = static_cast<int>(blocks.size()) - 1;
        for (int n = static_cast<int>(starts.size()) - 1; n >= 0; n--) {
            const double a = adjoint[n];
            const int stop = n + 1 < static_cast<int>(starts.size()) ? starts[n + 1] : static_cast<int>(parents.size());
            for (int k = starts[n]; k < stop && a != 0.0; k++)
                adjoint[parents[k].first] += a * parents[k].second;
            for (; nextBlock >= 0 && blocks[nextBlock].first == n; nextBlock--)
                blocks[nextBlock].backward(adjoint, n);
        }
    }
    int size() const { return static_cast<int>(starts.size()); }
    /** Makes `tape` the one this thread records on for its lifetime (then the one before it again). */
    class Recording {
    public:
        explicit Recording(ENNTape& tape) : previous(active()) { active() = &tape; }
        ~Recording() { active() = previous; }
        Recording(const Recording&) = delete;
        Recording& operator=(const Recording&) = delete;

    private:
        ENNTape* previous;
    };
    static ENNTape*& active() {
        static thread_local ENNTape* tape = nullptr;
        return tape;
    }
    static std::pair<size_t, size_t>& sizes() {
        static thread_local std::pair<size_t, size_t> last(0, 0);
        return last;
    }

private:
    std::vector<int> starts; // node n's parents: parents[starts[n] .. starts[n + 1])
    std::vector<std::pair<int, double>> parents;
    struct Block {
        int first;
        BlockBackward backward;
    };
    std::vector<Block> blocks; // in order of their first node
    int pending = 0;
    bool remembersSize = false;
};

inline TapeValue operator+(const TapeValue& a, const TapeValue& b) {
    return ENNTape::active()->node(a.value + b.value, {{a, 1.0}, {b, 1.0}});
}
inline TapeValue operator-(const TapeValue& a, const TapeValue& b) {
    return ENNTape::active()->node(a.value - b.value, {{a, 1.0}, {b, -1.0}});
}
inline TapeValue operator-(const TapeValue& a) { return ENNTape::active()->node(-a.value, {{a, -1.0}}); }
inline TapeValue operator*(const TapeValue& a, const TapeValue& b) {
    return ENNTape::active()->node(a.value * b.value, {{a, b.value}, {b, a.value}});
}
inline TapeValue operator/(const TapeValue& a, const TapeValue& b) {
    return ENNTape::active()->node(a.value / b.value, {{a, 1.0 / b.value}, {b, -a.value / (b.value * b.value)}});
}
inline TapeValue& operator+=(TapeValue& a, const TapeValue& b) { return a = a + b; }
inline TapeValue& operator-=(TapeValue& a, const TapeValue& b) { return a = a - b; }
inline TapeValue& operator*=(TapeValue& a, const TapeValue& b) { return a = a * b; }
inline TapeValue sqrt(const TapeValue& a) {
    const double s = std::sqrt(a.value);
    return ENNTape::active()->node(s, {{a, 0.5 / s}});
}
inline TapeValue exp(const TapeValue& a) {
    const double e = std::exp(a.value);
    return ENNTape::active()->node(e, {{a, e}});
}
/** f(a) with its derivative given. */
inline TapeValue apply(const TapeValue& a, double value, double derivative) {
    return ENNTape::active()->node(value, {{a, derivative}});
}

} // namespace OpenMMENN

#endif
