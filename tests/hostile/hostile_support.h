// Shared pieces of the hostile-input corpus (tests/hostile): a tiny
// checkpoint and package made in the test (nothing third-party), surgery on
// tensor files that recomputes every checksum so the damage reaches the
// checks behind them, and the "nothing left behind" assertion.
// Thread safety: plain functions on the file system; each test owns its
// scratch folder.
#ifndef LLMPACK_TESTS_HOSTILE_HOSTILE_SUPPORT_H_
#define LLMPACK_TESTS_HOSTILE_HOSTILE_SUPPORT_H_

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "formats/tensor_file_format.h"
#include "gtest/gtest.h"
#include "support/test_paths.h"
#include "support/tool_run.h"

namespace llmpack::hostile {

namespace fs = std::filesystem;

// The Split regex of the generated tokenizer (GPT-2's, simplified).
inline constexpr char kPlainSplit[] =
    R"( ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+)";
inline constexpr char kPlainTemplate[] =
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}<|eot|>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}";

// A byte-level BPE tokenizer.json: the 256 GPT-2 byte tokens (ids 0..255),
// no merges, "<|eot|>" = 256, pre-tokenized by `split_regex`.
std::string ByteLevelTokenizerJson(const std::string& split_regex);

struct TinyCheckpointOptions {
  std::string split_regex = kPlainSplit;
  std::string chat_template = kPlainTemplate;
};

// A Hugging Face folder (config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json): hidden 32, 2 layers, vocab 272, f32 weights.
void WriteTinyCheckpoint(const fs::path& dir,
                         const TinyCheckpointOptions& options = {});

// An llmpack package converted from WriteTinyCheckpoint by the library.
void WriteTinyPackage(const fs::path& dir,
                      const TinyCheckpointOptions& options = {});

// A tensor file taken apart: header, directory entries and every byte.
struct TensorFileImage {
  format::FileHeader header{};
  std::vector<format::TensorEntry> entries;
  std::string bytes;  // the whole file
  format::TensorEntry* Find(const std::string& name);
};

TensorFileImage LoadTensorFile(const fs::path& path);
// Writes `image` back with consistent checksums: each tensor's data
// checksum (where its range lies in the file), the directory checksum and,
// unless the test chose otherwise, header.file_size = the real size. So only
// the deliberate damage remains for the reader to find.
void StoreTensorFile(const fs::path& path, TensorFileImage image,
                     bool fix_file_size = true);
// Load, edit, store.
void EditTensorFile(const fs::path& path,
                    const std::function<void(TensorFileImage&)>& edit,
                    bool fix_file_size = true);

// Recomputes every file size and checksum listed in the manifest, so a
// damaged file passes the package-level checks and reaches the parsers.
void ResealPackage(const fs::path& package);
// Edits manifest.json as JSON text (the manifest is not checksummed).
void EditManifestText(const fs::path& package,
                      const std::function<void(std::string&)>& edit);

// Runs a built tool with stderr merged.
testing::ToolRun Tool(const std::string& tool, const std::string& args);
std::string Quote(const fs::path& path);

// A folder listing (names, sorted) for "nothing was added" checks.
std::vector<std::string> Listing(const fs::path& dir);

// Per test: scratch folders and the shared expectations.
class Hostile : public ::testing::Test {
 protected:
  fs::path dir(const std::string& name) const { return tmp_.path() / name; }
  // An empty parent for the tool's output; out() inside it.
  fs::path out_parent() {
    fs::create_directories(tmp_.path() / "out");
    return tmp_.path() / "out";
  }
  fs::path out() { return out_parent() / "result"; }

  // The run failed with a one-line error naming every `words` entry, and
  // left no output and no staging folder beside it.
  void ExpectRefused(const testing::ToolRun& run,
                     const std::vector<std::string>& words);

  testing::ScopedTempDir tmp_;
};

}  // namespace llmpack::hostile

#endif  // LLMPACK_TESTS_HOSTILE_HOSTILE_SUPPORT_H_
