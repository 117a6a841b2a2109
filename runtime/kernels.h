// The runtime's numeric kernels behind one dispatch point. Every kernel has a
// scalar reference (plain loops, the definition of correct) and an optimized
// path (Highway SIMD, best instruction set chosen at run time; on x86 CPUs
// with AVX-512 VNNI the quantized matmul uses vpdpbusd intrinsics). The
// forward pass only ever calls kernels through a KernelTable, so a test or a
// user (`llmverify --kernels scalar`) can swap the whole set at once.
//
// Thread safety: every kernel is a pure function of its arguments (the
// optimized matmul keeps a thread_local scratch buffer); any number of threads
// may call kernels concurrently on disjoint outputs.
#ifndef LLMPACK_RUNTIME_KERNELS_H_
#define LLMPACK_RUNTIME_KERNELS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llmpack/dtype.h"
#include "quant/codec.h"
#include "runtime/aligned_bytes.h"

namespace llmpack::runtime {

class ThreadPool;

// A row-major weight matrix [rows, cols]: f32/f16/bf16 elements, or q4/q8
// rows of `layout.row_bytes` bytes (formats/package_format.md, "Quantized
// tensors"). Not owned.
struct WeightMatrix {
  DType dtype = DType::kF32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  // q4/q8 only: group size, scale dtype, zero points and byte offsets of a
  // row (quant::MakeRowLayout(format, cols)).
  quant::RowLayout layout;

  bool quantized() const { return dtype == DType::kQ4 || dtype == DType::kQ8; }
  // Row r's first byte.
  const uint8_t* Row(int64_t r) const {
    const int64_t row_bytes =
        quantized() ? layout.row_bytes
                    : cols * static_cast<int64_t>(DTypeSize(dtype));
    return static_cast<const uint8_t*>(data) + r * row_bytes;
  }
};

// Activations quantized for the integer matmul: each token's f32 row is cut
// into blocks of kActivationBlock elements; block b gets scale[b] =
// max|x| / kActivationCodeMax and 15-bit codes a = round(x / scale) (zero
// past `cols`), so x ~= scale * a. Each code is stored as two int8 planes,
// a = 128 * high + low with low in 0..127, so byte dot products (vpdpbusd)
// reach 15-bit precision: the rounding error is 1/32766 of the block's max,
// small enough not to move a model's KL (int8 codes measurably did).
// quant_matmul.h defines it exactly.
inline constexpr int64_t kActivationBlock = 32;
inline constexpr int kActivationCodeMax = 16383;

struct QuantizedActivations {
  int64_t tokens = 0;
  int64_t cols = 0;
  int64_t blocks = 0;  // per token: ceil(cols / kActivationBlock)
  // Codes are stored in the order the weight codes are: natural for q8
  // weights, "q4 order" for q4 weights (see ActivationCodeIndex).
  bool q4_order = false;
  std::vector<int8_t> high;  // [tokens][blocks * kActivationBlock]
  std::vector<int8_t> low;   // same shape, 0..127
  // The same codes whole (128 * high + low), for the Highway matmul, which
  // multiplies i16 lanes.
  std::vector<int16_t> codes;  // same shape
  // [tokens][blocks] plus kScalePadding zeros, so SIMD loads of four may run
  // past a token's last block.
  std::vector<float> scales;
  // scales[b] * (sum of block b's codes): the activation side of the
  // zero-point term (same shape and padding as scales).
  std::vector<float> scaled_sums;
  static constexpr int64_t kScalePadding = 4;

  const int8_t* High(int64_t t) const {
    return high.data() + t * blocks * kActivationBlock;
  }
  const int8_t* Low(int64_t t) const {
    return low.data() + t * blocks * kActivationBlock;
  }
  const int16_t* Codes(int64_t t) const {
    return codes.data() + t * blocks * kActivationBlock;
  }
  // The code at index i of token t's planes.
  int32_t Code(int64_t t, int64_t i) const {
    return 128 * High(t)[i] + Low(t)[i];
  }
  const float* Scales(int64_t t) const { return scales.data() + t * blocks; }
  const float* ScaledSums(int64_t t) const {
    return scaled_sums.data() + t * blocks;
  }
};

// Prompt activations for the AVX-512 VNNI q4 matmul: the codes and scales
// QuantizedActivations would hold (same quantization, natural element
// order), regrouped into panels of kTokens tokens so one 64-byte vector
// holds the same four codes of 16 tokens. quant_matmul.h ("Token panels")
// defines the layout; the buffers are reused between calls.
struct ActivationPanels {
  static constexpr int64_t kTokens = 16;
  static constexpr int64_t kBlockBytes = 1024;  // per (panel, block)
  int64_t tokens = 0;
  int64_t cols = 0;
  int64_t blocks = 0;  // per token: cols / kActivationBlock (whole blocks)
  int64_t panels = 0;  // ceil(tokens / kTokens)
  // [panel][block][plane][quad][token][4]: 64-byte aligned.
  AlignedBytes codes{nullptr, &std::free};
  size_t codes_capacity = 0;
  std::vector<float> scales;  // [panel][block][token]

