// What `llmquant` does, as one library call (quantize::QuantizePackage), and
// the per-tensor report it prints: a text table for the console and the JSON
// that --json writes (fields in docs/quantization.md).
// Single-threaded entry point (the quantizer uses its own threads).
#ifndef LLMPACK_COMMANDS_QUANT_COMMAND_H_
#define LLMPACK_COMMANDS_QUANT_COMMAND_H_

#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "quantize/quantize_package.h"

namespace llmpack::commands {

absl::StatusOr<quantize::QuantizeResult> RunQuantize(
    const quantize::QuantizeOptions& options);

nlohmann::json QuantizeReportJson(const quantize::QuantizeResult& result);
std::string QuantizeReportText(const quantize::QuantizeResult& result);

}  // namespace llmpack::commands

#endif  // LLMPACK_COMMANDS_QUANT_COMMAND_H_
