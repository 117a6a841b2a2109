#include "verify/npy.h"

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "llmpack/file_util.h"
#include "llmpack/status_macros.h"

namespace llmpack::verify {
namespace {

// Returns the text after `'key':` in a header dict, trimmed.
absl::StatusOr<std::string> HeaderValue(const std::string& header,
                                        const std::string& key,
                                        const std::string& context) {
  const std::string needle = absl::StrCat("'", key, "'");
  const size_t at = header.find(needle);
  if (at == std::string::npos) {
    return absl::DataLossError(
        absl::StrCat(context, ": npy header has no '", key, "': ", header));
  }
  const size_t colon = header.find(':', at + needle.size());
  if (colon == std::string::npos) {
    return absl::DataLossError(absl::StrCat(context, ": bad npy header"));
  }
  return std::string(absl::StripLeadingAsciiWhitespace(
      absl::string_view(header).substr(colon + 1)));
}

}  // namespace

absl::StatusOr<NpyArray> ParseNpy(const std::string& bytes,
                                  const std::string& context) {
  static constexpr char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0) {
    return absl::DataLossError(
        absl::StrCat(context, ": not a .npy file (bad magic)"));
  }
  const uint8_t major = static_cast<uint8_t>(bytes[6]);
  size_t header_len = 0;
  size_t header_start = 0;
  if (major == 1) {
    header_len = static_cast<uint8_t>(bytes[8]) |
                 (static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) {
      return absl::DataLossError(absl::StrCat(context, ": truncated header"));
    }
    uint32_t len;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    header_start = 12;
  } else {
    return absl::DataLossError(
        absl::StrCat(context, ": unsupported .npy version ", major));
  }
  if (header_start + header_len > bytes.size()) {
    return absl::DataLossError(absl::StrCat(context, ": truncated header"));
  }
  const std::string header = bytes.substr(header_start, header_len);
  ASSIGN_OR_RETURN(std::string descr, HeaderValue(header, "descr", context));
  if (descr.rfind("'<f4'", 0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": dtype ", descr.substr(0, descr.find(',')),
                     " is not little-endian float32 ('<f4')"));
  }
  ASSIGN_OR_RETURN(std::string order,
                   HeaderValue(header, "fortran_order", context));
  if (order.rfind("False", 0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": Fortran-order arrays are not supported"));
  }
  ASSIGN_OR_RETURN(std::string shape_text,
                   HeaderValue(header, "shape", context));
  const size_t open = shape_text.find('(');
  const size_t close = shape_text.find(')');
  if (open != 0 || close == std::string::npos) {
    return absl::DataLossError(
        absl::StrCat(context, ": bad shape in npy header: ", header));
  }
  NpyArray array;
  int64_t count = 1;
  for (absl::string_view dim :
       absl::StrSplit(shape_text.substr(1, close - 1), ',')) {
    dim = absl::StripAsciiWhitespace(dim);
    if (dim.empty()) continue;
    int64_t value;
    if (!absl::SimpleAtoi(dim, &value) || value < 0) {
      return absl::DataLossError(
          absl::StrCat(context, ": bad dimension '", dim, "' in npy shape"));
    }
    // The data must be in the file, so a shape whose byte count passes
    // 2^62 (or wraps around) is damage, refused before multiplying.
    if (value != 0 && count > ((int64_t{1} << 62) / 4) / value) {
      return absl::DataLossError(absl::StrCat(context, ": npy shape ",
                                              shape_text.substr(0, close + 1),
                                              " is too large"));
    }
    array.shape.push_back(value);
    count *= value;
  }
  const size_t data_start = header_start + header_len;
  const size_t want = static_cast<size_t>(count) * sizeof(float);
  if (bytes.size() - data_start != want) {
    return absl::DataLossError(absl::StrCat(context, ": holds ",
                                            bytes.size() - data_start,
                                            " data bytes, shape needs ", want));
  }
  array.data.resize(static_cast<size_t>(count));
  // An empty vector's data() may be null, and memcpy(nullptr, ..., 0) is UB.
  if (want > 0) std::memcpy(array.data.data(), bytes.data() + data_start, want);
  return array;
}

absl::StatusOr<NpyArray> ReadNpy(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  return ParseNpy(bytes, path.string());
}

}  // namespace llmpack::verify
