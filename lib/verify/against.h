// `llmverify <base> --against <other>`: runs two packages of the same model
// (typically the unquantized one and a quantized one) on the same inputs and
// measures how far the second's next-token distributions drift from the
// first's: KL(p_base || p_other), top-1 agreement, perplexity of both, the
// change in probability of the correct token, and the packages' sizes and
// bits per weight of their quantized tensors. Definitions and JSON fields:
// docs/llmverify.md, "Comparing two packages".
//
// Memory: the two models run one after the other on each input; only one
// input's logits of each model are held at a time, plus one scalar per
// compared position (for the percentiles).
//
// Thread safety: CompareAgainst is a single-threaded entry point (each model
// uses its own thread pool); the other functions are pure.
#ifndef LLMPACK_VERIFY_AGAINST_H_
#define LLMPACK_VERIFY_AGAINST_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/model.h"
#include "verify/text_codec.h"

namespace llmpack::verify {

struct AgainstOptions {
  std::filesystem::path base;   // the trusted package (p)
  std::filesystem::path other;  // the package under test (q)
  runtime::ModelOptions model;  // used for both
  // Inputs: at least one of them. Eval windows are scored at positions
  // 0..n-2 (each predicts the next token); reference prompts are compared at
  // every position of their input_ids.
  std::optional<std::filesystem::path> eval;
  int64_t eval_window = 256;     // tokens per window for id/text files
  int64_t eval_max_windows = 0;  // 0: all
  std::optional<std::filesystem::path> reference;
  TextCodec* codec = nullptr;  // for text eval files
};

// Sizes of one package.
struct PackageSize {
  uint64_t bytes_on_disk = 0;  // every regular file in the package directory
  int64_t quantized_tensors = 0;
  // Codes + scales + zero points of the q4/q8 tensors, and their weights.
  uint64_t quantized_bytes = 0;
  uint64_t quantized_weights = 0;
  // quantized_bytes * 8 / quantized_weights; unset without quantized tensors.
  std::optional<double> bits_per_weight;
};

// Summary of a set of per-position values. Percentiles are nearest-rank:
// the value at 1-based rank ceil(p * n) of the ascending order.
struct Distribution {
  double mean = 0;
  double rms = 0;
  double p1 = 0;
  double p99 = 0;
  double max = 0;
};

struct AgainstResult {
  std::string base_path, other_path;
  int64_t eval_windows = 0;       // windows compared
  int64_t reference_prompts = 0;  // prompts compared
  // Next-token distributions compared (eval positions + prompt positions).
  int64_t positions = 0;
  // KL(p_base || p_other) in nats, per position.
  Distribution kl;
  // Fraction of positions where both argmaxes agree (first max on ties).
  double top1_agreement = 0;
  // Over eval windows only (where the correct next token is known).
  int64_t predicted_tokens = 0;
  double base_perplexity = 0;
  double other_perplexity = 0;
  double perplexity_ratio = 0;  // other / base
  // p_other(correct) - p_base(correct), per predicted token.
  Distribution correct_prob_change;
  PackageSize base_size, other_size;
};

// Opens both packages (same vocabulary required), runs them on the inputs
// and returns the comparison. Errors name the package or input at fault.
absl::StatusOr<AgainstResult> CompareAgainst(const AgainstOptions& options);

// Sizes of a package on disk, without running it.
absl::StatusOr<PackageSize> MeasurePackage(
    const std::filesystem::path& package_dir);

// Pass/fail thresholds; an unset gate does not apply.
struct AgainstGates {
  std::optional<double> max_kl;         // mean KL <= value
  std::optional<double> min_top1;       // top-1 agreement >= value
  std::optional<double> max_ppl_ratio;  // other / base perplexity <= value
};

// Names of the failed gates ("max_kl", "min_top1", "max_ppl_ratio"); empty
// when every set gate passes. A perplexity gate without eval windows fails.
std::vector<std::string> FailedGates(const AgainstResult& result,
                                     const AgainstGates& gates);

// The "against" object of llmverify's JSON report (docs/llmverify.md).
nlohmann::json AgainstToJson(const AgainstResult& result,
                             const AgainstGates& gates);

}  // namespace llmpack::verify

#endif  // LLMPACK_VERIFY_AGAINST_H_
