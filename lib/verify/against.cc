#include "verify/against.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "llmpack/manifest.h"
#include "llmpack/status_macros.h"
#include "llmpack/tensor_file.h"
#include "verify/eval.h"
#include "verify/reference.h"

namespace llmpack::verify {
namespace fs = std::filesystem;
using runtime::LogitsRows;
using runtime::Model;
using runtime::Session;

namespace {

// One input both models run on: positions [0, scored) are compared; the
// token at position t + 1 is the correct next token when `has_targets`.
struct Input {
  const std::vector<int32_t>* ids;
  int64_t scored;
  bool has_targets;
  std::string label;  // for errors: "eval window 3", "reference case 'x'"
};

// log(sum(exp(row))) in double, plus the row's max.
struct LogSumExp {
  double max = 0;
  double value = 0;
};

LogSumExp RowLogSumExp(const float* row, int64_t n) {
  LogSumExp r;
  r.max = *std::max_element(row, row + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double{row[i]} - r.max);
  r.value = r.max + std::log(sum);
  return r;
}

int64_t ArgmaxIndex(const float* row, int64_t n) {
  return std::max_element(row, row + n) - row;  // first max on ties
}

// Per-position scalars of the whole run (never logits).
class Accumulator {
 public:
  explicit Accumulator(int64_t vocab) : vocab_(vocab) {}

  void AddPosition(const float* base, const float* other,
                   std::optional<int32_t> target) {
    const LogSumExp lb = RowLogSumExp(base, vocab_);
    const LogSumExp lo = RowLogSumExp(other, vocab_);
    // KL(p || q) = sum_i p_i (log p_i - log q_i), with log p_i = l_i - lse.
    double kl = 0;
    for (int64_t i = 0; i < vocab_; ++i) {
      const double log_p = double{base[i]} - lb.value;
      const double log_q = double{other[i]} - lo.value;
      kl += std::exp(log_p) * (log_p - log_q);
    }
    // KL is >= 0; a tiny negative sum is rounding of nearly equal rows.
    kl_.push_back(std::max(0.0, kl));
    agree_ += ArgmaxIndex(base, vocab_) == ArgmaxIndex(other, vocab_);
    if (target.has_value()) {
      const double nll_base = lb.value - base[*target];
      const double nll_other = lo.value - other[*target];
      base_nll_ += nll_base;
      other_nll_ += nll_other;
      prob_change_.push_back(std::exp(-nll_other) - std::exp(-nll_base));
    }
  }

  void Finish(AgainstResult* r) {
    r->positions = static_cast<int64_t>(kl_.size());
    r->kl = Summarize(kl_);
    r->top1_agreement =
        kl_.empty() ? 0 : static_cast<double>(agree_) / kl_.size();
    r->predicted_tokens = static_cast<int64_t>(prob_change_.size());
    if (r->predicted_tokens > 0) {
      r->base_perplexity = std::exp(base_nll_ / r->predicted_tokens);
      r->other_perplexity = std::exp(other_nll_ / r->predicted_tokens);
      r->perplexity_ratio = r->other_perplexity / r->base_perplexity;
    }
    r->correct_prob_change = Summarize(prob_change_);
  }

 private:
  static double NearestRank(const std::vector<double>& sorted, double p) {
    const auto rank = static_cast<size_t>(std::ceil(p * sorted.size()));
    return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
  }

  static Distribution Summarize(std::vector<double> values) {
    Distribution d;
    if (values.empty()) return d;
    double sum = 0, sum_sq = 0;
    for (double v : values) {
      sum += v;
      sum_sq += v * v;
    }
    d.mean = sum / values.size();
    d.rms = std::sqrt(sum_sq / values.size());
    std::sort(values.begin(), values.end());
    d.p1 = NearestRank(values, 0.01);
    d.p99 = NearestRank(values, 0.99);
    d.max = values.back();
    return d;
  }

