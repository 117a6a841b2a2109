#include "convert/safetensors.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "llmpack/json_file.h"
#include "llmpack/status_macros.h"
#include "nlohmann/json.hpp"

namespace llmpack::convert {
namespace {

// Large enough for any real header (HF caps them at 100 MB) while refusing
// absurd lengths from corrupt files before allocating.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

absl::StatusOr<DType> SafetensorsDType(const std::string& name,
                                       const std::string& where) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  return absl::InvalidArgumentError(absl::StrCat(
      where, ": unsupported dtype '", name, "' (supported: F32, F16, BF16)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::filesystem::path& path) {
  auto st = std::make_unique<SafetensorsFile>();
  ASSIGN_OR_RETURN(st->file_, MappedFile::Open(path));
  const std::string where = path.string();
  const uint64_t file_size = st->file_.size();
  if (file_size < 8) {
    return absl::DataLossError(absl::StrCat(
        where, ": file is ", file_size,
        " bytes, too small for a safetensors header (truncated?)"));
  }
  uint64_t header_len;
  std::memcpy(&header_len, st->file_.data(), 8);
  if (header_len > kMaxHeaderBytes || header_len > file_size - 8) {
    return absl::DataLossError(absl::StrCat(
        where, ": header length ", header_len, " exceeds the file size (",
        file_size,
        " bytes) or the 100 MB limit (truncated or not safetensors)"));
  }
  const char* text = reinterpret_cast<const char*>(st->file_.data() + 8);
  nlohmann::json header =
      nlohmann::json::parse(text, text + header_len, nullptr, false);
  if (header.is_discarded() || !header.is_object()) {
    return absl::DataLossError(absl::StrCat(
        where, ": malformed safetensors header (not a JSON object)"));
  }
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = file_size - data_start;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string tensor_where = absl::StrCat(where, ": tensor ", name);
    SafetensorsTensor t;
    try {
      ASSIGN_OR_RETURN(
          t.dtype,
          SafetensorsDType(info.at("dtype").get<std::string>(), tensor_where));
      for (const auto& d : info.at("shape")) {
        const int64_t dim = JsonInt(d);
        if (dim < 0) {
          return absl::DataLossError(
              absl::StrCat(tensor_where, ": negative dimension ", dim));
        }
        t.shape.push_back(dim);
      }
      const auto& offsets = info.at("data_offsets");
      if (!offsets.is_array() || offsets.size() != 2) {
        return absl::DataLossError(
            absl::StrCat(tensor_where, ": data_offsets must be [begin, end]"));
      }
      const int64_t signed_begin = JsonInt(offsets[0]);
      const int64_t signed_end = JsonInt(offsets[1]);
      const uint64_t begin = static_cast<uint64_t>(signed_begin);
      const uint64_t end = static_cast<uint64_t>(signed_end);
      if (signed_begin < 0 || signed_end < 0 || begin > end ||
          end > data_size) {
        return absl::DataLossError(
            absl::StrCat(tensor_where, ": data_offsets [", begin, ", ", end,
                         "] run past the end of the data (", data_size,
                         " bytes; file truncated?)"));
      }
      uint64_t expected = DTypeSize(t.dtype);
      for (int64_t d : t.shape) {
        if (d != 0 &&
            expected > (uint64_t{1} << 62) / static_cast<uint64_t>(d)) {
          return absl::DataLossError(
              absl::StrCat(tensor_where, ": shape overflows"));
        }
        expected *= static_cast<uint64_t>(d);
      }
      if (end - begin != expected) {
        return absl::DataLossError(
            absl::StrCat(tensor_where, ": shape and dtype need ", expected,
                         " bytes, data_offsets span ", end - begin));
      }
      t.begin = data_start + begin;
      t.size = end - begin;
    } catch (const nlohmann::json::exception& e) {
      return absl::DataLossError(
          absl::StrCat(tensor_where, ": malformed entry: ", e.what()));
    }
    st->tensors_.emplace(name, std::move(t));
  }
  // Two tensors sharing bytes would be converted twice from the same data;
  // the format gives every tensor its own range, so sharing means damage.
  std::vector<std::pair<const std::string*, const SafetensorsTensor*>> sorted;
  for (const auto& [name, t] : st->tensors_) sorted.emplace_back(&name, &t);
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second->begin < b.second->begin;
  });
  for (size_t i = 1; i < sorted.size(); ++i) {
    const SafetensorsTensor& prev = *sorted[i - 1].second;
    if (sorted[i].second->begin < prev.begin + prev.size) {
      return absl::DataLossError(absl::StrCat(
          where, ": tensor ", *sorted[i].first, " overlaps tensor ",
          *sorted[i - 1].first, " (data_offsets share bytes)"));
    }
  }
  return st;
}

}  // namespace llmpack::convert
