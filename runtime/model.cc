#include "runtime/model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <new>

#include "absl/strings/str_cat.h"
#include "llmpack/checksum.h"
#include "llmpack/package_layout.h"
#include "llmpack/status_macros.h"
#include "runtime/huge_mapping.h"
#include "runtime/rope.h"

namespace llmpack::runtime {
namespace {

// Tokens per parallel item of a prompt's per-token steps (norms, RoPE, the
// KV cache copy, residual adds): enough work to be worth handing out.
constexpr int64_t kTokensPerItem = 16;

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> Model::Open(
    const std::filesystem::path& dir, const ModelOptions& options) {
  auto model = std::unique_ptr<Model>(new Model());
  ASSIGN_OR_RETURN(model->package_,
                   Package::Open(dir, {options.verify_checksums}));
  LoaderOptions loader_options;
  loader_options.mode = options.mode;
  loader_options.verify_each_load = options.verify_each_load;
  loader_options.drop_page_cache = options.drop_page_cache;
  loader_options.stream_io = options.stream_io;
  loader_options.trace = options.trace_loader;
  ASSIGN_OR_RETURN(model->loader_,
                   BlockLoader::Create(*model->package_, loader_options));
  model->pool_ = std::make_unique<ThreadPool>(options.threads);
  model->kernels_ = &GetKernels(options.kernels);
  const ModelConfig& config = model->config();
  model->inv_freq_ = RopeInverseFrequencies(config.rope, config.head_dim);

  // The output projection is needed for every token, so it stays in memory.
  const TensorFileReader& lm = model->package_->lm();
  const uint8_t* base = nullptr;
  // Read on every token, so in 2 MiB pages like the blocks (a guest under
  // shadow paging re-faults 4 KiB pages after TLB flushes): streamed int4
  // decode ran 8-15% faster than from a 4 KiB-page buffer (docs/runtime.md).
  if (options.mode == LoadMode::kResident) {
    // The blocks were mapped first: where their rebuilds failed, re-reading
    // the lm file would not help either.
    ASSIGN_OR_RETURN(
        HugeMapping m,
        MapInHugeFolios(lm.file(), !options.drop_page_cache &&
                                       model->loader_->huge_folios_possible()));
    model->lm_map_ = std::move(m.map);
    base = model->lm_map_.data();
  } else {
    const size_t size = lm.file().size();
    model->lm_buffer_ = AllocateHugePages(size);
    if (model->lm_buffer_ == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot allocate ", size, " bytes for ", lm.path().string()));
    }
    absl::Status read = lm.file().ReadAt(0, {model->lm_buffer_.get(), size});
    RETURN_IF_ERROR(model->package_->CheckUnchanged(lm));
    RETURN_IF_ERROR(read);
    base = model->lm_buffer_.get();
  }
  model->lm_bytes_ = lm.file().size();
  for (const char* name : {kFinalNorm, kLmHead}) {
    ASSIGN_OR_RETURN(const TensorInfo* t, lm.Get(name));
    if (options.verify_each_load &&
        Checksum64(base + t->offset, t->size_bytes) != t->checksum) {
      return absl::DataLossError(absl::StrCat(
          lm.path().string(), ": checksum mismatch in tensor ", name));
    }
  }
  const TensorInfo* head = lm.Find(kLmHead);
  model->lm_head_ = MatrixView(*head, base + head->offset);
  const TensorInfo* norm = lm.Find(kFinalNorm);
  model->final_norm_.resize(static_cast<size_t>(norm->num_elements()));
  ToF32(norm->dtype, base + norm->offset, model->final_norm_.data(),
        model->final_norm_.size());
  return model;
}

Session::Session(Model& model, int64_t capacity)
    : model_(model),
      config_(model.config()),
      capacity_(capacity),
      k_cache_(static_cast<size_t>(config_.num_layers)),
      v_cache_(static_cast<size_t>(config_.num_layers)) {}

absl::Status Session::ReserveKvCache(int64_t tokens) {
  if (tokens <= kv_tokens_) return absl::OkStatus();
  // Double as the sequence grows (capped at the capacity), so a generous
  // --max-new-tokens costs memory only for the tokens actually produced.
  const int64_t target = std::min(capacity_, std::max(tokens, 2 * kv_tokens_));
  const int64_t kv_dim = config_.kv_dim();
  const size_t per_layer = static_cast<size_t>(target * kv_dim);
  const int64_t stride = target + kKeyPadding;
  try {
    for (size_t layer = 0; layer < k_cache_.size(); ++layer) {
      // Key rows get longer: the positions so far move to the new stride.
      std::vector<float> keys(static_cast<size_t>(kv_dim * stride));
      for (int64_t e = 0; e < kv_dim && kv_tokens_ > 0; ++e) {
        const float* from = k_cache_[layer].data() + e * KeyStride();
        std::copy(from, from + position_, keys.data() + e * stride);
      }
      k_cache_[layer] = std::move(keys);
      // Each kv head's values get a longer run: they move likewise.
      std::vector<float> values(per_layer);
      const int64_t hd = config_.head_dim;
      for (int64_t g = 0; g < config_.num_kv_heads && kv_tokens_ > 0; ++g) {
        const float* from = v_cache_[layer].data() + g * ValueHeadStride();
        std::copy(from, from + position_ * hd, values.data() + g * target * hd);
      }
      v_cache_[layer] = std::move(values);
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "KV cache for ", target, " tokens (",
        2 * config_.num_layers * per_layer * sizeof(float) / (1 << 20),
        " MiB) does not fit in memory"));
  }
  kv_tokens_ = target;
  return absl::OkStatus();
}

uint64_t Session::kv_cache_bytes() const {
  uint64_t floats = 0;
  for (size_t layer = 0; layer < k_cache_.size(); ++layer) {
    floats += k_cache_[layer].size() + v_cache_[layer].size();
  }
  return floats * sizeof(float);
}

void Session::Linears(const float* x, int64_t tokens,
                      std::initializer_list<LinearOutput> outputs,
                      bool silu_up) {
  const KernelTable& k = model_.kernels();
  const LinearOutput* first = outputs.begin();
  // Activations are prepared for a weight dtype (quantized codes follow the
  // weights' order, and the panel layout of q4 prompts depends on the group
  // size), so matrices of different dtypes or group sizes (a package may mix
  // them) run one after the other.
  for (const LinearOutput& o : outputs) {
    if (o.w->dtype == first->w->dtype &&
        o.w->layout.format.group_size == first->w->layout.format.group_size) {
      continue;
    }
    for (const LinearOutput& each : outputs) Linears(x, tokens, {each});
    if (silu_up) {
      k.silu_mul(first[0].out, first[1].out, tokens * first[0].w->rows);
    }
    return;
  }
  // Prepared once; every thread reads them.
  k.prepare_matmul(x, tokens, *first->w, &matmul_input_, &model_.pool());
  // Chunks of whole four-row tiles, about four per thread over all the
  // rows, never straddling two matrices.
  int64_t total_rows = 0;
  for (const LinearOutput& o : outputs) total_rows += o.w->rows;
  const int64_t threads = model_.pool().num_threads();
  int64_t grain = (total_rows + threads * 4 - 1) / (threads * 4);
  grain = std::max<int64_t>(4, (grain + 3) / 4 * 4);
  std::vector<LinearChunk>& chunks = linear_chunks_;
  chunks.clear();
  const int64_t count = silu_up ? 1 : static_cast<int64_t>(outputs.size());
  for (int64_t i = 0; i < count; ++i) {
    const LinearOutput& o = first[i];
    for (int64_t r = 0; r < o.w->rows; r += grain) {
      chunks.push_back({&o, r, std::min(o.w->rows, r + grain)});
    }
  }
  const int64_t ffn = silu_up ? first[0].w->rows : 0;
  model_.pool().ParallelFor(
      static_cast<int64_t>(chunks.size()), 1, [&](int64_t begin, int64_t end) {
        for (int64_t c = begin; c < end; ++c) {
          const LinearChunk& chunk = chunks[c];
          const WeightMatrix& w = *chunk.output->w;
          k.matmul(matmul_input_, w, chunk.begin, chunk.end, chunk.output->out,
                   w.rows);
          if (!silu_up) continue;
          // The same rows of up, then silu(gate) * up on them.
          k.matmul(matmul_input_, *first[1].w, chunk.begin, chunk.end,
                   first[1].out, ffn);
          for (int64_t t = 0; t < tokens; ++t) {
            k.silu_mul(first[0].out + t * ffn + chunk.begin,
                       first[1].out + t * ffn + chunk.begin,
                       chunk.end - chunk.begin);
          }
        }
      });
}

absl::Status Session::Embed(absl::Span<const int32_t> tokens) {
  const TensorFileReader& file = model_.package().embedding();
  const TensorInfo* table = file.Find(kEmbedTokens);
  const int64_t h = config_.hidden_size;
  // A q8/q4 table's rows are dequantized by the codec, one row at a time.
  const WeightMatrix view = MatrixView(*table, nullptr);
  row_bytes_.resize(table->row_bytes());
  for (size_t t = 0; t < tokens.size(); ++t) {
    const int32_t id = tokens[t];
    if (id < 0 || id >= config_.vocab_size) {
      return absl::OutOfRangeError(absl::StrCat(
          "token id ", id, " at input position ", t,
          " is outside the vocabulary [0, ", config_.vocab_size, ")"));
    }
    float* dst = x_.data() + t * h;
    RETURN_IF_ERROR(file.ReadRows(*table, id, 1, absl::MakeSpan(row_bytes_)));
    if (view.quantized()) {
      quant::DequantizeRow(view.layout, row_bytes_.data(), dst);
    } else {
      ToF32(table->dtype, row_bytes_.data(), dst, static_cast<size_t>(h));
    }
    model_.embedding_bytes_read_ += row_bytes_.size();
  }
  // Rows read from a file written to since it was verified may be wrong.
  return model_.package().CheckUnchanged(file);
}

// One transformer block over n new tokens, in place on x_:
//   x += o_proj(attention(rope(q), rope(k), v))   with q, k, v from rms(x)
//   x += down(silu(gate(rms(x))) * up(rms(x)))
// Shapes (row-major, n = tokens in this batch, pos = position_):
//   x_, xn_: [n, hidden]   q_, att_: [n, heads * head_dim]
//   k_, v_: [n, kv_heads * head_dim]
//   k_cache_[layer]: [kv_heads * head_dim, KeyStride()] (keys transposed)
//   v_cache_[layer]: [kv_heads, kv_tokens_, head_dim]
//   gate_, up_: [min(n, MlpChunk(n)), ffn]   tmp_: [n, hidden]
void Session::RunBlock(const BlockWeights& w, int64_t n) {
  const KernelTable& k = model_.kernels();
  const int64_t h = config_.hidden_size;
  const int64_t hd = config_.head_dim;
  const int64_t heads = config_.num_heads;
  const int64_t kv_heads = config_.num_kv_heads;
  const int64_t qd = config_.q_dim();
  const int64_t kvd = config_.kv_dim();
  const int64_t key_stride = KeyStride();
  const int64_t half = hd / 2;
  const float eps = static_cast<float>(config_.norm_eps);
  const int64_t layer = w.layer;

  // Per-token steps of a prompt run in ranges of tokens over the pool (on
  // one thread they left the others idle for ~1% of prefill); a decode
  // step's single token runs inline.
  auto for_tokens = [&](int64_t count, const auto& each) {
    model_.pool().ParallelFor(count, kTokensPerItem,
                              [&](int64_t t0, int64_t t1) {
                                for (int64_t t = t0; t < t1; ++t) each(t);
                              });
  };
  // xn: [n, hidden] = rms_norm(x) * input_norm
  for_tokens(n, [&](int64_t t) {
    k.rms_norm(x_.data() + t * h, w.input_norm.data(), h, eps,
               xn_.data() + t * h);
  });
  // q: [n, heads * head_dim], k and v: [n, kv_heads * head_dim]
  ObserveInput(layer, LinearInput::kAttention, xn_.data(), n, h);
  Linears(xn_.data(), n,
          {{&w.q, q_.data()}, {&w.k, k_.data()}, {&w.v, v_.data()}});
  for_tokens(n, [&](int64_t t) {
    float* q = q_.data() + t * qd;
    float* kk = k_.data() + t * kvd;
    float* v = v_.data() + t * kvd;
    if (!w.q_bias.empty()) {
      k.axpy(1.0f, w.q_bias.data(), q, qd);
      k.axpy(1.0f, w.k_bias.data(), kk, kvd);
      k.axpy(1.0f, w.v_bias.data(), v, kvd);
    }
    // cos, sin: [head_dim / 2] for this token's position; each head's
    // [head_dim] slice is rotated (rotate-half), after its q/k norm if any.
    const float* c = cos_.data() + t * half;
    const float* s = sin_.data() + t * half;
    for (int64_t head = 0; head < heads; ++head) {
      float* qh = q + head * hd;
      if (!w.q_norm.empty()) k.rms_norm(qh, w.q_norm.data(), hd, eps, qh);
      k.rope(qh, c, s, hd);
    }
    for (int64_t head = 0; head < kv_heads; ++head) {
      float* kh = kk + head * hd;
      if (!w.k_norm.empty()) k.rms_norm(kh, w.k_norm.data(), hd, eps, kh);
      k.rope(kh, c, s, hd);
    }
    // The cache row of position pos: [kv_heads * head_dim].
    const int64_t pos = position_ + t;
    float* keys = k_cache_[layer].data() + pos;
    for (int64_t e = 0; e < kvd; ++e) keys[e * key_stride] = kk[e];
    for (int64_t g = 0; g < kv_heads; ++g) {
      std::copy(v + g * hd, v + (g + 1) * hd,
                v_cache_[layer].data() + g * ValueHeadStride() + pos * hd);
    }
  });

  // Causal attention: the `group` query heads head = g * group + i read kv
  // head g (grouped-query).
  //   scores: [len] = q_h . k_cache[j, g] * scale, j < len = pos + t + 1
  //   att[t, head]: [head_dim] = sum_j softmax(scores)[j] * v_cache[j, g]
  const float scale = static_cast<float>(1.0 / std::sqrt(double(hd)));
  const int64_t group = heads / kv_heads;
  const float* kc = k_cache_[layer].data();
  const float* vc = v_cache_[layer].data();
  if (n == 1) {
    // Decode: one item per kv head.
    model_.pool().ParallelFor(kv_heads, 1, [&](int64_t begin, int64_t end) {
      thread_local std::vector<float> scores;
      const int64_t len = position_ + 1;
      scores.resize(static_cast<size_t>(group * len));
      for (int64_t g = begin; g < end; ++g) {
        k.attention(q_.data() + g * group * hd, group, kc + g * hd * key_stride,
                    key_stride, vc + g * ValueHeadStride(), hd, len, hd, scale,
                    scores.data(), att_.data() + g * group * hd);
      }
    });
  } else {
    // A prompt: items of up to kAttentionRowBlock rows (token, query head)
    // of one kv head, the longest (last) blocks first so the short ones
    // even out the threads at the end.
    const int64_t rows = n * group;
    const int64_t blocks = (rows + kAttentionRowBlock - 1) / kAttentionRowBlock;
    model_.pool().ParallelFor(
        blocks * kv_heads, 1, [&](int64_t begin, int64_t end) {
          thread_local std::vector<float> scratch;
          for (int64_t item = begin; item < end; ++item) {
            const int64_t g = item % kv_heads;
            const int64_t r0 =
                (blocks - 1 - item / kv_heads) * kAttentionRowBlock;
            const int64_t r1 = std::min(rows, r0 + kAttentionRowBlock);
            const int64_t len = AttentionRowKeys(position_, group, r1 - 1);
            scratch.resize(static_cast<size_t>(AttentionRowsScratch(hd, len)));
            k.attention_rows(q_.data() + g * group * hd, qd, group, position_,
                             r0, r1, kc + g * hd * key_stride, key_stride,
                             vc + g * ValueHeadStride(), hd, hd, scale,
                             scratch.data(), att_.data() + g * group * hd);
          }
        });
  }
  // x: [n, hidden] += att: [n, heads * head_dim] . o^T
  ObserveInput(layer, LinearInput::kAttentionOutput, att_.data(), n, qd);
  Linear(att_.data(), n, w.o, tmp_.data());
  for_tokens(n, [&](int64_t t) {
    k.axpy(1.0f, tmp_.data() + t * h, x_.data() + t * h, h);
  });

  // MLP: gate, up: [m, ffn]; x += down(silu(gate) * up): [m, hidden], for
  // chunks of m <= MlpChunk(n) tokens (each token's MLP is independent).
  for_tokens(n, [&](int64_t t) {
    k.rms_norm(x_.data() + t * h, w.post_attention_norm.data(), h, eps,
               xn_.data() + t * h);
  });
  ObserveInput(layer, LinearInput::kMlp, xn_.data(), n, h);
  const int64_t chunk = MlpChunk(n);
  for (int64_t t0 = 0; t0 < n; t0 += chunk) {
    const int64_t m = std::min(chunk, n - t0);
    // gate <- silu(gate) * up, row chunks of both in one parallel loop.
    Linears(xn_.data() + t0 * h, m,
            {{&w.gate, gate_.data()}, {&w.up, up_.data()}},
            /*silu_up=*/true);
    ObserveInput(layer, LinearInput::kMlpDown, gate_.data(), m,
                 config_.ffn_size);
    Linear(gate_.data(), m, w.down, tmp_.data());
    for_tokens(m, [&](int64_t t) {
      k.axpy(1.0f, tmp_.data() + t * h, x_.data() + (t0 + t) * h, h);
    });
  }
}

int64_t Session::MlpChunk(int64_t n) const {
  // A long prompt's [n, ffn] gate and up buffers (16 MiB each for 512
  // tokens of a 1B model) were the largest part of streaming's memory
  // beyond its two blocks, so streaming takes 128 tokens at a time, which
  // keeps the panel matmul's tiles as efficient as the whole prompt (its own
  // token chunks are no larger). Resident runs hold the whole model anyway
  // and take up to 512: the x86 row-lane q4 kernel unpacks each weight tile
  // once per chunk, and 128-token chunks made int4 pp512 ~5% slower (Zen 3,
  // four alternating pairs). A calibration observer sees each layer's
  // down_proj inputs in one call.
  const int64_t tokens =
      model_.loader().mode() == LoadMode::kResident ? 512 : 128;
  return input_observer_ != nullptr ? n : std::min(n, tokens);
}

absl::Status Session::Forward(absl::Span<const int32_t> tokens, LogitsRows rows,
                              std::vector<float>* logits,
                              const BlockObserver* observer) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return absl::InvalidArgumentError("Forward: no tokens");
  if (position_ + n > capacity_) {
    return absl::OutOfRangeError(
        absl::StrCat("sequence of ", position_ + n,
                     " tokens exceeds the session capacity ", capacity_));
  }
  RETURN_IF_ERROR(ReserveKvCache(position_ + n));
  const int64_t h = config_.hidden_size;
  const size_t nh = static_cast<size_t>(n * h);
  x_.resize(nh);
  xn_.resize(nh);
  tmp_.resize(nh);
  q_.resize(static_cast<size_t>(n * config_.q_dim()));
  att_.resize(q_.size());
  k_.resize(static_cast<size_t>(n * config_.kv_dim()));
  v_.resize(k_.size());
  gate_.resize(static_cast<size_t>(MlpChunk(n) * config_.ffn_size));
  up_.resize(gate_.size());
  RETURN_IF_ERROR(Embed(tokens));
  RopeTables(model_.inv_freq_, position_, n, &cos_, &sin_);

