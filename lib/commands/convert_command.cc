#include "commands/convert_command.h"

#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "convert/hf_convert.h"
#include "llmpack/file_util.h"
#include "llmpack/status_macros.h"
#include "onnx_import/onnx_convert.h"
#include "tokenizer/convert_tokenizer.h"

namespace llmpack::commands {
namespace fs = std::filesystem;

absl::StatusOr<ConvertSummary> RunConvert(const ConvertRequest& request) {
  convert::WritePackageOptions options;
  options.output_dir = request.output;
  options.force = request.force;
  options.show_progress = request.progress;
  if (request.dtype != "keep") {
    ASSIGN_OR_RETURN(DType dtype, ParseDType(request.dtype));
    if (!IsFloatDType(dtype)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--dtype ", request.dtype,
                       " is not a float type (keep|f32|f16|bf16)"));
    }
    options.output_dtype = dtype;
  }
  const auto start = std::chrono::steady_clock::now();
  ConvertSummary summary;
  summary.output = request.output;
  std::error_code ec;
  if (fs::is_directory(request.input, ec)) {
    ASSIGN_OR_RETURN(summary.manifest, convert::ConvertHuggingFace(
                                           request.input, std::move(options)));
  } else if (request.input.extension() == ".onnx") {
    ASSIGN_OR_RETURN(summary.manifest, onnx_import::ConvertOnnx(
                                           request.input, std::move(options)));
  } else if (!fs::exists(request.input, ec)) {
    return absl::NotFoundError(
        absl::StrCat(request.input.string(), ": no such file or directory"));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        request.input.string(),
        ": expected a Hugging Face checkpoint folder or an .onnx file"));
  }
  summary.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  for (const ManifestFile& f : summary.manifest.files) {
    summary.bytes_written += f.size;
  }
  return summary;
}

absl::StatusOr<uint64_t> RunConvertTokenizer(const TokenizerRequest& request) {
  std::error_code ec;
  if (IsSameOrInside(request.output, request.input)) {
    return absl::InvalidArgumentError(
        absl::StrCat("refusing to write ", request.output.string(),
                     " inside the input ", request.input.string()));
  }
  if (!request.tiktoken_pattern.empty()) {
    tokenizer::TiktokenOptions options;
    options.pattern = request.tiktoken_pattern == "llama3"
                          ? std::string(tokenizer::kLlama3Pattern)
                          : request.tiktoken_pattern;
    for (const std::string& special : request.special_tokens) {
      const size_t eq = special.rfind('=');
      int32_t id = 0;
      if (eq == std::string::npos ||
          !absl::SimpleAtoi(absl::string_view(special).substr(eq + 1), &id)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--special '", special, "' is not of the form TEXT=ID"));
      }
      options.special_tokens.emplace_back(special.substr(0, eq), id);
    }
    options.bos_id = request.bos_id;
    options.add_bos = request.add_bos;
    options.stop_ids = request.stop_ids;
    RETURN_IF_ERROR(tokenizer::ConvertTiktokenRanks(request.input, options,
                                                    request.output));
  } else if (fs::is_directory(request.input, ec)) {
    ModelConfig unused;
    RETURN_IF_ERROR(
        tokenizer::ConvertTokenizerDir(request.input, request.output, &unused));
  } else {
    RETURN_IF_ERROR(
        tokenizer::ConvertTokenizerFile(request.input, request.output));
  }
  const uint64_t size = fs::file_size(request.output, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat(request.output.string(), ": cannot stat: ", ec.message()));
  }
  return size;
}

std::string ConvertSummaryText(const ConvertSummary& s) {
  const ModelConfig& c = s.manifest.config;
  // The ONNX import's decisions on MatMulNBits weights: one note per weight
  // that could not stay q4, with the reason.
  std::string notes;
  const nlohmann::json& ext = s.manifest.extensions;
  if (ext.contains("onnx_import") &&
      ext["onnx_import"].contains("matmulnbits")) {
    const nlohmann::json& plan = ext["onnx_import"]["matmulnbits"];
    for (const nlohmann::json& t : plan["tensors"]) {
      if (!t.contains("reason")) continue;
      absl::StrAppend(&notes, "note: ", t["tensor"].get<std::string>(),
                      " (MatMulNBits '", t["node"].get<std::string>(),
                      "') dequantized to ", t["written_as"].get<std::string>(),
                      ": ", t["reason"].get<std::string>(), "\n");
    }
    absl::StrAppend(
        &notes, "MatMulNBits weights: ", plan["kept_q4"].get<int64_t>(),
        " kept as q4, ", plan["dequantized"].get<int64_t>(), " dequantized\n");
  }
  return notes + absl::StrFormat(
                     "wrote %s: %s, %d layers, hidden %d, vocab %d, %s "
                     "weights; %d files, "
                     "%.1f MB in %.2f s (%.1f MB/s)\n",
                     s.output.string(), c.architecture, c.num_layers,
                     c.hidden_size, c.vocab_size, s.manifest.weights_dtype,
                     s.manifest.files.size(), s.bytes_written / 1e6, s.seconds,
                     s.seconds > 0 ? s.bytes_written / 1e6 / s.seconds : 0.0);
}

nlohmann::json ConvertSummaryJson(const ConvertSummary& s) {
  nlohmann::json files = nlohmann::json::array();
  for (const ManifestFile& f : s.manifest.files) {
    files.push_back({{"name", f.name}, {"role", f.role}, {"size", f.size}});
  }
  nlohmann::json j = {
      {"output", s.output.string()},
      {"architecture", s.manifest.config.architecture},
      {"weights_dtype", s.manifest.weights_dtype},
      {"seconds", s.seconds},
      {"bytes_written", s.bytes_written},
      {"mb_per_second", s.seconds > 0 ? s.bytes_written / 1e6 / s.seconds : 0},
      {"files", files}};
  if (s.manifest.extensions.contains("onnx_import")) {
    j["onnx_import"] = s.manifest.extensions["onnx_import"];
  }
  return j;
}

absl::StatusOr<convert::SyntheticResult> RunSynthesize(
    const convert::SyntheticOptions& options) {
  return convert::WriteSyntheticCheckpoint(options);
}

}  // namespace llmpack::commands
