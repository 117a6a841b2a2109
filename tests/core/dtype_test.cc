#include "llmpack/dtype.h"

#include <cmath>
#include <cstring>

#include "gtest/gtest.h"

namespace llmpack {
namespace {

float Bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(DTypeTest, F16ToF32KnownValues) {
  EXPECT_EQ(F16ToF32(0x3C00), 1.0f);
  EXPECT_EQ(F16ToF32(0xC000), -2.0f);
  EXPECT_EQ(F16ToF32(0x7BFF), 65504.0f);
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(F16ToF32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_TRUE(std::isinf(F16ToF32(0x7C00)));
  EXPECT_TRUE(std::isnan(F16ToF32(0x7E00)));
  EXPECT_TRUE(std::signbit(F16ToF32(0x8000)));
}

TEST(DTypeTest, F16RoundTripsEveryValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToF16(f), h) << "half bits " << h;
  }
}

TEST(DTypeTest, F32ToF16RoundsHalfwayToEven) {
  // Midpoint between 1.0 (0x3C00) and the next half (0x3C01) ties to even.
  const float one = 1.0f, next = F16ToF32(0x3C01), after = F16ToF32(0x3C02);
  EXPECT_EQ(F32ToF16((one + next) / 2), 0x3C00);
  EXPECT_EQ(F32ToF16((next + after) / 2), 0x3C02);
  // Just above the midpoint rounds up.
  EXPECT_EQ(F32ToF16(std::nextafter((one + next) / 2, 2.0f)), 0x3C01);
  // Overflow: values at or past 65520 become infinity.
  EXPECT_EQ(F32ToF16(65519.0f), 0x7BFF);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7C00);
  // Subnormal rounding: half of the smallest subnormal ties to zero.
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(F32ToF16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(F32ToF16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulp ties to even
}

TEST(DTypeTest, BF16ConversionsRoundToNearestEven) {
  EXPECT_EQ(BF16ToF32(0x3F80), 1.0f);
  EXPECT_EQ(F32ToBF16(Bits(0x3F808000)), 0x3F80);  // tie, even stays
  EXPECT_EQ(F32ToBF16(Bits(0x3F818000)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(F32ToBF16(Bits(0x3F808001)), 0x3F81);
  EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(Bits(0x7F800001)))));
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = BF16ToF32(static_cast<uint16_t>(b));
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToBF16(f), b);
  }
}

TEST(DTypeTest, ConvertElementsRejectsQuantizedTypes) {
  float in = 1.0f;
  uint8_t out[4];
  const absl::Status s = ConvertElements(DType::kF32, &in, DType::kQ4, out, 1);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("q4"), std::string::npos);
}

TEST(DTypeTest, ParseDTypeNamesTheBadValue) {
  EXPECT_EQ(*ParseDType("BF16"), DType::kBF16);
  const auto bad = ParseDType("F64");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("F64"), std::string::npos);
  // The message lists every accepted name, quantized ones included.
  EXPECT_NE(std::string(bad.status().message()).find("q8, q4"),
            std::string::npos);
}

TEST(DTypeTest, ParseDTypeAcceptsQuantizedNames) {
  EXPECT_EQ(*ParseDType("q8"), DType::kQ8);
  EXPECT_EQ(*ParseDType("q4"), DType::kQ4);
  EXPECT_TRUE(IsQuantizedDType(DType::kQ4));
  EXPECT_FALSE(IsQuantizedDType(DType::kBF16));
  EXPECT_FALSE(IsFloatDType(DType::kQ8));
}

// DTypeSize and ToF32 are float-only; a quantized dtype reaching them is a
// caller bug that must be loud, not a 0 size or an untouched buffer.
TEST(DTypeDeathTest, FloatOnlyHelpersRefuseQuantizedTypes) {
  EXPECT_DEATH(DTypeSize(DType::kQ4), "DTypeSize called with q4");
  EXPECT_DEATH(DTypeSize(DType::kQ8), "DTypeSize called with q8");
  const uint8_t src[4] = {};
  float dst[4];
  EXPECT_DEATH(ToF32(DType::kQ8, src, dst, 4), "ToF32 called with q8");
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
}

}  // namespace
}  // namespace llmpack
