// XXH3-64 checksums used by the manifest and tensor directories.
#ifndef LLMPACK_CHECKSUM_H_
#define LLMPACK_CHECKSUM_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "llmpack/file_util.h"

namespace llmpack {

uint64_t Checksum64(const void* data, size_t size);

// Incremental XXH3-64. Not thread-safe; one instance per stream.
class StreamingChecksum {
 public:
  StreamingChecksum();
  ~StreamingChecksum();
  StreamingChecksum(const StreamingChecksum&) = delete;
  StreamingChecksum& operator=(const StreamingChecksum&) = delete;
  void Update(const void* data, size_t size);
  uint64_t Digest() const;

 private:
  void* state_;  // XXH3_state_t*, kept opaque to keep xxhash.h out of headers
};

// Checksum of a whole file, read in chunks (bounded memory).
absl::StatusOr<uint64_t> ChecksumFile(const std::filesystem::path& path);
// The same through an open descriptor: hashes the size seen at open (a file
// that shrank since is a read error naming it).
absl::StatusOr<uint64_t> ChecksumFile(const ReadOnlyFile& file);

// "0123456789abcdef" form used in manifest.json.
std::string ChecksumToHex(uint64_t checksum);
absl::StatusOr<uint64_t> ChecksumFromHex(std::string_view hex);

}  // namespace llmpack

#endif  // LLMPACK_CHECKSUM_H_