  int64_t vocab_;
  std::vector<double> kl_, prob_change_;
  int64_t agree_ = 0;
  double base_nll_ = 0, other_nll_ = 0;
};

absl::Status CheckIds(const Input& input, int64_t vocab) {
  for (int32_t id : *input.ids) {
    if (id < 0 || id >= vocab) {
      return absl::OutOfRangeError(
          absl::StrCat(input.label, ": token id ", id,
                       " is outside the vocabulary [0, ", vocab, ")"));
    }
  }
  return absl::OkStatus();
}

// Runs both models on one input, one after the other, and accumulates.
absl::Status CompareInput(const Input& input, Session& base, Session& other,
                          int64_t vocab, Accumulator* acc,
                          std::vector<float>* base_logits,
                          std::vector<float>* other_logits) {
  const absl::Span<const int32_t> tokens(input.ids->data(),
                                         static_cast<size_t>(input.scored));
  base.Reset();
  other.Reset();
  absl::Status s = base.Forward(tokens, LogitsRows::kAll, base_logits);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("base package, ", input.label,
                                               ": ", s.message()));
  }
  s = other.Forward(tokens, LogitsRows::kAll, other_logits);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("other package, ", input.label,
                                               ": ", s.message()));
  }
  for (int64_t t = 0; t < input.scored; ++t) {
    std::optional<int32_t> target;
    if (input.has_targets) target = (*input.ids)[t + 1];
    acc->AddPosition(base_logits->data() + t * vocab,
                     other_logits->data() + t * vocab, target);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PackageSize> MeasurePackage(const fs::path& package_dir) {
  PackageSize size;
  std::error_code ec;
  for (const fs::directory_entry& entry :
       fs::directory_iterator(package_dir, ec)) {
    if (entry.is_regular_file(ec)) size.bytes_on_disk += entry.file_size(ec);
    if (ec) break;
  }
  if (ec) {
    return absl::NotFoundError(absl::StrCat(
        package_dir.string(), ": cannot list the package: ", ec.message()));
  }
  ASSIGN_OR_RETURN(Manifest manifest, ReadManifest(package_dir));
  for (const ManifestFile& file : manifest.files) {
    if (file.role != "embedding" && file.role != "block" && file.role != "lm") {
      continue;
    }
    ASSIGN_OR_RETURN(TensorFileReader reader,
                     TensorFileReader::Open(package_dir / file.name));
    for (const TensorInfo& t : reader.tensors()) {
      if (!IsQuantizedDType(t.dtype)) continue;
      ++size.quantized_tensors;
      size.quantized_bytes += t.size_bytes;
      size.quantized_weights += static_cast<uint64_t>(t.num_elements());
    }
  }
  if (size.quantized_weights > 0) {
    size.bits_per_weight = static_cast<double>(size.quantized_bytes) * 8.0 /
                           static_cast<double>(size.quantized_weights);
  }
  return size;
}

absl::StatusOr<AgainstResult> CompareAgainst(const AgainstOptions& options) {
  if (!options.eval.has_value() && !options.reference.has_value()) {
    return absl::InvalidArgumentError(
        "--against needs inputs: --eval windows and/or --reference prompts");
  }
  AgainstResult result;
  result.base_path = options.base.string();
  result.other_path = options.other.string();
  ASSIGN_OR_RETURN(result.base_size, MeasurePackage(options.base));
  ASSIGN_OR_RETURN(result.other_size, MeasurePackage(options.other));
  ASSIGN_OR_RETURN(std::unique_ptr<Model> base,
                   Model::Open(options.base, options.model));
  ASSIGN_OR_RETURN(std::unique_ptr<Model> other,
                   Model::Open(options.other, options.model));
  const int64_t vocab = base->config().vocab_size;
  if (other->config().vocab_size != vocab) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot compare ", options.other.string(), " (vocabulary ",
        other->config().vocab_size, ") against ", options.base.string(),
        " (vocabulary ", vocab, "): the next-token distributions differ"));
  }

  // Inputs are loaded up front (token ids only); logits never are.
  EvalSet eval;
  ReferenceBundle reference;
  std::vector<Input> inputs;
  if (options.eval.has_value()) {
    EvalInputOptions eval_options;
    eval_options.window_tokens = options.eval_window;
    const ModelConfig& config = base->config();
    if (config.add_bos && config.bos_id.has_value()) {
      eval_options.bos_id = static_cast<int32_t>(*config.bos_id);
    }
    eval_options.codec = options.codec;
    ASSIGN_OR_RETURN(eval, LoadEvalSet(*options.eval, eval_options));
    for (size_t w = 0; w < eval.windows.size(); ++w) {
      if (options.eval_max_windows > 0 &&
          static_cast<int64_t>(w) >= options.eval_max_windows) {
        break;
      }
      inputs.push_back({&eval.windows[w],
                        static_cast<int64_t>(eval.windows[w].size()) - 1, true,
                        absl::StrCat(options.eval->string(), ": window ", w)});
      ++result.eval_windows;
    }
  }
  if (options.reference.has_value()) {
    ASSIGN_OR_RETURN(reference, ReadReference(*options.reference));
    for (const ReferenceCase& c : reference.cases) {
      if (c.input_ids.empty()) continue;
      inputs.push_back(
          {&c.input_ids, static_cast<int64_t>(c.input_ids.size()), false,
           absl::StrCat(options.reference->string(), ": case '", c.name, "'")});
      ++result.reference_prompts;
    }
  }
  if (inputs.empty()) {
    return absl::InvalidArgumentError(
        "--against: the inputs hold no window or prompt to compare");
  }
  int64_t longest = 1;
  for (const Input& input : inputs) {
    RETURN_IF_ERROR(CheckIds(input, vocab));
    longest = std::max(longest, input.scored);
  }
  Session base_session(*base, longest);
  Session other_session(*other, longest);
  Accumulator acc(vocab);
  std::vector<float> base_logits, other_logits;
  for (const Input& input : inputs) {
    RETURN_IF_ERROR(CompareInput(input, base_session, other_session, vocab,
                                 &acc, &base_logits, &other_logits));
  }
  acc.Finish(&result);
  return result;
}

