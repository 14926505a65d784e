#include "CpuENNNeighbors.h"
#include "CpuENNParallel.h"
#include "ReferenceENNNeighbors.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cmath>

using namespace OpenMMENN;
using OpenMM::Vec3;

void CpuENNNeighborList::build(const std::vector<Vec3>& pos, double cutoff, const Vec3* box, OpenMM::ThreadPool& pool) {
    const int n = static_cast<int>(pos.size());
    wrapped.resize(n);
    int cells[3] = {1, 1, 1}, reach[3] = {1, 1, 1};
    Vec3 low;
    double cellSize[3] = {1, 1, 1};
    if (box != nullptr) {
        // Fractional coordinates of the lower-triangular box, wrapped into [0, 1).
        double width[3];
        latticePlaneSpacings(box, width);
        cellOf.resize(n);
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
            cellOf[i] = (c[2] * cells[1] + c[1]) * cells[0] + c[0];
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
            cells[k] = std::max(1, std::min(1024, static_cast<int>((high[k] - low[k]) / cutoff)));
            cellSize[k] = std::max((high[k] - low[k]) / cells[k], cutoff);
        }
        cellOf.resize(n);
        for (int i = 0; i < n; i++) {
            wrapped[i] = pos[i];
            int c[3];
            for (int k = 0; k < 3; k++)
                c[k] = std::min(cells[k] - 1, static_cast<int>((pos[i][k] - low[k]) / cellSize[k]));
            cellOf[i] = (c[2] * cells[1] + c[1]) * cells[0] + c[0];
        }
    }
    // Counting sort of atoms into cells (ascending atom index within a cell).
    const int numCells = cells[0] * cells[1] * cells[2];
    cellStart.assign(numCells + 1, 0);
    for (int i = 0; i < n; i++)
        cellStart[cellOf[i] + 1]++;
    for (int c = 0; c < numCells; c++)
        cellStart[c + 1] += cellStart[c];
    cellAtoms.resize(n);
    {
        std::vector<int>& fill = receiverStart; // scratch, rebuilt below
        fill.assign(cellStart.begin(), cellStart.end() - 1);
        for (int i = 0; i < n; i++)
            cellAtoms[fill[cellOf[i]]++] = i;
    }

    // Each chunk of receivers collects its edges; chunks are concatenated in order.
    const int chunks = std::max(1, std::min(n, 4 * pool.getNumThreads()));
    if (static_cast<int>(threadEdges.size()) < chunks)
        threadEdges.resize(chunks);
    const double cutoff2 = cutoff * cutoff;
    parallelFor(pool, chunks, [&](int chunk, int) {
        ThreadEdges& out = threadEdges[chunk];
        out.receiver.clear();
        out.sender.clear();
        out.vec.clear();
        const int first = static_cast<int>(int64_t(n) * chunk / chunks), last = static_cast<int>(int64_t(n) * (chunk + 1) / chunks);
        for (int i = first; i < last; i++) {
            int c[3] = {cellOf[i] % cells[0], (cellOf[i] / cells[0]) % cells[1], cellOf[i] / (cells[0] * cells[1])};
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
                        const int cell = (real[2] * cells[1] + real[1]) * cells[0] + real[0];
                        const bool self = shift[0] == 0 && shift[1] == 0 && shift[2] == 0;
                        for (int a = cellStart[cell]; a < cellStart[cell + 1]; a++) {
                            const int j = cellAtoms[a];
                            if (j == i && self)
                                continue;
                            const Vec3 d = wrapped[i] - (wrapped[j] + image);
                            const double r2 = d.dot(d);
                            if (r2 >= cutoff2)
                                continue;
                            if (r2 < 1e-20)
                                throw OpenMM::OpenMMException("ENNForce: particles " + std::to_string(i) + " and " + std::to_string(j) +
                                                              " of the ML region are at the same position");
                            out.receiver.push_back(i);
                            out.sender.push_back(j);
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
    bySender.resize(numEdges);
    cellOf.assign(senderStart.begin(), senderStart.end() - 1); // reuse as fill pointers
    for (int e = 0; e < numEdges; e++)
        bySender[cellOf[sender[e]]++] = e;
}
