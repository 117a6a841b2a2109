#include "verify/checks.h"

#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "llmpack/status_macros.h"

namespace llmpack::verify {
namespace {

using runtime::GreedyContinue;
using runtime::GreedyResult;
using runtime::LogitsRows;
using runtime::Model;
using runtime::Prefill;
using runtime::RunStats;
using runtime::Session;

// Logits of `input` at `positions`, [positions, vocab]; `last_row` receives
// the last position's row (where a greedy continuation starts).
absl::StatusOr<std::vector<float>> LogitsAt(
    Model& model, Session& session, const std::vector<int32_t>& input,
    const std::vector<int64_t>& positions, std::vector<float>* last_row,
    RunStats* stats) {
  const int64_t vocab = model.config().vocab_size;
  const int64_t n = static_cast<int64_t>(input.size());
  const bool only_last = positions.size() == 1 && positions[0] == n - 1;
  std::vector<float> all;
  RETURN_IF_ERROR(Prefill(session, input,
                          only_last ? LogitsRows::kLast : LogitsRows::kAll,
                          &all, stats));
  const int64_t first_row = only_last ? n - 1 : 0;
  std::vector<float> rows;
  rows.reserve(positions.size() * vocab);
  for (int64_t p : positions) {
    const float* row = all.data() + (p - first_row) * vocab;
    rows.insert(rows.end(), row, row + vocab);
  }
  last_row->assign(all.end() - vocab, all.end());
  return rows;
}

}  // namespace

absl::Status CheckTokenIds(const Model& model, const std::vector<int32_t>& ids,
                           const std::string& what) {
  const int64_t vocab = model.config().vocab_size;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": token id ", id,
                       " outside the package vocabulary [0, ", vocab, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ReferenceResult> CheckReference(Model& model,
                                               const ReferenceBundle& bundle,
                                               const Gates& g,
                                               RunStats* stats) {
  ReferenceResult result;
  for (const ReferenceCase& rc : bundle.cases) {
    RETURN_IF_ERROR(CheckTokenIds(model, rc.input_ids, rc.name));
    if (rc.logits.vocab != model.config().vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          rc.name, ": reference vocabulary ", rc.logits.vocab,
          " differs from the package's ", model.config().vocab_size));
    }
    const int64_t n = static_cast<int64_t>(rc.input_ids.size());
    Session session(model, n + static_cast<int64_t>(rc.greedy.size()) + 1);
    std::vector<float> last;
    ASSIGN_OR_RETURN(std::vector<float> rows,
                     LogitsAt(model, session, rc.input_ids, rc.logits.positions,
                              &last, stats));
    ReferenceCaseResult c;
    c.name = rc.name;
    c.input_ids = rc.input_ids;
    c.top_k = rc.logits.top_k;
    ASSIGN_OR_RETURN(c.comparison, CompareLogits(rows, rc.logits));
    ASSIGN_OR_RETURN(
        GreedyResult greedy,
        GreedyContinue(session, last, static_cast<int64_t>(rc.greedy.size()), 0,
                       &rc.greedy, stats));
    c.greedy_reference_tokens = static_cast<int64_t>(rc.greedy.size());
    while (c.greedy_matched_tokens <
               static_cast<int64_t>(greedy.tokens.size()) &&
           greedy.tokens[c.greedy_matched_tokens] ==
               rc.greedy[c.greedy_matched_tokens]) {
      ++c.greedy_matched_tokens;
    }
    c.greedy_match = c.greedy_matched_tokens == c.greedy_reference_tokens;
    const LogitsComparison& cmp = c.comparison;
    if (!(cmp.nmse <= g.max_nmse)) c.failures.push_back("nmse");
    if (!(cmp.top1_agreement >= g.min_top1)) c.failures.push_back("top1");
    if (!(cmp.max_abs_error <= g.max_abs_error)) {
      c.failures.push_back("max_abs_error");
    }
    if (g.require_greedy_match && !c.greedy_match) {
      c.failures.push_back("greedy");
    }
    result.passed = result.passed && c.passed();
    result.cases.push_back(std::move(c));
  }
  return result;
}

absl::StatusOr<PerplexityCheck> CheckPerplexity(Model& model,
                                                const EvalSet& set,
                                                int64_t max_windows,
                                                const Gates& g,
                                                RunStats* stats) {
  PerplexityCheck check;
  ASSIGN_OR_RETURN(check.result,
                   EvaluatePerplexity(model, set, max_windows, stats));
  check.expected = g.expected_ppl;
  // A fixture's expected value holds for all of its windows only.
  const bool whole_set =
      check.result.windows == static_cast<int64_t>(set.windows.size());
  if (!check.expected.has_value() && whole_set) {
    check.expected = set.expected_perplexity;
  }
  if (check.expected.has_value()) {
    check.relative_error =
        std::abs(check.result.perplexity - *check.expected) / *check.expected;
    check.passed = *check.relative_error <= g.ppl_rel_tolerance;
  }
  if (g.max_ppl.has_value()) {
    check.passed = check.passed && check.result.perplexity <= *g.max_ppl;
  }
  return check;
}

absl::StatusOr<ReferenceBundle> RecordReference(
    Model& model, const std::vector<NamedInput>& inputs,
    const RecordOptions& options, RunStats* stats) {
  ReferenceBundle bundle;
  bundle.format = kBundleFormat;
  const int64_t vocab = model.config().vocab_size;
  for (const NamedInput& input : inputs) {
    RETURN_IF_ERROR(CheckTokenIds(model, input.ids, input.name));
    const int64_t n = static_cast<int64_t>(input.ids.size());
    std::vector<int64_t> positions;
    if (options.all_positions) {
      positions.resize(static_cast<size_t>(n));
      std::iota(positions.begin(), positions.end(), 0);
    } else {
      positions = {n - 1};
    }
    Session session(model, n + options.greedy_tokens + 1);
    std::vector<float> last;
    ASSIGN_OR_RETURN(
        std::vector<float> rows,
        LogitsAt(model, session, input.ids, positions, &last, stats));
    ReferenceCase rc;
    rc.name = input.name;
    rc.input_ids = input.ids;
    if (options.top_k > 0) {
      rc.logits = ReduceToTopK(rows, vocab, positions, options.top_k);
    } else {
      rc.logits.positions = positions;
      rc.logits.vocab = vocab;
      rc.logits.full = std::move(rows);
    }
    ASSIGN_OR_RETURN(GreedyResult greedy,
                     GreedyContinue(session, last, options.greedy_tokens,
                                    kGreedyStopMargin, nullptr, stats));
    rc.greedy = greedy.tokens;
    bundle.cases.push_back(std::move(rc));
  }
  return bundle;
}

}  // namespace llmpack::verify
