// Choosing one group's scale and zero point: min/max round-to-nearest and a
// (weighted) least-squares grid search. These are the building blocks of the
// matrix methods in methods.h; GPTQ calls them once per group as it walks the
// columns.
//
// Thread safety: all functions are pure.
#ifndef LLMPACK_QUANT_GROUP_FIT_H_
#define LLMPACK_QUANT_GROUP_FIT_H_

#include <cstdint>

#include "quant/codec.h"

namespace llmpack::quant {

// A group's parameters. `scale` is already representable in the layout's
// scale dtype (RoundScale), so quantizing with it gives exactly the values a
// reader will dequantize; `zero` is in CodeMin()..CodeMax() (the implicit
// zero for symmetric formats).
struct GroupParams {
  float scale = 0;
  int zero = 0;
};

// The code of x under `p`: clamp(round(x / scale) + zero). A zero scale maps
// everything to the zero point (the value 0).
int QuantizeValue(const RowLayout& layout, const GroupParams& p, float x);

// codes[i] = QuantizeValue(layout, p, x[i]) for i < n, with the reciprocal
// of the scale computed once (the same values, faster).
void QuantizeGroup(const RowLayout& layout, const GroupParams& p,
                   const float* x, int64_t n, int* codes);

// sum_i weight[i] * (x[i] - scale * (code(x[i]) - zero))^2; weights == nullptr
// means all ones.
double GroupError(const RowLayout& layout, const GroupParams& p, const float* x,
                  const float* weights, int64_t n);

// Min/max round-to-nearest. Asymmetric: the range [min(x, 0), max(x, 0)] is
// spread over all codes and the zero point rounded; symmetric: the element of
// largest magnitude maps to the most negative code (-8 for q4, -128 for q8)
// so the wider half of the code range is used.
GroupParams FitMinMax(const RowLayout& layout, const float* x, int64_t n);

// Grid search over clipping ratios and zero points minimizing GroupError with
// `weights`, then alternating least-squares refinement of the scale with the
// codes fixed. Never returns parameters with a larger error than FitMinMax
// on the same data (it keeps the min/max fit when nothing beats it).
GroupParams FitSearch(const RowLayout& layout, const float* x,
                      const float* weights, int64_t n);

}  // namespace llmpack::quant

#endif  // LLMPACK_QUANT_GROUP_FIT_H_
