#ifndef OPENMM_COMMON_ENN_PRECISION_H_
#define OPENMM_COMMON_ENN_PRECISION_H_

// Array element sizes and scalar kernel arguments in the context's precision, OpenMM's convention:
// `real` is double only in double precision; `mixed` is double in mixed and double precision.

#include "openmm/OpenMMException.h"
#include "openmm/Vec3.h"
#include "openmm/common/ComputeArray.h"
#include "openmm/common/ComputeContext.h"
#include "openmm/common/ComputeKernel.h"
#include "openmm/common/ComputeVectorTypes.h"
#include <algorithm>
#include <vector>

namespace OpenMMENN {

inline bool mixedIsDouble(const OpenMM::ComputeContext& cc) {
    return cc.getUseDoublePrecision() || cc.getUseMixedPrecision();
}

inline int realSize(const OpenMM::ComputeContext& cc) {
    return cc.getUseDoublePrecision() ? sizeof(double) : sizeof(float);
}

inline int mixedSize(const OpenMM::ComputeContext& cc) {
    return mixedIsDouble(cc) ? sizeof(double) : sizeof(float);
}

inline void addRealArg(const OpenMM::ComputeContext& cc, OpenMM::ComputeKernel& kernel, double value) {
    if (cc.getUseDoublePrecision())
        kernel->addArg(value);
    else
        kernel->addArg(static_cast<float>(value));
}

inline void setRealArg(const OpenMM::ComputeContext& cc, OpenMM::ComputeKernel& kernel, int index, double value) {
    if (cc.getUseDoublePrecision())
        kernel->setArg(index, value);
    else
        kernel->setArg(index, static_cast<float>(value));
}

inline void addMixedArg(const OpenMM::ComputeContext& cc, OpenMM::ComputeKernel& kernel, double value) {
    if (mixedIsDouble(cc))
        kernel->addArg(value);
    else
        kernel->addArg(static_cast<float>(value));
}

inline void setMixedArg(const OpenMM::ComputeContext& cc, OpenMM::ComputeKernel& kernel, int index, double value) {
    if (mixedIsDouble(cc))
        kernel->setArg(index, value);
    else
        kernel->setArg(index, static_cast<float>(value));
}

/** A real4 argument (x, y, z, 0). */
inline void setReal4Arg(const OpenMM::ComputeContext& cc, OpenMM::ComputeKernel& kernel, int index, const OpenMM::Vec3& v) {
    if (cc.getUseDoublePrecision())
        kernel->setArg(index, OpenMM::mm_double4(v[0], v[1], v[2], 0));
    else
        kernel->setArg(index, OpenMM::mm_float4(v[0], v[1], v[2], 0));
}

/** Makes `array` hold `elements` elements (at least one) of `elementSize` bytes, keeping it where it is already that size. */
inline void sizeArray(OpenMM::ComputeContext& cc, OpenMM::ComputeArray& array, int elements, int elementSize, const char* name) {
    elements = std::max(1, elements);
    if (!array.isInitialized())
        array.initialize(cc, elements, elementSize, name);
    else if (static_cast<int>(array.getSize()) != elements)
        array.resize(elements);
}

/** Uploads doubles to an array of elements of one to four components (interleaved), as double or as float. */
inline void uploadValues(OpenMM::ComputeArray& array, const std::vector<double>& values, bool asDouble) {
    if (values.size() * sizeof(double) != size_t(array.getSize()) * array.getElementSize() * (asDouble ? 1 : 2))
        throw OpenMM::OpenMMException("ENNForce: " + array.getName() + " given the wrong number of values");
    if (asDouble)
        array.upload(values.data());
    else {
        const std::vector<float> f(values.begin(), values.end());
        array.upload(f.data());
    }
}

/** The contents of an array of double or float elements, as doubles. */
inline std::vector<double> downloadValues(OpenMM::ComputeArray& array, bool asDouble) {
    std::vector<double> values(array.getSize());
    if (asDouble)
        array.download(values);
    else {
        std::vector<float> f(array.getSize());
        array.download(f);
        std::copy(f.begin(), f.end(), values.begin());
    }
    return values;
}

/** Uploads doubles to an array of real, real2 or real4 elements (components interleaved), as real. */
inline void uploadReals(const OpenMM::ComputeContext& cc, OpenMM::ComputeArray& array, const std::vector<double>& values) {
    uploadValues(array, values, cc.getUseDoublePrecision());
}

/** Uploads doubles, as real, into a real array from element `offset` on. */
inline void uploadRealsAt(const OpenMM::ComputeContext& cc, OpenMM::ComputeArray& array, int offset, const std::vector<double>& values) {
    if (offset < 0 || offset + values.size() > size_t(array.getSize()))
        throw OpenMM::OpenMMException("ENNForce: " + array.getName() + " given values beyond its end");
    if (cc.getUseDoublePrecision())
        array.uploadSubArray(values.data(), offset, static_cast<int>(values.size()));
    else {
        const std::vector<float> f(values.begin(), values.end());
        array.uploadSubArray(f.data(), offset, static_cast<int>(f.size()));
    }
}

/** The contents of a real array, as doubles. */
inline std::vector<double> downloadReals(const OpenMM::ComputeContext& cc, OpenMM::ComputeArray& array) {
    return downloadValues(array, cc.getUseDoublePrecision());
}

/** Uploads doubles to an array of mixed elements. */
inline void uploadMixed(const OpenMM::ComputeContext& cc, OpenMM::ComputeArray& array, const std::vector<double>& values) {
    uploadValues(array, values, mixedIsDouble(cc));
}

/** The contents of a mixed array, as doubles. */
inline std::vector<double> downloadMixed(const OpenMM::ComputeContext& cc, OpenMM::ComputeArray& array) {
    return downloadValues(array, mixedIsDouble(cc));
}

} // namespace OpenMMENN

#endif
