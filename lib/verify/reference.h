// Reference bundles: what a trusted run produced for fixed inputs (logits at
// chosen positions and greedy continuations), so another package can be
// gated against them without the original model.
//
// Two formats are read: the fixtures' reference.json (with float32 .npy
// logits beside it) and llmpack's own bundle (written by
// WriteReferenceBundle: zstd-compressed, optionally reduced to the top-k
// logits per position plus a summary of the full row). The bundle layout is
// documented in docs/llmverify.md. Thread-safe: pure functions.
#ifndef LLMPACK_VERIFY_REFERENCE_H_
#define LLMPACK_VERIFY_REFERENCE_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace llmpack::verify {

// Logits of one case at some positions: full rows, or the top-k per row.
struct ReferenceLogits {
  std::vector<int64_t> positions;  // indices into the case's input_ids
  int64_t vocab = 0;
  int64_t top_k = 0;        // 0: full rows
  std::vector<float> full;  // [positions, vocab] when top_k == 0
  // top_k > 0: [positions, top_k], highest logit first.
  std::vector<int32_t> topk_ids;
  std::vector<float> topk_values;
  // top_k > 0: summary of each full row (mean, population variance,
  // log-sum-exp), so the dropped logits still constrain the comparison.
  std::vector<float> row_mean, row_variance, row_logsumexp;
};

struct ReferenceCase {
  std::string name;
  std::vector<int32_t> input_ids;
  ReferenceLogits logits;
  std::vector<int32_t> greedy;  // greedy continuation after input_ids
};

struct ReferenceBundle {
  std::string format;  // "fixture-reference" or "llmpack-reference"
  nlohmann::json info = nlohmann::json::object();  // provenance
  std::vector<ReferenceCase> cases;
};

inline constexpr char kBundleFormat[] = "llmpack-reference";
inline constexpr int kBundleVersion = 1;

// Reads either format (a zstd frame means an llmpack bundle).
absl::StatusOr<ReferenceBundle> ReadReference(
    const std::filesystem::path& path);
absl::Status WriteReferenceBundle(const std::filesystem::path& path,
                                  const ReferenceBundle& bundle);

// Keeps the top_k largest logits of each row plus the row summary.
ReferenceLogits ReduceToTopK(const std::vector<float>& rows, int64_t vocab,
                             std::vector<int64_t> positions, int64_t top_k);

// How our logits compare with a reference. For top-k references the errors
// are over the stored entries and NMSE divides by the mean stored row
// variance (docs/llmverify.md).
struct LogitsComparison {
  int64_t rows = 0;
  double max_abs_error = 0;
  double nmse = 0;                 // mean squared error / reference variance
  double min_cosine = 1;           // lowest per-row cosine similarity
  double top1_agreement = 0;       // fraction of rows with the same argmax
  double max_logsumexp_error = 0;  // top-k references only
};

// `ours` holds [positions, vocab] rows in the reference's position order.
absl::StatusOr<LogitsComparison> CompareLogits(const std::vector<float>& ours,
                                               const ReferenceLogits& ref);

}  // namespace llmpack::verify

#endif  // LLMPACK_VERIFY_REFERENCE_H_
