// Scalar reference kernels: straightforward loops that define what the
// optimized kernels must compute.
#include <cmath>
#include <vector>

#include "runtime/kernels.h"

namespace llmpack::runtime {
namespace {

// Reference activations are the f32 rows themselves.
void ScalarPrepareMatMul(const float* x, int64_t tokens, const WeightMatrix& w,
                         MatMulInput* in, ThreadPool* /*pool*/) {
  in->x = x;
  in->tokens = tokens;
  in->cols = w.cols;
  in->dtype = w.dtype;
  in->quantized = false;
}

// Quantized rows are dequantized by the codec (the one definition of their
// values), float rows widened; then plain f32 dot products.
void ScalarMatMul(const MatMulInput& in, const WeightMatrix& w,
                  int64_t row_begin, int64_t row_end, float* out,
                  int64_t out_stride) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = row_begin; r < row_end; ++r) {
    if (w.quantized()) {
      quant::DequantizeRow(w.layout, w.Row(r), row.data());
    } else {
      ToF32(w.dtype, w.Row(r), row.data(), static_cast<size_t>(w.cols));
    }
    for (int64_t t = 0; t < in.tokens; ++t) {
      const float* xt = in.x + t * w.cols;
      float sum = 0.0f;
      for (int64_t c = 0; c < w.cols; ++c) sum += xt[c] * row[c];
      out[t * out_stride + r] = sum;
    }
  }
}

void ScalarRmsNorm(const float* x, const float* weight, int64_t n, float eps,
                   float* out) {
  float ss = 0.0f;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * scale);
}

void ScalarRope(float* v, const float* cos, const float* sin,
                int64_t head_dim) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float a = v[i];
    const float b = v[i + half];
    v[i] = a * cos[i] - b * sin[i];
    v[i + half] = b * cos[i] + a * sin[i];
  }
}

void ScalarSoftmax(float* x, int64_t n) {
  float max = x[0];
  for (int64_t i = 1; i < n; ++i) max = std::max(max, x[i]);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void ScalarSiluMul(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

float ScalarDot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void ScalarAxpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void ScalarAttention(const float* q, int64_t group, const float* k,
                     int64_t k_stride, const float* v, int64_t v_stride,
                     int64_t len, int64_t head_dim, float scale, float* scores,
                     float* out) {
  for (int64_t h = 0; h < group; ++h) {
    const float* qh = q + h * head_dim;
    float* s = scores + h * len;
    for (int64_t j = 0; j < len; ++j) {
      float dot = 0.0f;
      for (int64_t d = 0; d < head_dim; ++d) dot += qh[d] * k[d * k_stride + j];
      s[j] = dot * scale;
    }
    ScalarSoftmax(s, len);
    float* o = out + h * head_dim;
    for (int64_t i = 0; i < head_dim; ++i) o[i] = 0.0f;
    for (int64_t j = 0; j < len; ++j) {
      ScalarAxpy(s[j], v + j * v_stride, o, head_dim);
    }
  }
}

void ScalarAttentionRows(const float* q, int64_t q_stride, int64_t group,
                         int64_t pos0, int64_t row_begin, int64_t row_end,
                         const float* k, int64_t k_stride, const float* v,
                         int64_t v_stride, int64_t head_dim, float scale,
                         float* scratch, float* out) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t t = r / group;
    const int64_t offset = t * q_stride + (r % group) * head_dim;
    ScalarAttention(q + offset, 1, k, k_stride, v, v_stride, pos0 + t + 1,
                    head_dim, scale, scratch, out + offset);
  }
}

}  // namespace

const KernelTable& ScalarKernels() {
  static const KernelTable table = {
      "scalar",   ScalarPrepareMatMul, ScalarMatMul,        ScalarRmsNorm,
      ScalarRope, ScalarSoftmax,       ScalarSiluMul,       ScalarDot,
      ScalarAxpy, ScalarAttention,     ScalarAttentionRows,
  };
  return table;
}

const KernelTable& GetKernels(KernelChoice choice) {
  return choice == KernelChoice::kScalar ? ScalarKernels() : OptimizedKernels();
}

bool ParseKernelChoice(const std::string& text, KernelChoice* choice) {
  if (text == "scalar") {
    *choice = KernelChoice::kScalar;
    return true;
  }
  if (text == "optimized" || text == "auto") {
    *choice = KernelChoice::kOptimized;
    return true;
  }
  return false;
}

}  // namespace llmpack::runtime
