#include "llmpack/checksum.h"

#include <xxhash.h>

#include <fstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace llmpack {

uint64_t Checksum64(const void* data, size_t size) {
  return XXH3_64bits(data, size);
}

StreamingChecksum::StreamingChecksum() : state_(XXH3_createState()) {
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}
StreamingChecksum::~StreamingChecksum() {
  XXH3_freeState(static_cast<XXH3_state_t*>(state_));
}
void StreamingChecksum::Update(const void* data, size_t size) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data, size);
}
uint64_t StreamingChecksum::Digest() const {
  return XXH3_64bits_digest(static_cast<XXH3_state_t*>(state_));
}

absl::StatusOr<uint64_t> ChecksumFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(path.string(), ": cannot open for checksum"));
  }
  StreamingChecksum sum;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    sum.Update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat(path.string(), ": read failed"));
  }
  return sum.Digest();
}

std::string ChecksumToHex(uint64_t checksum) {
  return absl::StrFormat("%016x", checksum);
}

absl::StatusOr<uint64_t> ChecksumFromHex(std::string_view hex) {
  uint64_t value = 0;
  if (hex.size() != 16 ||
      !absl::SimpleHexAtoi(absl::string_view(hex.data(), hex.size()), &value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checksum '", std::string(hex), "' is not 16 hexadecimal digits"));
  }
  return value;
}

}  // namespace llmpack
