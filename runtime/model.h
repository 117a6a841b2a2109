// The forward pass: disk embedding -> blocks (streamed through BlockLoader)
// -> final norm -> output projection, for every family the converter
// accepts (llama, mistral, qwen2 with q/k/v bias, qwen3 with q/k norm). f32
// arithmetic on f32/f16/bf16 weights; matmul rows and attention heads are
// split over a persistent thread pool.
//
// Ownership: Model::Open returns the only owner of a Model, which owns its
// Package, BlockLoader, ThreadPool and the lm weights. A Session holds a
// reference to its Model (which must outlive it) and owns its KV cache and
// scratch buffers.
// Thread safety: a Model and its Sessions are used from one thread at a time
// (the loader and the pool are shared by all sessions of a model).
#ifndef LLMPACK_RUNTIME_MODEL_H_
#define LLMPACK_RUNTIME_MODEL_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "llmpack/mapped_file.h"
#include "runtime/aligned_bytes.h"
#include "runtime/block_loader.h"
#include "runtime/kernels.h"
#include "runtime/package.h"
#include "runtime/thread_pool.h"

namespace llmpack::runtime {

struct ModelOptions {
  LoadMode mode = LoadMode::kStream;
  bool verify_checksums = true;  // hash whole files once, at open
  // Also re-hash every tensor each time its block is loaded (and lm.bin's
  // once when read): LoaderOptions::verify_each_load.
  bool verify_each_load = false;
  bool drop_page_cache = false;          // LoaderOptions::drop_page_cache
  StreamIo stream_io = StreamIo::kAuto;  // LoaderOptions::stream_io
  int threads = 0;                       // <= 0: all hardware threads
  KernelChoice kernels = KernelChoice::kOptimized;
  bool trace_loader = false;  // record LoaderEvents (tests)
};

class Model {
 public:
  static absl::StatusOr<std::unique_ptr<Model>> Open(
      const std::filesystem::path& dir, const ModelOptions& options);

  const ModelConfig& config() const { return package_->config(); }
  const Package& package() const { return *package_; }
  BlockLoader& loader() { return *loader_; }
  const KernelTable& kernels() const { return *kernels_; }
  ThreadPool& pool() { return *pool_; }
  // Bytes read from embedding.bin (only the rows of tokens seen).
  uint64_t embedding_bytes_read() const { return embedding_bytes_read_; }
  // Bytes of lm.bin held in memory for the whole run.
  uint64_t lm_bytes() const { return lm_bytes_; }

 private:
  friend class Session;
  Model() = default;

  std::unique_ptr<Package> package_;
  std::unique_ptr<BlockLoader> loader_;
  std::unique_ptr<ThreadPool> pool_;
  const KernelTable* kernels_ = nullptr;
  std::vector<float> inv_freq_;
  // lm.bin: read once (stream) or mapped (resident).
  AlignedBytes lm_buffer_{nullptr, &std::free};
  MappedFile lm_map_;
  uint64_t lm_bytes_ = 0;
  WeightMatrix lm_head_;
  std::vector<float> final_norm_;
  uint64_t embedding_bytes_read_ = 0;
};

enum class LogitsRows { kNone, kLast, kAll };

// Called after each block with the hidden states [tokens, hidden_size].
using BlockObserver =
    std::function<void(int64_t layer, const float* hidden, int64_t tokens)>;

// The activation that feeds a group of Linears (q/k/v share one input, as do
// gate/up): what calibration for quantization observes.
enum class LinearInput {
  kAttention,        // normed hidden -> q_proj, k_proj, v_proj
  kAttentionOutput,  // attention output -> o_proj
  kMlp,              // normed hidden -> gate_proj, up_proj
  kMlpDown,          // silu(gate) * up -> down_proj
  kOutput,           // final normed hidden -> lm_head (layer == num_layers)
};
// Called with x [tokens, cols] just before the Linears it feeds run.
using LinearInputObserver =
    std::function<void(int64_t layer, LinearInput input, const float* x,
                       int64_t tokens, int64_t cols)>;

// One sequence: its KV cache and position. Not thread-safe.
class Session {
 public:
  // `capacity`: most tokens the sequence will hold. The KV cache grows on
  // demand up to it; Forward fails (ResourceExhausted) if memory runs out.
  Session(Model& model, int64_t capacity);