std::vector<std::string> FailedGates(const AgainstResult& result,
                                     const AgainstGates& gates) {
  std::vector<std::string> failed;
  if (gates.max_kl.has_value() && !(result.kl.mean <= *gates.max_kl)) {
    failed.push_back("max_kl");
  }
  if (gates.min_top1.has_value() &&
      !(result.top1_agreement >= *gates.min_top1)) {
    failed.push_back("min_top1");
  }
  if (gates.max_ppl_ratio.has_value() &&
      (result.predicted_tokens == 0 ||
       !(result.perplexity_ratio <= *gates.max_ppl_ratio))) {
    failed.push_back("max_ppl_ratio");
  }
  return failed;
}

namespace {

nlohmann::json DistributionJson(const Distribution& d, bool with_rms_p1) {
  nlohmann::json j = {{"mean", d.mean}, {"p99", d.p99}, {"max", d.max}};
  if (with_rms_p1) {
    j["rms"] = d.rms;
    j["p1"] = d.p1;
  }
  return j;
}

nlohmann::json OptionalJson(const std::optional<double>& v) {
  return v.has_value() ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json SizeJson(const PackageSize& s) {
  return {{"bytes_on_disk", s.bytes_on_disk},
          {"quantized_tensors", s.quantized_tensors},
          {"quantized_bytes", s.quantized_bytes},
          {"quantized_weights", s.quantized_weights},
          {"bits_per_weight", OptionalJson(s.bits_per_weight)}};
}

}  // namespace

nlohmann::json AgainstToJson(const AgainstResult& r,
                             const AgainstGates& gates) {
  const bool scored = r.predicted_tokens > 0;
  const std::vector<std::string> failed = FailedGates(r, gates);
  return {
      {"base", r.base_path},
      {"other", r.other_path},
      {"eval_windows", r.eval_windows},
      {"reference_prompts", r.reference_prompts},
      {"positions", r.positions},
      {"kl", DistributionJson(r.kl, false)},
      {"top1_agreement", r.top1_agreement},
      {"predicted_tokens", r.predicted_tokens},
      {"base_perplexity", scored ? nlohmann::json(r.base_perplexity) : nullptr},
      {"other_perplexity",
       scored ? nlohmann::json(r.other_perplexity) : nullptr},
      {"perplexity_ratio",
       scored ? nlohmann::json(r.perplexity_ratio) : nullptr},
      {"correct_prob_change",
       scored ? DistributionJson(r.correct_prob_change, true) : nullptr},
      {"base_size", SizeJson(r.base_size)},
      {"other_size", SizeJson(r.other_size)},
      {"gates",
       {{"max_kl", OptionalJson(gates.max_kl)},
        {"min_top1", OptionalJson(gates.min_top1)},
        {"max_ppl_ratio", OptionalJson(gates.max_ppl_ratio)}}},
      {"failures", failed},
      {"passed", failed.empty()},
  };
}

}  // namespace llmpack::verify
