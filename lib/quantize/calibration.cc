#include "quantize/calibration.h"

#include <algorithm>
#include <memory>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "llmpack/file_util.h"
#include "llmpack/manifest.h"
#include "llmpack/package_layout.h"
#include "llmpack/status_macros.h"
#include "quant/input_stats.h"
#include "verify/eval.h"
#include "verify/tokenizer_codec.h"

namespace llmpack::quantize {
namespace fs = std::filesystem;
using runtime::LinearInput;

namespace {

// Fewest windows a calibration uses, so that one unusual passage cannot
// dominate the statistics.
constexpr int64_t kMinWindows = 4;

// Which activation feeds a package tensor; false for non-Linear tensors.
bool InputOf(const std::string& tensor, LinearInput* input) {
  static const std::pair<const char*, LinearInput> kInputs[] = {
      {kQProj, LinearInput::kAttention},
      {kKProj, LinearInput::kAttention},
      {kVProj, LinearInput::kAttention},
      {kOProj, LinearInput::kAttentionOutput},
      {kGateProj, LinearInput::kMlp},
      {kUpProj, LinearInput::kMlp},
      {kDownProj, LinearInput::kMlpDown},
      {kLmHead, LinearInput::kOutput},
  };
  for (const auto& [name, in] : kInputs) {
    if (tensor == name) {
      *input = in;
      return true;
    }
  }
  return false;
}

// `count` windows spread evenly over `windows` (all of them if fewer).
std::vector<size_t> SpreadWindows(size_t available, size_t count) {
  std::vector<size_t> picked;
  if (count >= available) {
    for (size_t i = 0; i < available; ++i) picked.push_back(i);
    return picked;
  }
  for (size_t i = 0; i < count; ++i) picked.push_back(i * available / count);
  return picked;
}

// Bytes of text sampled per calibration window: far more than any
// tokenizer needs for one window (English BPE averages 3-5 bytes per token,
// CJK text up to ~6), so every sampled piece fills its window.
constexpr int64_t kSampleBytesPerToken = 16;

// Calibration windows from `path`. A text file larger than the windows need
// is sampled: `want` line-aligned pieces at evenly spaced offsets, each
// tokenized on its own, so a large corpus costs only the tokens used. Other
// inputs (small text, token ids, windows JSON) are cut like evaluation
// input (verify::LoadEvalSet).
absl::StatusOr<std::vector<std::vector<int32_t>>> LoadWindows(
    const fs::path& path, const verify::EvalInputOptions& options,
    size_t want) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  const size_t piece_bytes =
      static_cast<size_t>(options.window_tokens * kSampleBytesPerToken);
  const size_t first = text.find_first_not_of(" \t\r\n");
  const bool ids_or_json =
      first == std::string::npos || text[first] == '{' ||
      text.find_first_not_of("0123456789 \t\r\n,") == std::string::npos;
  if (ids_or_json || options.codec == nullptr ||
      text.size() <= want * piece_bytes) {
    ASSIGN_OR_RETURN(verify::EvalSet set, verify::LoadEvalSet(path, options));
    return std::move(set.windows);
  }
  std::vector<std::vector<int32_t>> windows;
  for (size_t k = 0; k < want; ++k) {
    size_t begin = k * (text.size() - piece_bytes) / want;
    if (begin > 0) {
      const size_t line = text.find('\n', begin);
      if (line == std::string::npos) break;
      begin = line + 1;
    }
    size_t end = std::min(text.size(), begin + piece_bytes);
    const size_t last_line = text.rfind('\n', end);
    if (end < text.size() && last_line != std::string::npos &&
        last_line > begin) {
      end = last_line;
    }
    ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                     options.codec->Encode(text.substr(begin, end - begin),
                                           /*add_special=*/false));
    std::vector<int32_t> window;
    if (options.bos_id.has_value()) window.push_back(*options.bos_id);
    const size_t n =
        std::min(ids.size(), static_cast<size_t>(options.window_tokens));
    window.insert(window.end(), ids.begin(), ids.begin() + n);
    if (window.size() >= 2) windows.push_back(std::move(window));
  }
  return windows;
}

}  // namespace

int64_t MinCalibrationTokens(const ModelConfig& config) {
  const int64_t widest =
      std::max({config.hidden_size, config.q_dim(), config.ffn_size});
  return std::max<int64_t>(widest, 1024);
}

const quant::Calibration* CalibrationData::For(
    int64_t layer, const std::string& tensor) const {
  LinearInput input;
  if (layer != layer_ || !InputOf(tensor, &input)) return nullptr;
  auto it = stats_.find(input);
  return it == stats_.end() ? nullptr : &it->second;
}

