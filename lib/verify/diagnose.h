// Per-block diagnosis: runs the same tokens through a package under test and
// a trusted one (another package, or the same package resident) and reports,
// block by block, how far the hidden states drift, so a failed gate can be
// traced to the first layer that broke. Single-threaded use of both models.
#ifndef LLMPACK_VERIFY_DIAGNOSE_H_
#define LLMPACK_VERIFY_DIAGNOSE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/model.h"

namespace llmpack::verify {

struct BlockDivergence {
  int64_t layer = 0;
  double nmse = 0;  // MSE of hidden states / variance of the trusted ones
  double max_abs_error = 0;
};

struct Diagnosis {
  std::vector<BlockDivergence> blocks;
  // First layer whose NMSE exceeds the threshold, -1 if none does.
  int64_t first_divergent_layer = -1;
  double threshold = 0;
};

absl::StatusOr<Diagnosis> DiagnoseBlocks(runtime::Model& subject,
                                         runtime::Model& trusted,
                                         absl::Span<const int32_t> tokens,
                                         double threshold);

}  // namespace llmpack::verify

#endif  // LLMPACK_VERIFY_DIAGNOSE_H_
