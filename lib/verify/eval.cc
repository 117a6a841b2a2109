#include "verify/eval.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "llmpack/file_util.h"
#include "llmpack/json_file.h"
#include "llmpack/status_macros.h"
#include "llmpack/token_ids.h"
#include "nlohmann/json.hpp"

namespace llmpack::verify {
namespace {

using runtime::LogitsRows;
using runtime::Model;
using runtime::Prefill;
using runtime::RunStats;
using runtime::Session;

absl::StatusOr<EvalSet> FromJson(const std::string& text,
                                 const std::string& ctx) {
  ASSIGN_OR_RETURN(nlohmann::json root, ParseJson(text, ctx));
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(ctx, ": expected a JSON object"));
  }
  const char* key = root.contains("windows")     ? "windows"
                    : root.contains("sequences") ? "sequences"
                                                 : nullptr;
  if (key == nullptr || !root[key].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(
        ctx,
        ": expected an array \"windows\" or \"sequences\" of token-id "
        "lists"));
  }
  EvalSet set;
  set.kind = "windows-json";
  int index = 0;
  for (const nlohmann::json& w : root[key]) {
    std::vector<int32_t> ids;
    if (!w.is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat(ctx, ": ", key, "[", index, "] is not a list"));
    }
    for (const nlohmann::json& id : w) {
      if (!id.is_number_integer()) {
        return absl::InvalidArgumentError(
            absl::StrCat(ctx, ": ", key, "[", index, "] holds a non-integer"));
      }
      ids.push_back(id.get<int32_t>());
    }
    if (ids.size() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          ctx, ": ", key, "[", index, "] has fewer than 2 tokens"));
    }
    set.windows.push_back(std::move(ids));
    ++index;
  }
  if (root.contains("fp32_ppl") && root["fp32_ppl"].is_number()) {
    set.expected_perplexity = root["fp32_ppl"].get<double>();
  }
  return set;
}

}  // namespace

absl::StatusOr<EvalSet> LoadEvalSet(const std::filesystem::path& path,
                                    const EvalInputOptions& options) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  const std::string ctx = path.string();
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {
    return FromJson(text, ctx);
  }
  EvalSet set;
  // A file that parses as token ids (llmpack/token_ids.h) is ids; anything
  // else is text.
  absl::StatusOr<std::vector<int32_t>> parsed = ParseTokenIds(text, ctx);
  std::vector<int32_t> ids;
  if (parsed.ok()) {
    set.kind = "token-ids";
    ids = *std::move(parsed);
  } else {
    set.kind = "text";
    if (options.codec == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          ctx,
          ": is a text file, but the package has no tokenizer.txt; pass "
          "token ids instead"));
    }
    ASSIGN_OR_RETURN(ids, options.codec->Encode(text, /*add_special=*/false));
  }
  if (options.window_tokens < 1) {
    return absl::InvalidArgumentError("eval window must hold >= 1 token");
  }
  for (size_t at = 0; at < ids.size();) {
    const size_t n = std::min<size_t>(options.window_tokens, ids.size() - at);
    std::vector<int32_t> window;
    if (options.bos_id.has_value()) window.push_back(*options.bos_id);
    window.insert(window.end(), ids.begin() + at, ids.begin() + at + n);
    if (window.size() >= 2) set.windows.push_back(std::move(window));
    at += n;
  }
  if (set.windows.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(ctx, ": not enough tokens to score"));
  }
  return set;
}

absl::StatusOr<PerplexityResult> EvaluatePerplexity(Model& model,
                                                    const EvalSet& set,
                                                    int64_t max_windows,
                                                    RunStats* stats) {
  PerplexityResult result;
  const int64_t vocab = model.config().vocab_size;
  size_t longest = 0;
  for (const auto& w : set.windows) longest = std::max(longest, w.size());
  Session session(model, static_cast<int64_t>(longest));
  std::vector<float> logits;
  double nll = 0;
  for (const auto& window : set.windows) {
    if (max_windows > 0 && result.windows >= max_windows) break;
    session.Reset();
    const absl::Span<const int32_t> inputs(window.data(), window.size() - 1);
    RETURN_IF_ERROR(Prefill(session, inputs, LogitsRows::kAll, &logits, stats));
    for (size_t t = 0; t + 1 < window.size(); ++t) {
      const float* row = logits.data() + t * vocab;
      const int32_t target = window[t + 1];
      if (target < 0 || target >= vocab) {
        return absl::OutOfRangeError(absl::StrCat("eval target token ", target,
                                                  " outside the vocabulary"));
      }
      const float max = *std::max_element(row, row + vocab);
      double sum = 0;
      for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double{row[i]} - max);
      nll += max + std::log(sum) - row[target];
      ++result.predicted_tokens;
    }
    ++result.windows;
  }
  result.mean_nll = nll / std::max<int64_t>(1, result.predicted_tokens);
  result.perplexity = std::exp(result.mean_nll);
  return result;
}

}  // namespace llmpack::verify
