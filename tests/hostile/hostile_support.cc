#include "hostile/hostile_support.h"

#include <algorithm>
#include <cstring>

#include "commands/convert_command.h"
#include "convert/synthetic_checkpoint.h"
#include "llmpack/checksum.h"
#include "llmpack/file_util.h"
#include "llmpack/manifest.h"
#include "nlohmann/json.hpp"

namespace llmpack::hostile {
namespace {

using nlohmann::json;

// UTF-8 of one code point below 0x800 (all the byte-level alphabet needs).
std::string Utf8(int cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's byte-to-character table: printable Latin-1 bytes stand for
// themselves, the other bytes for 256, 257, ... in byte order.
std::vector<std::string> ByteAlphabet() {
  std::vector<std::string> chars(256);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable =
        (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    chars[b] = Utf8(printable ? b : next++);
  }
  return chars;
}

}  // namespace

std::string ByteLevelTokenizerJson(const std::string& split_regex) {
  json vocab = json::object();
  const std::vector<std::string> alphabet = ByteAlphabet();
  for (int b = 0; b < 256; ++b) vocab[alphabet[b]] = b;
  json j = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", split_regex}}},
           {"behavior", "Isolated"}},
          {{"type", "ByteLevel"},
           {"add_prefix_space", false},
           {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens",
       {{{"id", 256}, {"content", "<|eot|>"}, {"special", true}}}},
  };
  return j.dump();
}

void WriteTinyCheckpoint(const fs::path& dir,
                         const TinyCheckpointOptions& options) {
  const fs::path tok = dir.string() + "-tokenizer";
  fs::create_directories(tok);
  ASSERT_TRUE(WriteStringToFile(tok / "tokenizer.json",
                                ByteLevelTokenizerJson(options.split_regex))
                  .ok());
  const json config = {{"chat_template", options.chat_template},
                       {"eos_token", "<|eot|>"}};
  ASSERT_TRUE(
      WriteStringToFile(tok / "tokenizer_config.json", config.dump()).ok());
  convert::SyntheticOptions o;
  o.output = dir;
  o.shape.hidden_size = 32;
  o.shape.num_layers = 2;
  o.shape.num_heads = 4;
  o.shape.num_kv_heads = 2;
  o.shape.head_dim = 8;
  o.shape.ffn_size = 64;
  o.shape.vocab_size = 272;
  o.shape.tie_word_embeddings = false;
  o.shape.rope_type = "default";
  o.shape.rope_theta = 10000;
  o.shape.max_positions = 128;
  o.dtype = DType::kF32;
  o.seed = 11;
  o.tokenizer = tok;
  const auto result = convert::WriteSyntheticCheckpoint(o);
  ASSERT_TRUE(result.ok()) << result.status();
  fs::remove_all(tok);
}

void WriteTinyPackage(const fs::path& dir,
                      const TinyCheckpointOptions& options) {
  const fs::path ckpt = dir.string() + "-checkpoint";
  WriteTinyCheckpoint(ckpt, options);
  const auto summary =
      commands::RunConvert({ckpt, dir, "keep", false, /*progress=*/false});
  ASSERT_TRUE(summary.ok()) << summary.status();
  fs::remove_all(ckpt);
}

format::TensorEntry* TensorFileImage::Find(const std::string& name) {
  for (format::TensorEntry& e : entries) {
    if (name == e.name) return &e;
  }
  ADD_FAILURE() << "no tensor " << name;
  return &entries.front();
}

TensorFileImage LoadTensorFile(const fs::path& path) {
  TensorFileImage image;
  image.bytes = *ReadFileToString(path);
  std::memcpy(&image.header, image.bytes.data(), sizeof(image.header));
  image.entries.resize(image.header.tensor_count);
  std::memcpy(image.entries.data(), image.bytes.data() + sizeof(image.header),
              image.entries.size() * sizeof(format::TensorEntry));
  return image;
}

void StoreTensorFile(const fs::path& path, TensorFileImage image,
                     bool fix_file_size) {
  std::string& b = image.bytes;
  for (format::TensorEntry& e : image.entries) {
    if (e.offset <= b.size() && e.size_bytes <= b.size() - e.offset) {
      e.checksum = Checksum64(b.data() + e.offset, e.size_bytes);
    }
  }
  const size_t dir_bytes = image.entries.size() * sizeof(format::TensorEntry);
  if (b.size() < sizeof(format::FileHeader) + dir_bytes) {
    b.resize(sizeof(format::FileHeader) + dir_bytes);
  }
  std::memcpy(b.data() + sizeof(format::FileHeader), image.entries.data(),
              dir_bytes);
  // The checksum covers what the header says the directory is, where that
  // lies inside the file.
  const uint64_t declared = image.header.directory_bytes;
  if (declared <= b.size() - sizeof(format::FileHeader)) {
    image.header.directory_checksum =
        Checksum64(b.data() + sizeof(format::FileHeader), declared);
  }
  if (fix_file_size) image.header.file_size = b.size();
  std::memcpy(b.data(), &image.header, sizeof(image.header));
  ASSERT_TRUE(WriteStringToFile(path, b).ok());
}

void EditTensorFile(const fs::path& path,
                    const std::function<void(TensorFileImage&)>& edit,
                    bool fix_file_size) {
  TensorFileImage image = LoadTensorFile(path);
  edit(image);
  StoreTensorFile(path, std::move(image), fix_file_size);
}

void ResealPackage(const fs::path& package) {
  json m = json::parse(*ReadFileToString(package / "manifest.json"));
  for (json& f : m["files"]) {
    const fs::path p = package / f["name"].get<std::string>();
    std::error_code ec;
    if (!fs::is_regular_file(fs::symlink_status(p, ec))) continue;
    f["size"] = fs::file_size(p);
    f["xxh3_64"] = ChecksumToHex(*ChecksumFile(p));
  }
  ASSERT_TRUE(WriteStringToFile(package / "manifest.json", m.dump(2)).ok());
}

void EditManifestText(const fs::path& package,
                      const std::function<void(std::string&)>& edit) {
  std::string text = *ReadFileToString(package / "manifest.json");
  edit(text);
  ASSERT_TRUE(WriteStringToFile(package / "manifest.json", text).ok());
}

testing::ToolRun Tool(const std::string& tool, const std::string& args) {
  return testing::RunTool(tool, args, /*merge_stderr=*/true);
}

std::string Quote(const fs::path& path) { return "'" + path.string() + "'"; }

std::vector<std::string> Listing(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

void Hostile::ExpectRefused(const testing::ToolRun& run,
                            const std::vector<std::string>& words) {
  EXPECT_NE(run.exit_code, 0) << run.output;
  EXPECT_NE(run.exit_code, -1) << "the tool crashed: " << run.output;
  for (const std::string& w : words) {
    EXPECT_NE(run.output.find(w), std::string::npos)
        << "message lacks '" << w << "': " << run.output;
  }
  EXPECT_FALSE(fs::exists(out())) << "output left at " << out();
  EXPECT_TRUE(Listing(out_parent()).empty())
      << "left beside the output: "
      << ::testing::PrintToString(Listing(out_parent()));
}

}  // namespace llmpack::hostile