  BlockLoader& loader = model_.loader();
  for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
    ASSIGN_OR_RETURN(const BlockWeights* w, loader.Acquire(layer));
    RunBlock(*w, n);
    loader.Release(layer);
    if (observer != nullptr) (*observer)(layer, x_.data(), n);
  }
  position_ += n;
  // Mapped weights are the files' pages, so a write or truncation during
  // this pass shows only at its end; checked before the logits are returned
  // (docs/runtime.md, "Files that change while in use").
  auto unchanged = [&] { return model_.package().CheckUnchanged(); };

  if (rows == LogitsRows::kNone) return unchanged();
  const int64_t first = rows == LogitsRows::kAll ? 0 : n - 1;
  const int64_t count = n - first;
  const KernelTable& k = model_.kernels();
  for (int64_t t = 0; t < count; ++t) {
    k.rms_norm(x_.data() + (first + t) * h, model_.final_norm_.data(), h,
               static_cast<float>(config_.norm_eps), xn_.data() + t * h);
  }
  logits->resize(static_cast<size_t>(count * config_.vocab_size));
  ObserveInput(config_.num_layers, LinearInput::kOutput, xn_.data(), count, h);
  Linear(xn_.data(), count, model_.lm_head_, logits->data());
  return unchanged();
}

}  // namespace llmpack::runtime
