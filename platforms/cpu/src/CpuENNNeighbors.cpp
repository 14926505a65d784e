#include "CpuENNNeighbors.h"
#include "CpuENNParallel.h"
#include "ENNPeriodicGeometry.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cmath>

using namespace OpenMMENN;
using OpenMM::Vec3;

namespace {
// Cells are addressed by three coordinates of at most 21 bits packed into one key. Only occupied cells
// are stored (sorted keys), so memory follows the number of atoms, never the spread of the coordinates.
const int MaxCellsPerAxis = (1 << 21) - 1;
int64_t cellKey(const int c[3]) { return (int64_t(c[2]) << 42) | (int64_t(c[1]) << 21) | int64_t(c[0]); }
} // namespace

void CpuENNNeighborList::build(const std::vector<Vec3>& pos, double cutoff, const Vec3* box, OpenMM::ThreadPool& pool, int numReceivers,
                               bool pairsOnly, const std::vector<int>* particleOf) {
    const int n = static_cast<int>(pos.size());
    wrapped.resize(n);
    int cells[3] = {1, 1, 1}, reach[3] = {1, 1, 1};
    Vec3 low;
    double cellSize[3] = {1, 1, 1};
    cellOf.resize(n);
    if (box != nullptr) {
        // Fractional coordinates of the lower-triangular box, wrapped into [0, 1).
        double width[3];
        latticePlaneSpacings(box, width);
        for (int k = 0; k < 3; k++) {
            cells[k] = std::max(1, std::min(1024, static_cast<int>(width[k] / cutoff)));
            // Fractional distance reachable within the cutoff, in cells (more than 1 only for small boxes).
            reach[k] = static_cast<int>(std::ceil(cutoff * cells[k] / width[k]));
        }
        for (int i = 0; i < n; i++) {
            double f[3];
            f[2] = pos[i][2] / box[2][2];
            f[1] = (pos[i][1] - f[2] * box[2][1]) / box[1][1];
            f[0] = (pos[i][0] - f[1] * box[1][0] - f[2] * box[2][0]) / box[0][0];
            for (int k = 0; k < 3; k++)
                f[k] -= std::floor(f[k]);
            wrapped[i] = box[0] * f[0] + box[1] * f[1] + box[2] * f[2];
            int c[3];
            for (int k = 0; k < 3; k++)
                c[k] = std::min(cells[k] - 1, static_cast<int>(f[k] * cells[k]));
            cellOf[i] = cellKey(c);
        }
    } else {
        Vec3 high = n > 0 ? pos[0] : Vec3();
        low = high;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < 3; k++) {
                low[k] = std::min(low[k], pos[i][k]);
                high[k] = std::max(high[k], pos[i][k]);
            }
        for (int k = 0; k < 3; k++) {
            cells[k] = static_cast<int>(std::max(1.0, std::min<double>(MaxCellsPerAxis, std::floor((high[k] - low[k]) / cutoff))));
            cellSize[k] = std::max((high[k] - low[k]) / cells[k], cutoff);
        }
        for (int i = 0; i < n; i++) {
            wrapped[i] = pos[i];
            int c[3];
            for (int k = 0; k < 3; k++)
                c[k] = std::min(cells[k] - 1, static_cast<int>((pos[i][k] - low[k]) / cellSize[k]));
            cellOf[i] = cellKey(c);
        }
    }
    // Atoms sorted by cell (ascending atom index within a cell), and the occupied cells with their ranges. A periodic
    // box has few cells (at most 1024 per axis and about one per cutoff), sorted by counting when there are not many
    // more than atoms; the order is that of the packed keys either way.
    cellAtoms.resize(n);
    const int64_t totalCells = int64_t(cells[0]) * cells[1] * cells[2];
    if (box != nullptr && totalCells <= 4 * int64_t(n) + 64) {
        const int mask = MaxCellsPerAxis;
        auto dense = [&](int64_t key) { return ((key >> 42) * cells[1] + ((key >> 21) & mask)) * cells[0] + (key & mask); };
        fill.assign(totalCells + 1, 0);
        for (int i = 0; i < n; i++)
            fill[dense(cellOf[i]) + 1]++;
        for (int64_t c = 0; c < totalCells; c++)
            fill[c + 1] += fill[c];
        for (int i = 0; i < n; i++)
            cellAtoms[fill[dense(cellOf[i])]++] = i;
    } else {
        for (int i = 0; i < n; i++)
            cellAtoms[i] = i;
        std::sort(cellAtoms.begin(), cellAtoms.end(), [&](int a, int b) { return cellOf[a] != cellOf[b] ? cellOf[a] < cellOf[b] : a < b; });
    }
    occupiedKey.clear();
    occupiedStart.clear();
    for (int a = 0; a < n; a++)
        if (a == 0 || cellOf[cellAtoms[a]] != cellOf[cellAtoms[a - 1]]) {
            occupiedKey.push_back(cellOf[cellAtoms[a]]);
            occupiedStart.push_back(a);
        }
    occupiedStart.push_back(n);

    // Each chunk of receivers collects its edges; chunks are concatenated in order.
    const int chunks = std::max(1, std::min(numReceivers, 4 * pool.getNumThreads()));
    if (static_cast<int>(threadEdges.size()) < chunks)
        threadEdges.resize(chunks);
    const double cutoff2 = cutoff * cutoff;
    parallelFor(pool, chunks, [&](int chunk, int) {
        ThreadEdges& out = threadEdges[chunk];
        out.receiver.clear();
        out.sender.clear();
        out.vec.clear();
        const int first = static_cast<int>(int64_t(numReceivers) * chunk / chunks);
        const int last = static_cast<int>(int64_t(numReceivers) * (chunk + 1) / chunks);
        for (int i = first; i < last; i++) {
            const int mask = MaxCellsPerAxis;
            const int c[3] = {static_cast<int>(cellOf[i] & mask), static_cast<int>((cellOf[i] >> 21) & mask), static_cast<int>(cellOf[i] >> 42)};
            for (int dz = -reach[2]; dz <= reach[2]; dz++)
                for (int dy = -reach[1]; dy <= reach[1]; dy++)
                    for (int dx = -reach[0]; dx <= reach[0]; dx++) {
                        // Virtual cell c + d is real cell (c + d) mod cells, shifted by whole boxes.
                        const int v[3] = {c[0] + dx, c[1] + dy, c[2] + dz};
                        int real[3], shift[3];
                        bool outside = false;
                        for (int k = 0; k < 3; k++) {
                            shift[k] = v[k] >= 0 ? v[k] / cells[k] : -((-v[k] + cells[k] - 1) / cells[k]);
                            real[k] = v[k] - shift[k] * cells[k];
                            outside |= box == nullptr && shift[k] != 0;
                        }
                        if (outside)
                            continue;
                        Vec3 image;
                        if (box != nullptr)
                            image = box[0] * shift[0] + box[1] * shift[1] + box[2] * shift[2];
                        const auto found = std::lower_bound(occupiedKey.begin(), occupiedKey.end(), cellKey(real));
                        if (found == occupiedKey.end() || *found != cellKey(real))
                            continue;
                        const size_t cell = found - occupiedKey.begin();
                        const bool self = shift[0] == 0 && shift[1] == 0 && shift[2] == 0;
                        for (int a = occupiedStart[cell]; a < occupiedStart[cell + 1]; a++) {
                            const int j = cellAtoms[a];
                            if ((j == i && self) || (pairsOnly && j < numReceivers && j <= i))
                                continue;
                            const Vec3 d = wrapped[i] - (wrapped[j] + image);
                            const double r2 = d.dot(d);
                            if (r2 >= cutoff2)
                                continue;
                            if (r2 < 1e-20)
                                throw OpenMM::OpenMMException(
                                    particleOf ? "ENNForce: particles " + std::to_string((*particleOf)[i]) + " and " +
                                                     std::to_string((*particleOf)[j]) + " are at the same position"
                                               : "ENNForce: particles " + std::to_string(i) + " and " + std::to_string(j) +
                                                     " of the ML region are at the same position");
                            out.receiver.push_back(i);
                            out.sender.push_back(j);
                            if (pairsOnly)
                                continue;
                            out.vec.push_back(static_cast<float>(d[0]));
                            out.vec.push_back(static_cast<float>(d[1]));
                            out.vec.push_back(static_cast<float>(d[2]));
                        }
                    }
        }
    });
    receiver.clear();
    sender.clear();
    vec.clear();
    for (int chunk = 0; chunk < chunks; chunk++) {
        const ThreadEdges& t = threadEdges[chunk];
        receiver.insert(receiver.end(), t.receiver.begin(), t.receiver.end());
        sender.insert(sender.end(), t.sender.begin(), t.sender.end());
        vec.insert(vec.end(), t.vec.begin(), t.vec.end());
    }
    const int numEdges = static_cast<int>(sender.size());
    receiverStart.assign(n + 1, 0);
    senderStart.assign(n + 1, 0);
    for (int e = 0; e < numEdges; e++) {
        receiverStart[receiver[e] + 1]++;
        senderStart[sender[e] + 1]++;
    }
    for (int i = 0; i < n; i++) {
        receiverStart[i + 1] += receiverStart[i];
        senderStart[i + 1] += senderStart[i];
    }
    if (pairsOnly)
        return;
    bySender.resize(numEdges);
    fill.assign(senderStart.begin(), senderStart.end() - 1);
    for (int e = 0; e < numEdges; e++)
        bySender[fill[sender[e]]++] = e;
}
