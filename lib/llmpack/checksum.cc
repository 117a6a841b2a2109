#include "llmpack/checksum.h"

#include <xxhash.h>

#include <algorithm>
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
  absl::StatusOr<ReadOnlyFile> file = ReadOnlyFile::Open(path);
  if (!file.ok()) {
    return absl::NotFoundError(
        absl::StrCat(path.string(),
                     ": cannot open for checksum: ", file.status().message()));
  }
  return ChecksumFile(*file);
}

absl::StatusOr<uint64_t> ChecksumFile(const ReadOnlyFile& file) {
  StreamingChecksum sum;
  std::vector<uint8_t> buf(std::min<uint64_t>(file.size(), 4 << 20));
  for (uint64_t offset = 0; offset < file.size(); offset += buf.size()) {
    const size_t n = std::min<uint64_t>(buf.size(), file.size() - offset);
    absl::Status read = file.ReadAt(offset, {buf.data(), n});
    if (!read.ok()) return read;
    sum.Update(buf.data(), n);
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
