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
// Accepts our names and safetensors names ("F32", "F16", "BF16"); q8 and q4
// parse too, so callers that want a float type check IsFloatDType and say so.
absl::StatusOr<DType> ParseDType(std::string_view name);
bool IsFloatDType(DType dtype);
bool IsQuantizedDType(DType dtype);
bool IsKnownDType(uint16_t code);

// Bytes per element of a float type. Quantized types have no per-element size
// (a q4 element is half a byte plus its share of the group's scale and zero
// point): their byte counts come from format::QuantRowBytes, or with a status
// from TensorDataBytes (llmpack/tensor_file.h). Passing q8/q4 is a programming
// error: it aborts with a message naming the dtype instead of returning 0.
// Callers holding a dtype read from input check IsFloatDType first.
size_t DTypeSize(DType dtype);

float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);  // round to nearest even, overflow to inf
float BF16ToF32(uint16_t b);
uint16_t F32ToBF16(float f);  // round to nearest even, NaN kept quiet

// Converts n elements between float types. Identity conversions copy.
// Rounding happens once: bf16<->f16 goes through exact f32.
absl::Status ConvertElements(DType src_type, const void* src, DType dst_type,
                             void* dst, size_t n);
// Widens n float elements to f32 (the runtime's load path). Float types only,
// like DTypeSize: q8/q4 rows need their layout (quant::DequantizeRow), and
// passing them aborts with a message instead of leaving dst untouched.
// ConvertElements is the status-returning form.
void ToF32(DType src_type, const void* src, float* dst, size_t n);

}  // namespace llmpack

#endif  // LLMPACK_DTYPE_H_
