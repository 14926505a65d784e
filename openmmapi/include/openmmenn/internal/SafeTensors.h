#ifndef OPENMM_ENN_SAFETENSORS_H_
#define OPENMM_ENN_SAFETENSORS_H_

// Reader for the safetensors container: an 8-byte little-endian header length, a JSON header
// (tensor name -> dtype, shape, data_offsets; plus "__metadata__", a map of strings), then data.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace OpenMMENN {

/** Throws OpenMMException("ENN model file: " + message). */
[[noreturn]] void throwModelFileError(const std::string& message);

struct SafeTensor {
    std::vector<int64_t> shape;
    std::vector<double> values; // converted to double, checked finite
};

struct SafeTensorsFile {
    std::map<std::string, std::string> metadata;
    std::map<std::string, SafeTensor> tensors;
    /** Parse a whole file. Throws OpenMMException describing the first problem found. */
    static SafeTensorsFile parse(const std::string& bytes);
};

} // namespace OpenMMENN

#endif
