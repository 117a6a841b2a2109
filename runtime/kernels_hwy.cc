// Highway kernels, compiled once per SIMD target and dispatched at run time
// to the best target the CPU supports. They compute the same formulas as
// kernels_scalar.cc; only summation order (several accumulators) and the
// exp approximation differ, within the tolerances in kernels_test.cc. The
// quantized matmul computes the quantized-activation scheme of
// quant_matmul.h.
#include "runtime/kernels_hwy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/kernels.h"
#include "runtime/quant_matmul.h"
#include "runtime/thread_pool.h"

// Highway re-includes this file once per target: foreach_target.h must come
// before highway.h and the per-target math header.
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/kernels_hwy.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "runtime/broadcast_tile-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace llmpack::runtime {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

float Dot(const float* a, const float* b, int64_t n) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  auto acc0 = hn::Zero(df);
  auto acc1 = hn::Zero(df);
  int64_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    acc0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), acc0);
    acc1 = hn::MulAdd(hn::LoadU(df, a + i + lanes),
                      hn::LoadU(df, b + i + lanes), acc1);
  }
  for (; i + lanes <= n; i += lanes) {
    acc0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), acc0);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1)));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// QuantizeActivations with vectors: the same bytes (max is exact, products
// and round-to-nearest-even conversions are the same f32 operations). Whole
// blocks only; a row's last, partial block takes the scalar code.
void QuantizeActivationsSimd(const float* x, int64_t tokens, int64_t cols,
                             const WeightMatrix& w, QuantizedActivations* out) {
#if HWY_TARGET == HWY_SCALAR
  QuantizeActivations(x, tokens, cols, w, out);
#else
  StartQuantizedActivations(tokens, cols, w, out);
  // At most 16 lanes, so a block of 32 is a whole number of vector pairs.
  const hn::CappedTag<float, 16> df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> d8;
  const hn::Rebind<int16_t, decltype(df)> d16;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const int64_t full_blocks = cols / kActivationBlock;
  const float max_code = static_cast<float>(kActivationCodeMax);
  const auto low_bits = hn::Set(di, 127);
  for (int64_t t = 0; t < tokens; ++t) {
    int8_t* high = out->high.data() + t * out->blocks * kActivationBlock;
    int8_t* low = out->low.data() + t * out->blocks * kActivationBlock;
    int16_t* whole = out->codes.data() + t * out->blocks * kActivationBlock;
    for (int64_t b = 0; b < full_blocks; ++b) {
      const float* xb = x + t * cols + b * kActivationBlock;
      auto vmax = hn::Zero(df);
      for (int64_t i = 0; i < kActivationBlock; i += lanes) {
        vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, xb + i)));
      }
      const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
      const float scale = amax / max_code;
      const auto inv = hn::Set(df, amax > 0.0f ? max_code / amax : 0.0f);
      auto sum = hn::Zero(di);
      auto put = [&](decltype(vmax) v, int64_t at) {
        const auto code = hn::NearestInt(hn::Mul(v, inv));
        sum = hn::Add(sum, code);
        // Arithmetic shift: floor division by 128.
        hn::StoreU(hn::DemoteTo(d8, hn::ShiftRight<7>(code)), d8, high + at);
        hn::StoreU(hn::DemoteTo(d8, hn::And(code, low_bits)), d8, low + at);
        hn::StoreU(hn::DemoteTo(d16, code), d16, whole + at);
      };
      const BlockPlacement place = PlaceBlock(*out, b);
      if (place.step == 1) {  // q4 order: the even elements, then the odd
        for (int64_t i = 0; i < kActivationBlock; i += 2 * lanes) {
          const auto lo = hn::LoadU(df, xb + i);
          const auto hi = hn::LoadU(df, xb + i + lanes);
          put(hn::ConcatEven(df, hi, lo), place.even + i / 2);
          put(hn::ConcatOdd(df, hi, lo), place.odd + i / 2);
        }
      } else {
        for (int64_t i = 0; i < kActivationBlock; i += lanes) {
          put(hn::LoadU(df, xb + i), place.even + i);
        }
      }
      const int32_t total = hn::GetLane(hn::SumOfLanes(di, sum));
      out->scales[t * out->blocks + b] = scale;
      out->scaled_sums[t * out->blocks + b] = scale * static_cast<float>(total);
    }
    for (int64_t b = full_blocks; b < out->blocks; ++b) {
      QuantizeActivationBlock(x, t, b, out);
    }
  }
