#include "verify/diagnose.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "llmpack/status_macros.h"

namespace llmpack::verify {
namespace {

using runtime::BlockObserver;
using runtime::LogitsRows;
using runtime::Model;
using runtime::Session;

// Hidden states after each block of one forward pass.
absl::StatusOr<std::vector<std::vector<float>>> CaptureHidden(
    Model& model, absl::Span<const int32_t> tokens) {
  std::vector<std::vector<float>> states;
  const int64_t h = model.config().hidden_size;
  BlockObserver observer = [&](int64_t, const float* hidden, int64_t n) {
    states.emplace_back(hidden, hidden + n * h);
  };
  Session session(model, static_cast<int64_t>(tokens.size()));
  std::vector<float> unused;
  RETURN_IF_ERROR(
      session.Forward(tokens, LogitsRows::kNone, &unused, &observer));
  return states;
}

}  // namespace

absl::StatusOr<Diagnosis> DiagnoseBlocks(Model& subject, Model& trusted,
                                         absl::Span<const int32_t> tokens,
                                         double threshold) {
  const ModelConfig& a = subject.config();
  const ModelConfig& b = trusted.config();
  if (a.hidden_size != b.hidden_size || a.num_layers != b.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot compare block by block: hidden size/layers ", a.hidden_size,
        "/", a.num_layers, " vs ", b.hidden_size, "/", b.num_layers));
  }
  ASSIGN_OR_RETURN(auto ours, CaptureHidden(subject, tokens));
  ASSIGN_OR_RETURN(auto theirs, CaptureHidden(trusted, tokens));
  Diagnosis d;
  d.threshold = threshold;
  for (size_t layer = 0; layer < ours.size(); ++layer) {
    const std::vector<float>& x = ours[layer];
    const std::vector<float>& y = theirs[layer];
    double mean = 0;
    for (float v : y) mean += v;
    mean /= static_cast<double>(y.size());
    double var = 0, err = 0, max_abs = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      var += (y[i] - mean) * (y[i] - mean);
      const double diff = double{x[i]} - y[i];
      err += diff * diff;
      max_abs = std::max(max_abs, std::abs(diff));
    }
    BlockDivergence block;
    block.layer = static_cast<int64_t>(layer);
    block.nmse = var > 0 ? err / var : (err > 0 ? INFINITY : 0);
    if (std::isnan(err)) block.nmse = INFINITY;
    block.max_abs_error = max_abs;
    if (d.first_divergent_layer < 0 && !(block.nmse <= threshold)) {
      d.first_divergent_layer = block.layer;
    }
    d.blocks.push_back(block);
  }
  return d;
}

}  // namespace llmpack::verify
