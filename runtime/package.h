// An opened, validated package: manifest read, file sizes (and by default
// checksums) verified, every tensor file's header and directory parsed, and
// every tensor's name, dtype and shape checked against the layout the
// manifest's config implies (package_layout.h), and every dtype one the
// forward pass computes with (floats anywhere; q4/q8 for matrices, with a
// valid quantization layout of exactly the tensor's size). Nothing is loaded
// yet.
//
// Each tensor file is opened once and checksummed, parsed and later read
// through that one descriptor, so what was verified is what is read even if
// the path is replaced meanwhile (a rename or an unlink leaves the open inode
// intact). Changes to the open file itself (truncation, writes in place) are
// caught by CheckUnchanged, which compares its size and modification time
// with those seen at open.
//
// Ownership: a Package owns its manifest and the open tensor files; tensor
// views it hands out are valid while it lives.
// Thread safety: immutable after Open; const methods may be called from any
// thread (TensorFileReader reads are thread-safe).
#ifndef LLMPACK_RUNTIME_PACKAGE_H_
#define LLMPACK_RUNTIME_PACKAGE_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "llmpack/manifest.h"
#include "llmpack/model_config.h"
#include "llmpack/tensor_file.h"
#include "quant/codec.h"
#include "runtime/kernels.h"

namespace llmpack::runtime {

struct PackageOptions {
  // Recompute every file's XXH3-64 and compare with the manifest (reads the
  // whole package once). Sizes are always checked.
  bool verify_checksums = true;
};

class Package {
 public:
  static absl::StatusOr<std::unique_ptr<Package>> Open(
      const std::filesystem::path& dir, const PackageOptions& options);

  const std::filesystem::path& dir() const { return dir_; }
  const Manifest& manifest() const { return manifest_; }
  const ModelConfig& config() const { return manifest_.config; }
  const TensorFileReader& embedding() const { return embedding_; }
  const TensorFileReader& block(int64_t layer) const { return blocks_[layer]; }
  const TensorFileReader& lm() const { return lm_; }
  int64_t num_layers() const { return static_cast<int64_t>(blocks_.size()); }
  // True when the package carries tokenizer.txt.
  bool has_tokenizer() const;

  // DataLoss naming the file if `file` (one of this package's embedding(),
  // block() or lm()) has a different size or modification time than when it
  // was opened: it was truncated, extended or written to, so bytes read from
  // it may not be the ones verified. One fstat; cheap enough per block load.
  // Timestamps have the file system's granularity (a few ms on ext4), so a
  // write within the same tick as the previous one can go unseen; the
  // loader's verify_each_load re-hashes every tensor instead.
  absl::Status CheckUnchanged(const TensorFileReader& file) const;
  // The same for every tensor file (embedding, blocks, lm).
  absl::Status CheckUnchanged() const;

 private:
  // What fstat said about an open tensor file right after it was opened.
  struct Stamp {
    uint64_t size = 0;
    int64_t mtime_ns = 0;
  };

  Package() = default;
  std::filesystem::path dir_;
  Manifest manifest_;
  TensorFileReader embedding_;
  std::vector<TensorFileReader> blocks_;
  TensorFileReader lm_;
  Stamp embedding_stamp_, lm_stamp_;
  std::vector<Stamp> block_stamps_;
};

// The quantization format a q4/q8 tensor's directory entry describes.
quant::QuantFormat QuantFormatOf(const TensorInfo& t);

// A view of matrix `t` whose data starts at `data`. For q4/q8 the layout is
// filled in; call only on tensors of an opened Package (their layout was
// checked).
WeightMatrix MatrixView(const TensorInfo& t, const uint8_t* data);

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_PACKAGE_H_