absl::StatusOr<CalibrationSet> LoadCalibration(
    const fs::path& package_dir, const CalibrationOptions& options) {
  const std::string file = options.file.string();
  std::error_code ec;
  if (!fs::is_regular_file(options.file, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "calibration file ", file, " does not exist or is not a file"));
  }
  if (fs::file_size(options.file, ec) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibration file ", file, " is empty"));
  }
  ASSIGN_OR_RETURN(const Manifest manifest, ReadManifest(package_dir));
  const ModelConfig& config = manifest.config;
  const int64_t needed = MinCalibrationTokens(config);
  std::unique_ptr<verify::TokenizerTextCodec> codec;
  if (manifest.FindFile(kTokenizerFile) != nullptr) {
    ASSIGN_OR_RETURN(codec, verify::TokenizerTextCodec::Load(package_dir));
  }
  verify::EvalInputOptions input_options;
  input_options.window_tokens = std::max<int64_t>(
      1, std::min(options.window_tokens, config.max_positions > 1
                                             ? config.max_positions - 1
                                             : options.window_tokens));
  if (config.add_bos && config.bos_id.has_value()) {
    input_options.bos_id = static_cast<int32_t>(*config.bos_id);
  }
  input_options.codec = codec.get();
  // Windows wanted: enough for max_tokens (and the minimum), at least
  // kMinWindows.
  const int64_t per_window =
      input_options.window_tokens + (input_options.bos_id ? 1 : 0);
  const int64_t want = std::max<int64_t>(
      kMinWindows,
      (std::max(options.max_tokens, needed) + per_window - 1) / per_window);
  absl::StatusOr<std::vector<std::vector<int32_t>>> windows =
      LoadWindows(options.file, input_options, static_cast<size_t>(want));
  if (!windows.ok() && !absl::IsInvalidArgument(windows.status())) {
    return windows.status();
  }
  int64_t available = 0;
  if (windows.ok()) {
    for (const auto& w : *windows) available += static_cast<int64_t>(w.size());
  }
  if (available < needed) {
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration file ", file, " holds ", available,
        " tokens; calibrating this model needs at least ", needed,
        " (its widest Linear input has ",
        std::max({config.hidden_size, config.q_dim(), config.ffn_size}),
        " channels)",
        windows.ok() ? "" : absl::StrCat(": ", windows.status().message())));
  }
  CalibrationSet set;
  for (size_t i : SpreadWindows(windows->size(), static_cast<size_t>(want))) {
    set.tokens += static_cast<int64_t>((*windows)[i].size());
    set.windows.push_back(std::move((*windows)[i]));
  }
  return set;
}

absl::StatusOr<CalibrationData> CollectStatistics(
    const fs::path& package_dir, const CalibrationSet& set, int64_t layer,
    bool with_hessian, int threads) {
  runtime::ModelOptions model_options;
  model_options.threads = threads;
  // The caller's working packages are written by this process; the input
  // package was verified before calibration began.
  model_options.verify_checksums = false;
  ASSIGN_OR_RETURN(std::unique_ptr<runtime::Model> model,
                   runtime::Model::Open(package_dir, model_options));
  const int64_t num_layers = model->config().num_layers;
  std::map<LinearInput, std::unique_ptr<quant::InputStats>> acc;
  const runtime::LinearInputObserver observer =
      [&](int64_t at, LinearInput input, const float* x, int64_t tokens,
          int64_t cols) {
        if (at != layer) return;
        auto& slot = acc[input];
        if (slot == nullptr) {
          slot = std::make_unique<quant::InputStats>(cols, with_hessian,
                                                     threads);
        }
        slot->Add(x, tokens);
      };
  size_t longest = 0;
  for (const auto& w : set.windows) longest = std::max(longest, w.size());
  runtime::Session session(*model, static_cast<int64_t>(longest));
  session.set_linear_input_observer(&observer);
  // The output projection's input exists only when logits are computed:
  // all rows then, so it is observed at every position like the others.
  const runtime::LogitsRows rows = layer == num_layers
                                       ? runtime::LogitsRows::kAll
                                       : runtime::LogitsRows::kNone;
  std::vector<float> logits;
  for (const auto& w : set.windows) {
    session.Reset();
    RETURN_IF_ERROR(session.Forward(w, rows, &logits));
  }
  CalibrationData data;
  data.layer_ = layer;
  for (auto& [input, stats] : acc) {
    quant::Calibration& c = data.stats_[input];
    c.importance = stats->Importance();
    c.hessian = stats->Hessian();
  }
  return data;
}

}  // namespace llmpack::quantize