#endif
}

void RmsNorm(const float* x, const float* weight, int64_t n, float eps,
             float* out) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  auto acc = hn::Zero(df);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto v = hn::LoadU(df, x + i);
    acc = hn::MulAdd(v, v, acc);
  }
  float ss = hn::GetLane(hn::SumOfLanes(df, acc));
  for (; i < n; ++i) ss += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  const auto vs = hn::Set(df, scale);
  i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(
        hn::Mul(hn::LoadU(df, weight + i), hn::Mul(hn::LoadU(df, x + i), vs)),
        df, out + i);
  }
  for (; i < n; ++i) out[i] = weight[i] * (x[i] * scale);
}

void Rope(float* v, const float* cos, const float* sin, int64_t head_dim) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const int64_t half = head_dim / 2;
  int64_t i = 0;
  for (; i + lanes <= half; i += lanes) {
    const auto a = hn::LoadU(df, v + i);
    const auto b = hn::LoadU(df, v + half + i);
    const auto c = hn::LoadU(df, cos + i);
    const auto s = hn::LoadU(df, sin + i);
    hn::StoreU(hn::Sub(hn::Mul(a, c), hn::Mul(b, s)), df, v + i);
    hn::StoreU(hn::Add(hn::Mul(b, c), hn::Mul(a, s)), df, v + half + i);
  }
  for (; i < half; ++i) {
    const float a = v[i];
    const float b = v[i + half];
    v[i] = a * cos[i] - b * sin[i];
    v[i + half] = b * cos[i] + a * sin[i];
  }
}

// Every element goes through the same vector formula (the last partial
// vector through a padded copy), so an element's result does not depend on
// where a call's range starts: the forward pass applies it to chunks of rows
// whose bounds depend on the thread count.
void SiluMul(float* gate, const float* up, int64_t n) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const auto one = hn::Set(df, 1.0f);
  // exp(-g) overflows for g < -88; clamping keeps the quotient a tiny
  // negative number, as exact arithmetic gives.
  const auto limit = hn::Set(df, 88.0f);
  auto silu_mul = [&](hn::Vec<DF> g, hn::Vec<DF> u) {
    const auto e = hn::Exp(df, hn::Min(hn::Neg(g), limit));
    return hn::Mul(hn::Div(g, hn::Add(one, e)), u);
  };
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(silu_mul(hn::LoadU(df, gate + i), hn::LoadU(df, up + i)), df,
               gate + i);
  }
  if (i < n) {
    HWY_ALIGN float g[hn::MaxLanes(df)] = {};
    HWY_ALIGN float u[hn::MaxLanes(df)] = {};
    std::copy(gate + i, gate + n, g);
    std::copy(up + i, up + n, u);
    hn::Store(silu_mul(hn::Load(df, g), hn::Load(df, u)), df, g);
    std::copy(g, g + (n - i), gate + i);
  }
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const auto va = hn::Set(df, a);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(hn::MulAdd(va, hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df,
               y + i);
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

// Attention of one token (decode). Its arithmetic per query head is the one
// AttentionRows (kernels_attention_hwy.cc) runs per row of a prompt, so
// decode and prefill agree exactly: each score is one multiply-add chain
// over d in order, then times scale; softmax takes Highway's Exp of every
// score and sums in key order; each output element is one multiply-add
// chain over keys in order. Keys are transposed (k[d * k_stride + j]), so a
// vector holds the same element of `lanes` consecutive keys and no score is
// summed across lanes.

// scores[h * len + j] for heads h < H and keys j = j0 + c * lanes + lane,
// c < C, j < len (lanes past len are computed from padding and dropped).
template <int H, int C>
HWY_INLINE void KeyScores(const float* q, int64_t head_dim, const float* k,
                          int64_t k_stride, int64_t j0, int64_t len,
                          float scale, float* scores) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  HWY_ALIGN float tile[H * C * hn::MaxLanes(df)];
  BroadcastTile<H, C>(head_dim, q, 1, head_dim, k + j0, k_stride, tile);
  for (int h = 0; h < H; ++h) {
    for (int c = 0; c < C; ++c) {
      const int64_t j = j0 + c * lanes;
      const float* sums = tile + (h * C + c) * lanes;
      for (int64_t l = 0; l < std::min(lanes, len - j); ++l) {
        scores[h * len + j + l] = sums[l] * scale;
      }
    }
  }
}

