// Hostile checkpoints through the real llmconvert binary: each case damages
// one thing in a generated checkpoint and asserts the one-line error names
// the file and field, and that no package or staging folder is left.
#include <sys/stat.h>

#include <cstring>

#include "hostile/hostile_support.h"
#include "llmpack/file_util.h"
#include "nlohmann/json.hpp"

namespace llmpack::hostile {
namespace {

using nlohmann::json;

constexpr char kNorm0[] = "model.layers.0.input_layernorm.weight";
constexpr char kNorm1[] = "model.layers.0.post_attention_layernorm.weight";

class HostileCheckpoint : public Hostile {
 protected:
  void SetUp() override { WriteTinyCheckpoint(ckpt()); }
  fs::path ckpt() const { return dir("ckpt"); }
  fs::path shard() const { return ckpt() / "model.safetensors"; }

  testing::ToolRun Convert(const fs::path& input) {
    return Tool("llmconvert",
                Quote(input) + " -o " + Quote(out()) + " --quiet");
  }
  testing::ToolRun Convert() { return Convert(ckpt()); }

  // The shard split into its JSON header and data bytes.
  json Header() {
    const std::string b = *ReadFileToString(shard());
    uint64_t n;
    std::memcpy(&n, b.data(), 8);
    return json::parse(b.substr(8, n));
  }
  std::string Data() {
    const std::string b = *ReadFileToString(shard());
    uint64_t n;
    std::memcpy(&n, b.data(), 8);
    return b.substr(8 + n);
  }
  void WriteShard(const std::string& header, const std::string& data) {
    std::string b(8, '\0');
    const uint64_t n = header.size();
    std::memcpy(b.data(), &n, 8);
    ASSERT_TRUE(WriteStringToFile(shard(), b + header + data).ok());
  }
  void EditHeader(const std::function<void(json&)>& edit) {
    json h = Header();
    const std::string data = Data();
    edit(h);
    WriteShard(h.dump(), data);
  }
  void WriteLength(uint64_t length) {
    std::string b = *ReadFileToString(shard());
    std::memcpy(b.data(), &length, 8);
    ASSERT_TRUE(WriteStringToFile(shard(), b).ok());
  }
  void EditJson(const std::string& file, const std::function<void(json&)>& e) {
    json j = json::parse(*ReadFileToString(ckpt() / file));
    e(j);
    ASSERT_TRUE(WriteStringToFile(ckpt() / file, j.dump()).ok());
  }
  void WriteText(const std::string& file, const std::string& text) {
    ASSERT_TRUE(WriteStringToFile(ckpt() / file, text).ok());
  }
};

std::string DeepArrays(int depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

// ------------------------------------------------------------ safetensors

TEST_F(HostileCheckpoint, SafetensorsHeaderLengthOverflow) {
  WriteLength(uint64_t{1} << 62);
  ExpectRefused(Convert(), {"model.safetensors", "header length"});
}

TEST_F(HostileCheckpoint, SafetensorsGigabyteHeaderDeclared) {
  // A 1 GB header (one giant string) is declared, never materialized.
  WriteLength(uint64_t{1} << 30);
  ExpectRefused(Convert(), {"model.safetensors", "header length 1073741824"});
}

TEST_F(HostileCheckpoint, SafetensorsTruncatedInHeader) {
  const std::string b = *ReadFileToString(shard());
  ASSERT_TRUE(WriteStringToFile(shard(), b.substr(0, 40)).ok());
  ExpectRefused(Convert(), {"model.safetensors", "header length"});
}

TEST_F(HostileCheckpoint, SafetensorsTruncatedInData) {
  const std::string b = *ReadFileToString(shard());
  ASSERT_TRUE(WriteStringToFile(shard(), b.substr(0, b.size() - 100)).ok());
  ExpectRefused(Convert(), {"model.safetensors", "past the end of the data"});
}

TEST_F(HostileCheckpoint, SafetensorsOverlappingTensors) {
  EditHeader(
      [](json& h) { h[kNorm1]["data_offsets"] = h[kNorm0]["data_offsets"]; });
  ExpectRefused(Convert(), {"model.safetensors", "overlaps tensor"});
}

TEST_F(HostileCheckpoint, SafetensorsReversedDataOffsets) {
  EditHeader([](json& h) {
    json& o = h[kNorm0]["data_offsets"];
    o = {o[1], o[0]};
  });
  ExpectRefused(Convert(), {"model.safetensors", kNorm0, "data_offsets"});
}

TEST_F(HostileCheckpoint, SafetensorsNegativeShape) {
  EditHeader([](json& h) { h[kNorm0]["shape"] = {-32}; });
  ExpectRefused(Convert(), {kNorm0, "negative dimension -32"});
}

TEST_F(HostileCheckpoint, SafetensorsShapeProductOverflow) {
  const int64_t big = int64_t{1} << 40;
  EditHeader([&](json& h) { h[kNorm0]["shape"] = {big, big, big}; });
  ExpectRefused(Convert(), {kNorm0, "shape overflows"});
}

TEST_F(HostileCheckpoint, SafetensorsShapeDisagreesWithOffsets) {
  EditHeader([](json& h) { h[kNorm0]["shape"] = {33}; });
  ExpectRefused(Convert(), {kNorm0, "need 132 bytes"});
}

TEST_F(HostileCheckpoint, SafetensorsWrongDtype) {
  EditHeader([](json& h) { h[kNorm0]["dtype"] = "I64"; });
  ExpectRefused(Convert(), {kNorm0, "unsupported dtype 'I64'"});
}

TEST_F(HostileCheckpoint, SafetensorsHeaderNotJson) {
  WriteShard("{\"a\": [1, 2", Data());
  ExpectRefused(Convert(),
                {"model.safetensors", "malformed safetensors header"});
}

TEST_F(HostileCheckpoint, SafetensorsHeaderBadUtf8) {
  std::string h = Header().dump();
  h.replace(h.find("model.norm"), 5, "\xff\xfe\xc0\x80!");
  WriteShard(h, Data());
  ExpectRefused(Convert(),
                {"model.safetensors", "malformed safetensors header"});
}

TEST_F(HostileCheckpoint, SafetensorsDeepJsonNesting) {
  WriteShard(DeepArrays(200000), Data());
  ExpectRefused(Convert(),
                {"model.safetensors", "malformed safetensors header"});
}

// ---------------------------------------------------------------- shards

class HostileShards : public HostileCheckpoint {
 protected:
  void SetUp() override {
    HostileCheckpoint::SetUp();
    fs::rename(shard(), ckpt() / "a.safetensors");
    const json names = json::parse(IndexTensorNames());
    json map = json::object();
    for (const auto& item : names.items()) map[item.key()] = "a.safetensors";
    index_ = {{"metadata", json::object()}, {"weight_map", map}};
    WriteIndex();
  }
  std::string IndexTensorNames() {
    const std::string b = *ReadFileToString(ckpt() / "a.safetensors");
    uint64_t n;
    std::memcpy(&n, b.data(), 8);
    json h = json::parse(b.substr(8, n));
    h.erase("__metadata__");
    return h.dump();
  }
  void WriteIndex() {
    WriteText("model.safetensors.index.json", index_.dump());
  }
  json index_;
};

TEST_F(HostileShards, ShardedIndexMissingShard) {
  index_["weight_map"][kNorm0] = "b.safetensors";
  WriteIndex();
  ExpectRefused(Convert(),
                {"model.safetensors.index.json", "b.safetensors", "absent"});
}

TEST_F(HostileShards, ShardedIndexPathEscapesFolder) {
  index_["weight_map"][kNorm0] = "../ckpt/a.safetensors";
  WriteIndex();
  ExpectRefused(Convert(), {"model.safetensors.index.json",
                            "must be a file inside the checkpoint folder"});
}

TEST_F(HostileShards, ShardedIndexDeepJsonNesting) {
  WriteText("model.safetensors.index.json",
            "{\"weight_map\": " + DeepArrays(100000) + "}");
  ExpectRefused(Convert(), {"model.safetensors.index.json", "malformed index"});
}

TEST_F(HostileShards, DuplicateTensorAcrossShards) {
  fs::copy_file(ckpt() / "a.safetensors", ckpt() / "b.safetensors");
  index_["weight_map"][kNorm0] = "b.safetensors";
  WriteIndex();
  ExpectRefused(Convert(), {"appears in more than one shard"});
}

// ----------------------------------------------------------------- config

TEST_F(HostileCheckpoint, ConfigDeepJsonNesting) {
  WriteText("config.json", DeepArrays(100000));
  ExpectRefused(Convert(), {"config.json"});
}

TEST_F(HostileCheckpoint, ConfigNegativeLayerCount) {
  EditJson("config.json", [](json& c) { c["num_hidden_layers"] = -2; });
  ExpectRefused(Convert(), {"config.json", "num_layers"});
}

TEST_F(HostileCheckpoint, ConfigHugeVocabulary) {
  EditJson("config.json", [](json& c) { c["vocab_size"] = int64_t{1} << 40; });
  ExpectRefused(Convert(),
                {"config.json", "vocab_size must be in 1..16777216"});
}

TEST_F(HostileCheckpoint, ConfigBadUtf8) {
  std::string text = *ReadFileToString(ckpt() / "config.json");
  text.replace(text.find("llama"), 5, "ll\xc3\x28m");
  WriteText("config.json", text);
  ExpectRefused(Convert(), {"config.json"});
}

TEST_F(HostileCheckpoint, ConfigClaimsMoreLayersThanStored) {
  EditJson("config.json", [](json& c) { c["num_hidden_layers"] = 3; });
  ExpectRefused(Convert(), {"model.layers.2"});
}

TEST_F(HostileCheckpoint, ConfigSymlinkToDevZero) {
  // Symlinks in checkpoints are followed (Hugging Face's cache is made of
  // them), but only to regular files: /dev/zero would be read forever.
  fs::remove(ckpt() / "config.json");
  fs::create_symlink("/dev/zero", ckpt() / "config.json");
  ExpectRefused(Convert(), {"config.json", "not a regular file"});
}

TEST_F(HostileCheckpoint, ShardIsAFifo) {
  fs::remove(shard());
  ASSERT_EQ(::mkfifo(shard().c_str(), 0600), 0);
  ExpectRefused(Convert(), {"model.safetensors", "not a regular file"});
}

TEST_F(HostileCheckpoint, HubCacheSymlinksAreFollowed) {
  // The Hugging Face hub cache layout: snapshot files are symlinks into
  // ../../blobs. Such a checkpoint converts like a plain folder.
  const fs::path blobs = dir("hub") / "blobs";
  const fs::path snap = dir("hub") / "snapshots" / "abc123";
  fs::create_directories(blobs);
  fs::create_directories(snap);
  for (const auto& e : fs::directory_iterator(ckpt())) {
    const std::string name = e.path().filename().string();
    fs::copy_file(e.path(), blobs / ("blob-" + name));
    fs::create_symlink(fs::path("../../blobs") / ("blob-" + name), snap / name);
  }
  const testing::ToolRun run = Convert(snap);
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(fs::exists(out() / "manifest.json"));
}

// -------------------------------------------------------------- tokenizer

TEST_F(HostileCheckpoint, TokenizerJsonBadUtf8) {
  std::string text = *ReadFileToString(ckpt() / "tokenizer.json");
  text.replace(text.find("<|eot|>"), 7, "<|\xed\xa0\x80|>");  // a surrogate
  WriteText("tokenizer.json", text);
  ExpectRefused(Convert(), {"tokenizer.json"});
}

TEST_F(HostileCheckpoint, TokenizerJsonDuplicateTokens) {
  EditJson("tokenizer.json", [](json& t) {
    t["added_tokens"].push_back(
        {{"id", 257}, {"content", "<|eot|>"}, {"special", true}});
  });
  ExpectRefused(Convert(), {"tokenizer.json", "<|eot|>"});
}

TEST_F(HostileCheckpoint, TokenizerJsonHugeTokenId) {
  EditJson("tokenizer.json",
           [](json& t) { t["added_tokens"][0]["id"] = 2147483647; });
  ExpectRefused(Convert(), {"tokenizer.json", "2147483647"});
}

TEST_F(HostileCheckpoint, TokenizerJsonRegexDoesNotCompile) {
  EditJson("tokenizer.json", [](json& t) {
    t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(a|";
  });
  ExpectRefused(Convert(), {"(a|", "does not compile"});
}

TEST_F(HostileCheckpoint, TokenizerJsonDeepJsonNesting) {
  WriteText("tokenizer.json", "{\"model\": " + DeepArrays(100000) + "}");
  ExpectRefused(Convert(), {"tokenizer.json"});
}

TEST_F(HostileCheckpoint, SentencePieceModelGarbage) {
  fs::remove(ckpt() / "tokenizer.json");
  std::string junk(4096, '\0');
  for (size_t i = 0; i < junk.size(); ++i)
    junk[i] = static_cast<char>(i * 131 + 7);
  WriteText("tokenizer.model", junk);
  ExpectRefused(Convert(), {"tokenizer.model"});
}

// ------------------------------------------------------------------- ONNX

TEST_F(HostileCheckpoint, OnnxGarbage) {
  std::string junk(8192, '\0');
  for (size_t i = 0; i < junk.size(); ++i)
    junk[i] = static_cast<char>(i * 37 + 1);
  const fs::path model = dir("model.onnx");
  ASSERT_TRUE(WriteStringToFile(model, junk).ok());
  ExpectRefused(Convert(model), {"model.onnx"});
}

TEST_F(HostileCheckpoint, OnnxEmptyFile) {
  const fs::path model = dir("empty.onnx");
  ASSERT_TRUE(WriteStringToFile(model, "").ok());
  ExpectRefused(Convert(model), {"empty.onnx"});
}

}  // namespace
}  // namespace llmpack::hostile