  const uint8_t* Codes(int64_t panel, int64_t block) const {
    return codes.get() + (panel * blocks + block) * kBlockBytes;
  }
  const float* Scales(int64_t panel, int64_t block) const {
    return scales.data() + (panel * blocks + block) * kTokens;
  }
};

// One Linear call's activations, prepared once (KernelTable::prepare_matmul)
// and then read by every thread's matmul over its range of rows.
struct MatMulInput {
  const float* x = nullptr;  // [tokens, cols] f32, not owned
  int64_t tokens = 0;
  int64_t cols = 0;
  DType dtype = DType::kF32;  // of the weights it was prepared for
  // Filled by kernel sets whose matmul computes with quantized activations,
  // for
  // quantized weights only.
  bool quantized = false;
  QuantizedActivations q;
  // Set instead of `q` for prompts that the panel matmul takes
  // (PanelMatMulApplies in quant_matmul.h).
  bool use_panels = false;
  ActivationPanels panels;
};

struct KernelTable {
  const char* name;  // "scalar" or "highway:<target>[+avx512vnni]"

  // Prepares x [tokens, w.cols] for matmuls with weights like `w` (dtype and
  // quantization format; the pointer is not read). `in` keeps its buffers
  // between calls. Call once per Linear, before the threads split the rows;
  // a prompt's quantization is split over `pool`'s threads when given
  // (nullptr: the calling thread alone).
  void (*prepare_matmul)(const float* x, int64_t tokens, const WeightMatrix& w,
                         MatMulInput* in, ThreadPool* pool);
  // out[t * out_stride + r] = sum_c x[t, c] * w[r, c] for t in [0, tokens)
  // and r in [row_begin, row_end): y = x W^T restricted to a range of output
  // rows so threads can split the rows. `in` was prepared for `w`'s format.
  // The scalar set computes with f32 activations and quant::DequantizeRow
  // weights (the quantized model's definition); the optimized set with 15-bit
  // activations (quant_matmul.h) for quantized weights.
  void (*matmul)(const MatMulInput& in, const WeightMatrix& w,
                 int64_t row_begin, int64_t row_end, float* out,
                 int64_t out_stride);
  // out = x / sqrt(mean(x^2) + eps) * weight (out may alias x).
  void (*rms_norm)(const float* x, const float* weight, int64_t n, float eps,
                   float* out);
  // Rotate-half RoPE on one head in place: for i < half = head_dim / 2,
  // (v[i], v[i+half]) <- (v[i] c[i] - v[i+half] s[i], v[i+half] c[i] + v[i]
  // s[i]).
  void (*rope)(float* v, const float* cos, const float* sin, int64_t head_dim);
  // x <- softmax(x), computed stably (max subtracted first).
  void (*softmax)(float* x, int64_t n);
  // gate <- silu(gate) * up, silu(g) = g / (1 + exp(-g)).
  void (*silu_mul)(float* gate, const float* up, int64_t n);
  float (*dot)(const float* a, const float* b, int64_t n);
  // y += a * x.
  void (*axpy)(float a, const float* x, float* y, int64_t n);
  // Causal attention of one token for `group` query heads that share one kv
  // head. Keys are stored transposed: element d of key j is k[d * k_stride +
  // j] (k_stride >= len + kKeyPadding, so whole vectors of keys may be read
  // past len); value j is the row v + j * v_stride. For each head h < group
  // (query q + h * head_dim),
  //   scores[h * len + j] = (sum over d in order of q_h[d] k_j[d]) * scale
  //   for j < len, softmax over j, out[h * head_dim + i] = sum_j p_j v_j[i].
  // `scores` is scratch of group * len floats.
  void (*attention)(const float* q, int64_t group, const float* k,
                    int64_t k_stride, const float* v, int64_t v_stride,
                    int64_t len, int64_t head_dim, float scale, float* scores,
                    float* out);
  // Causal attention of a prompt's rows for the `group` query heads of one
  // kv head, keys and values as for `attention`: row r = t * group + h is
  // token t's head h, at position pos0 + t, with its query at q + t *
  // q_stride + h * head_dim and its output at the same offset from `out`.
  // For rows [row_begin, row_end), at most kAttentionRowBlock of them, each
  // row gets exactly what `attention` of the same table gives it with len =
  // pos0 + t + 1, so a prompt and token-by-token decode agree. `scratch`
  // holds AttentionRowsScratch(head_dim, len of the last row) floats.
  void (*attention_rows)(const float* q, int64_t q_stride, int64_t group,
                         int64_t pos0, int64_t row_begin, int64_t row_end,
                         const float* k, int64_t k_stride, const float* v,
                         int64_t v_stride, int64_t head_dim, float scale,
                         float* scratch, float* out);
};

// Readable floats past the last key in each transposed key row (whole
// vectors of keys, up to 64 lanes).
inline constexpr int64_t kKeyPadding = 64;

// Rows one attention_rows call may take: the optimized kernel keeps a
// transposed copy of their queries and their scores, one column per row,
// so each loaded key or value element serves all of them. Its columns are
// padded to whole vectors: twice the rows leave room for any vector length.
inline constexpr int64_t kAttentionRowBlock = 64;
inline constexpr int64_t AttentionRowsScratch(int64_t head_dim, int64_t len) {
  return (head_dim + len) * 2 * kAttentionRowBlock;
}
// Keys that attention_rows' row `row` attends to: its token's position plus
// one. Rows are in token order, so a block's last row has the most.
inline constexpr int64_t AttentionRowKeys(int64_t pos0, int64_t group,
                                          int64_t row) {
  return pos0 + row / group + 1;
}

enum class KernelChoice { kScalar, kOptimized };

const KernelTable& ScalarKernels();
// Highway kernels for the best target this CPU supports.
const KernelTable& OptimizedKernels();
const KernelTable& GetKernels(KernelChoice choice);

// "scalar" / "optimized" (also "auto" = optimized).
bool ParseKernelChoice(const std::string& text, KernelChoice* choice);

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_KERNELS_H_
