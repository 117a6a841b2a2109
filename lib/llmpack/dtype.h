// Element types and exact conversions between f32, f16 and bf16.
// Thread-safe: all functions are pure.
#ifndef LLMPACK_DTYPE_H_
#define LLMPACK_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "formats/tensor_file_format.h"

namespace llmpack {

using DType = format::DTypeCode;

// "f32", "f16", "bf16", "q8", "q4".
const char* DTypeName(DType dtype);
// Accepts our names and safetensors names ("F32", "F16", "BF16").
absl::StatusOr<DType> ParseDType(std::string_view name);
bool IsFloatDType(DType dtype);
bool IsKnownDType(uint16_t code);
// Bytes per element of a float type; 0 for quantized types.
size_t DTypeSize(DType dtype);

float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);  // round to nearest even, overflow to inf
float BF16ToF32(uint16_t b);
uint16_t F32ToBF16(float f);  // round to nearest even, NaN kept quiet

// Converts n elements between float types. Identity conversions copy.
// Rounding happens once: bf16<->f16 goes through exact f32.
absl::Status ConvertElements(DType src_type, const void* src, DType dst_type,
                             void* dst, size_t n);
// Widens n float elements to f32 (the runtime's load path).
void ToF32(DType src_type, const void* src, float* dst, size_t n);

}  // namespace llmpack

#endif  // LLMPACK_DTYPE_H_
