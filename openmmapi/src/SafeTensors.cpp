#include "openmmenn/internal/SafeTensors.h"
#include "openmm/OpenMMException.h"
#include <nlohmann/json.hpp>
#include <cmath>
#include <algorithm>
#include <cstring>

using namespace OpenMMENN;
using OpenMM::OpenMMException;
using nlohmann::json;

void OpenMMENN::throwModelFileError(const std::string& message) {
    throw OpenMMException("ENN model file: " + message);
}

namespace {

[[noreturn]] void fail(const std::string& msg) {
    throwModelFileError(msg);
}

uint64_t readLittleEndian64(const unsigned char* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

template <class T>
T readScalar(const char* p) {
    // The file is little-endian; so is every platform OpenMM supports.
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

} // namespace

SafeTensorsFile SafeTensorsFile::parse(const std::string& bytes) {
    if (bytes.size() < 8)
        fail("the file is empty or truncated (" + std::to_string(bytes.size()) + " bytes; a safetensors file starts with an 8-byte header length)");
    uint64_t headerSize = readLittleEndian64(reinterpret_cast<const unsigned char*>(bytes.data()));
    if (headerSize < 2 || headerSize > bytes.size() - 8)
        fail("the header length (" + std::to_string(headerSize) + ") does not fit in the file of " + std::to_string(bytes.size()) +
             " bytes: not a safetensors file, or truncated");
    json header;
    try {
        header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + headerSize);
    } catch (const json::exception& e) {
        fail(std::string("the header is not valid JSON (") + e.what() + ")");
    }
    if (!header.is_object())
        fail("the header is not a JSON object");
    const char* data = bytes.data() + 8 + headerSize;
    const uint64_t dataSize = bytes.size() - 8 - headerSize;
    SafeTensorsFile file;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string& name = it.key();
        const json& entry = it.value();
        if (name == "__metadata__") {
            if (!entry.is_object())
                fail("__metadata__ is not an object");
            for (auto m = entry.begin(); m != entry.end(); ++m) {
                if (!m.value().is_string())
                    fail("__metadata__." + m.key() + " is not a string");
                file.metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        const std::string where = "tensor '" + name + "'";
        if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
            fail(where + " needs dtype, shape and data_offsets");
        if (!entry["dtype"].is_string())
            fail(where + ": dtype is not a string");
        std::string dtype = entry["dtype"].get<std::string>();
        size_t itemSize;
        if (dtype == "F64")
            itemSize = 8;
        else if (dtype == "F32")
            itemSize = 4;
        else
            fail(where + ": dtype " + dtype + " is not supported (F64 or F32)");
        const json& shape = entry["shape"];
        if (!shape.is_array())
            fail(where + ": shape is not an array");
        SafeTensor tensor;
        uint64_t numel = 1;
        for (const json& d : shape) {
            if (!d.is_number_integer() || d.get<int64_t>() < 0)
                fail(where + ": shape holds something other than non-negative integers");
            int64_t n = d.get<int64_t>();
            if (n > 0 && numel > (uint64_t(1) << 40) / uint64_t(n))
                fail(where + ": shape is implausibly large");
            numel *= uint64_t(n);
            tensor.shape.push_back(n);
        }
        const json& offsets = entry["data_offsets"];
        if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
            fail(where + ": data_offsets must be two non-negative integers");
        uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
        if (begin > end || end > dataSize)
            fail(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] lie outside the " +
                 std::to_string(dataSize) + " data bytes (truncated file?)");
        if (end - begin != numel * itemSize)
            fail(where + ": data_offsets span " + std::to_string(end - begin) + " bytes but the shape needs " + std::to_string(numel * itemSize));
        ranges.emplace_back(begin, end);
        tensor.values.resize(numel);
        for (uint64_t i = 0; i < numel; i++) {
            const char* p = data + begin + i * itemSize;
            double v = (itemSize == 8 ? readScalar<double>(p) : double(readScalar<float>(p)));
            if (!std::isfinite(v))
                fail(where + " holds a non-finite value (NaN or infinity) at flat index " + std::to_string(i));
            tensor.values[i] = v;
        }
        file.tensors.emplace(name, std::move(tensor));
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); i++)
        if (ranges[i].first < ranges[i - 1].second)
            fail("two tensors' data_offsets overlap");
    return file;
}
