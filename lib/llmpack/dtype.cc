#include "llmpack/dtype.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace llmpack {
namespace {

// A float-only helper met a quantized dtype: a bug in the caller, which
// should have checked IsFloatDType. Loud, because a silent 0 size or an
// untouched output buffer would corrupt data far from the cause.
[[noreturn]] void FloatOnlyViolation(const char* function, DType dtype) {
  std::fprintf(stderr,
               "llmpack internal error: %s called with %s (code %u), which "
               "is not a float type; quantized rows are handled by "
               "lib/quant/codec.h\n",
               function, DTypeName(dtype), static_cast<unsigned>(dtype));
  std::abort();
}

}  // namespace

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kF16:
      return "f16";
    case DType::kBF16:
      return "bf16";
    case DType::kQ8:
      return "q8";
    case DType::kQ4:
      return "q4";
  }
  return "unknown";
}

absl::StatusOr<DType> ParseDType(std::string_view name) {
  if (name == "f32" || name == "F32" || name == "float32") return DType::kF32;
  if (name == "f16" || name == "F16" || name == "float16") return DType::kF16;
  if (name == "bf16" || name == "BF16" || name == "bfloat16")
    return DType::kBF16;
  if (name == "q8") return DType::kQ8;
  if (name == "q4") return DType::kQ4;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", std::string(name),
                   "' (expected one of f32, f16, bf16, q8, q4)"));
}

bool IsFloatDType(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

bool IsQuantizedDType(DType dtype) {
  return dtype == DType::kQ8 || dtype == DType::kQ4;
}

bool IsKnownDType(uint16_t code) {
  switch (static_cast<DType>(code)) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ8:
    case DType::kQ4:
      return true;
  }
  return false;
}

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kQ8:
    case DType::kQ4:
      break;
  }
  FloatOnlyViolation("DTypeSize", dtype);
}

float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize into an f32 normal
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3FFu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t F32ToF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) {  // inf or NaN
    return sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0u);
  }
  if (abs >= 0x477FF000u) return sign | 0x7C00u;  // rounds past max half
  if (abs < 0x38800000u) {               // result is subnormal or zero in half
    if (abs < 0x33000000u) return sign;  // below half of smallest subnormal
    // Half subnormals are m * 2^-24; shift the 24-bit significand into place.
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
    const uint32_t drop = 126 - exp;  // 14..24 for the range handled here
    uint32_t half = mant >> drop;
    const uint32_t rem = mant & ((1u << drop) - 1);
    const uint32_t halfway = 1u << (drop - 1);
    if (rem > halfway || (rem == halfway && (half & 1u))) ++half;
    return sign | static_cast<uint16_t>(half);
  }
  // Normal: rebias exponent and round the 13 dropped mantissa bits.
  uint32_t h = ((abs >> 13) - ((127 - 15) << 10));
  const uint32_t rem = abs & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return sign | static_cast<uint16_t>(h);
}

float BF16ToF32(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t F32ToBF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) {
    return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  }
  const uint32_t lsb = (x >> 16) & 1u;
  x += 0x7FFFu + lsb;
  return static_cast<uint16_t>(x >> 16);
}

void ToF32(DType src_type, const void* src, float* dst, size_t n) {
  switch (src_type) {
    case DType::kF32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::kF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = F16ToF32(s[i]);
      return;
    }
    case DType::kBF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = BF16ToF32(s[i]);
      return;
    }
    case DType::kQ8:
    case DType::kQ4:
      break;
  }
  FloatOnlyViolation("ToF32", src_type);
}

absl::Status ConvertElements(DType src_type, const void* src, DType dst_type,
                             void* dst, size_t n) {
  if (!IsFloatDType(src_type) || !IsFloatDType(dst_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot convert ", DTypeName(src_type), " to ",
                     DTypeName(dst_type), ": only float types convert"));
  }
  if (src_type == dst_type) {
    std::memcpy(dst, src, n * DTypeSize(src_type));
    return absl::OkStatus();
  }
  if (dst_type == DType::kF32) {
    ToF32(src_type, src, static_cast<float*>(dst), n);
    return absl::OkStatus();
  }
  uint16_t* out = static_cast<uint16_t*>(dst);
  constexpr size_t kChunk = 1024;
  float tmp[kChunk];
  for (size_t start = 0; start < n; start += kChunk) {
    const size_t count = std::min(kChunk, n - start);
    const uint8_t* s =
        static_cast<const uint8_t*>(src) + start * DTypeSize(src_type);
    ToF32(src_type, s, tmp, count);
    for (size_t i = 0; i < count; ++i) {
      out[start + i] =
          dst_type == DType::kF16 ? F32ToF16(tmp[i]) : F32ToBF16(tmp[i]);
    }
  }
  return absl::OkStatus();
}

}  // namespace llmpack