// Scores of heads [0, H) for all `len` keys.
template <int H>
HWY_INLINE void HeadScores(const float* q, int64_t head_dim, const float* k,
                           int64_t k_stride, int64_t len, float scale,
                           float* scores) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  int64_t j = 0;
  for (; j + 4 * lanes <= len; j += 4 * lanes) {
    KeyScores<H, 4>(q, head_dim, k, k_stride, j, len, scale, scores);
  }
  for (; j < len; j += lanes) {
    KeyScores<H, 1>(q, head_dim, k, k_stride, j, len, scale, scores);
  }
}

// x <- softmax(x), the arithmetic AttentionRows runs down each row of
// scores (kernels_attention_hwy.cc), so decode attention, which calls this,
// matches it exactly: Exp of every element (the last partial vector through
// a padded copy), the sum in element order, then times 1 / sum.
void Softmax(float* x, int64_t n) {
  const DF df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  float max = x[0];
  for (int64_t i = 1; i < n; ++i) max = std::max(max, x[i]);
  const auto vmax = hn::Set(df, max);
  HWY_ALIGN float buffer[hn::MaxLanes(df)];
  for (int64_t i = 0; i < n; i += lanes) {
    const int64_t count = std::min(lanes, n - i);
    std::fill(buffer, buffer + lanes, max);
    std::copy(x + i, x + i + count, buffer);
    hn::Store(hn::Exp(df, hn::Sub(hn::Load(df, buffer), vmax)), df, buffer);
    std::copy(buffer, buffer + count, x + i);
  }
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

// Scores, softmax and outputs of heads [0, H).
template <int H>
HWY_INLINE void HeadsAttention(const float* q, const float* k, int64_t k_stride,
                               const float* v, int64_t v_stride, int64_t len,
                               int64_t head_dim, float scale, float* scores,
                               float* out) {
  HeadScores<H>(q, head_dim, k, k_stride, len, scale, scores);
  float* out_rows[H];
  for (int h = 0; h < H; ++h) {
    Softmax(scores + h * len, len);
    out_rows[h] = out + h * head_dim;
  }
  BroadcastRows<H>(len, scores, 1, len, v, v_stride, head_dim, out_rows);
}

void Attention(const float* q, int64_t group, const float* k, int64_t k_stride,
               const float* v, int64_t v_stride, int64_t len, int64_t head_dim,
               float scale, float* scores, float* out) {
  // Four heads at a time share each loaded key and value vector.
  int64_t h = 0;
  for (; h + 4 <= group; h += 4) {
    HeadsAttention<4>(q + h * head_dim, k, k_stride, v, v_stride, len, head_dim,
                      scale, scores + h * len, out + h * head_dim);
  }
  const float* qh = q + h * head_dim;
  float* sh = scores + h * len;
  float* oh = out + h * head_dim;
  switch (group - h) {
    case 3:
      HeadsAttention<3>(qh, k, k_stride, v, v_stride, len, head_dim, scale, sh,
                        oh);
      break;
    case 2:
      HeadsAttention<2>(qh, k, k_stride, v, v_stride, len, head_dim, scale, sh,
                        oh);
      break;
    case 1:
      HeadsAttention<1>(qh, k, k_stride, v, v_stride, len, head_dim, scale, sh,
                        oh);
      break;
    default:
      break;
  }
}

// Names the target this copy was compiled for.
const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace llmpack::runtime
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <string>

namespace llmpack::runtime {

HWY_EXPORT(QuantizeActivationsSimd);
HWY_EXPORT(RmsNorm);
HWY_EXPORT(Rope);
HWY_EXPORT(Softmax);
HWY_EXPORT(SiluMul);
HWY_EXPORT(Dot);
HWY_EXPORT(Axpy);
HWY_EXPORT(Attention);
HWY_EXPORT(TargetName);

namespace {

// The quantized matmul of this CPU: AVX-512 VNNI when available, else the
// best Highway target. Chosen once.
QuantMatMulFn BestQuantMatMul() {
  static const QuantMatMulFn best = [] {
    const QuantMatMulFn vnni = Avx512VnniQuantMatMul();
    return vnni != nullptr ? vnni : &QuantMatMulHighway;
  }();
  return best;
}

// The token-panel kernels of this CPU (prompts times q4 weights), or
// nullptr. Chosen once.
const PanelKernels* BestPanelKernels() {
  static const PanelKernels* const best = Avx512VnniPanelKernels();
  return best;
}

void DispatchPrepareMatMul(const float* x, int64_t tokens,
                           const WeightMatrix& w, MatMulInput* in,
                           ThreadPool* pool) {
  in->x = x;
  in->tokens = tokens;
  in->cols = w.cols;
  in->dtype = w.dtype;
  in->quantized = w.quantized();
  in->use_panels = in->quantized && BestPanelKernels() != nullptr &&
                   PanelMatMulApplies(w, tokens);
  if (in->use_panels) {
    // Panels are independent: a 512-token prompt quantized on one thread
    // left the others idle for ~5% of prefill.
    StartActivationPanels(tokens, w.cols, &in->panels);
    const PanelQuantizeFn quantize = BestPanelKernels()->quantize;
    const auto fill = [&](int64_t begin, int64_t end) {
      quantize(x, begin, end, &in->panels);
    };
    if (pool != nullptr) {
      pool->ParallelFor(in->panels.panels, 1, fill);
    } else {
      fill(0, in->panels.panels);
    }
  } else if (in->quantized) {
    QuantizeActivationsHighway(x, tokens, w.cols, w, &in->q);
  }
}

void DispatchMatMul(const MatMulInput& in, const WeightMatrix& w,
                    int64_t row_begin, int64_t row_end, float* out,
                    int64_t out_stride) {
  if (in.use_panels) {
    BestPanelKernels()->matmul(in.panels, w, row_begin, row_end, out,
                               out_stride);
    return;
  }
  if (in.quantized) {
    // Groups that cut activation blocks (e.g. per-row groups of 172) have
    // no SIMD kernel.
    const bool simd = w.layout.format.group_size % kActivationBlock == 0;
    (simd ? BestQuantMatMul() : &QuantizedMatMulReference)(
        in.q, w, row_begin, row_end, out, out_stride);
    return;
  }
  FloatMatMulHighway(in.x, in.tokens, w, row_begin, row_end, out, out_stride);
}
void DispatchRmsNorm(const float* x, const float* weight, int64_t n, float eps,
                     float* out) {
  HWY_DYNAMIC_DISPATCH(RmsNorm)(x, weight, n, eps, out);
}
void DispatchRope(float* v, const float* cos, const float* sin,
                  int64_t head_dim) {
  HWY_DYNAMIC_DISPATCH(Rope)(v, cos, sin, head_dim);
}
void DispatchSoftmax(float* x, int64_t n) {
  HWY_DYNAMIC_DISPATCH(Softmax)(x, n);
}
void DispatchSiluMul(float* gate, const float* up, int64_t n) {
  HWY_DYNAMIC_DISPATCH(SiluMul)(gate, up, n);
}
float DispatchDot(const float* a, const float* b, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(Dot)(a, b, n);
}
void DispatchAxpy(float a, const float* x, float* y, int64_t n) {
  HWY_DYNAMIC_DISPATCH(Axpy)(a, x, y, n);
}
void DispatchAttention(const float* q, int64_t group, const float* k,
                       int64_t k_stride, const float* v, int64_t v_stride,
                       int64_t len, int64_t head_dim, float scale,
                       float* scores, float* out) {
  HWY_DYNAMIC_DISPATCH(Attention)
  (q, group, k, k_stride, v, v_stride, len, head_dim, scale, scores, out);
}

}  // namespace

void QuantizeActivationsHighway(const float* x, int64_t tokens, int64_t cols,
                                const WeightMatrix& w,
                                QuantizedActivations* out) {
  HWY_DYNAMIC_DISPATCH(QuantizeActivationsSimd)(x, tokens, cols, w, out);
}

const KernelTable& OptimizedKernels() {
  static const std::string* name = new std::string(
      std::string("highway:") + HWY_DYNAMIC_DISPATCH(TargetName)() +
      (Avx512VnniQuantMatMul() != nullptr ? "+avx512vnni" : ""));
  static const KernelTable table = {
      name->c_str(),     DispatchPrepareMatMul, DispatchMatMul,
      DispatchRmsNorm,   DispatchRope,          DispatchSoftmax,
      DispatchSiluMul,   DispatchDot,           DispatchAxpy,
      DispatchAttention, AttentionRowsHighway,
  };
  return table;
}

}  // namespace llmpack::runtime
#endif  // HWY_ONCE