  int64_t position() const { return position_; }
  int64_t capacity() const { return capacity_; }
  void Reset() { position_ = 0; }
  // Bytes of KV cache this session holds now.
  uint64_t kv_cache_bytes() const;
  // Observes every Linear input of later Forward calls (nullptr: none). The
  // observer must outlive its use.
  void set_linear_input_observer(const LinearInputObserver* observer) {
    input_observer_ = observer;
  }

  // Appends `tokens` at positions [position, position + size): the whole
  // batch goes through block 0, then block 1, ... (each block loaded once).
  // `logits` receives [rows, vocab]: every token's row, the last only, or
  // none.
  absl::Status Forward(absl::Span<const int32_t> tokens, LogitsRows rows,
                       std::vector<float>* logits,
                       const BlockObserver* observer = nullptr);

 private:
  absl::Status ReserveKvCache(int64_t tokens);
  void RunBlock(const BlockWeights& w, int64_t tokens);
  // One matrix of a Linears call and where its output goes ([tokens,
  // w->rows], row stride w->rows).
  struct LinearOutput {
    const WeightMatrix* w;
    float* out;
  };
  // out[t, r] = x[t, :] . w[r, :] for every output, all rows of all of them
  // split over the pool in one parallel loop (one fork-join for q, k and
  // v). The matrices share x's width and dtype, so x is prepared once. With
  // `silu_up`, outputs[0] is gate and outputs[1] up (same rows): each chunk
  // of rows also computes gate <- silu(gate) * up for its rows.
  void Linears(const float* x, int64_t tokens,
               std::initializer_list<LinearOutput> outputs,
               bool silu_up = false);
  void Linear(const float* x, int64_t tokens, const WeightMatrix& w,
              float* out) {
    Linears(x, tokens, {{&w, out}});
  }
  absl::Status Embed(absl::Span<const int32_t> tokens);
  // Tokens per MLP pass of a block over n tokens.
  int64_t MlpChunk(int64_t n) const;
  void ObserveInput(int64_t layer, LinearInput input, const float* x,
                    int64_t tokens, int64_t cols) {
    if (input_observer_ != nullptr)
      (*input_observer_)(layer, input, x, tokens, cols);
  }

  Model& model_;
  const ModelConfig& config_;
  int64_t capacity_;
  int64_t position_ = 0;
  int64_t kv_tokens_ = 0;  // positions the KV cache has room for
  // Keys transposed, [layer][kv_dim][KeyStride()] (one row per element of a
  // kv head, positions along it, kKeyPadding readable floats past the last),
  // so attention loads one element of consecutive keys as a vector; values
  // [layer][kv_head][kv_tokens_][head_dim], so the values attention reads
  // for one kv head are one contiguous run.
  std::vector<std::vector<float>> k_cache_, v_cache_;
  int64_t KeyStride() const { return kv_tokens_ + kKeyPadding; }
  // Floats from one kv head's values to the next's.
  int64_t ValueHeadStride() const { return kv_tokens_ * config_.head_dim; }
  // Scratch, sized for the largest batch so far.
  std::vector<float> x_, xn_, q_, k_, v_, att_, tmp_, gate_, up_;
  std::vector<float> cos_, sin_;
  std::vector<uint8_t> row_bytes_;
  const LinearInputObserver* input_observer_ = nullptr;
  MatMulInput matmul_input_;  // the current Linear's prepared activations
  // A Linears call's work items: rows [begin, end) of one output.
  struct LinearChunk {
    const LinearOutput* output;
    int64_t begin, end;
  };
  std::vector<LinearChunk> linear_chunks_;
};

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_MODEL_H_
