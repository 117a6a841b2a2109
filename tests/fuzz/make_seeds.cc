// Writes small seed inputs of our own for the fuzzers, with the library's
// writers so they are valid: tensor files (f32, f16, q8, q4 with and without
// zero points), llmpack reference bundles (full rows and top-k), a manifest
// for a config.json, a safetensors file, .npy files and eval files.
// Also the tokenizer.txt of the checkpoint's tokenizer.json and the
// "chat_template" of every tokenizer_config.json given.
// Usage: fuzz_make_seeds <out_dir> <hf_checkpoint_dir> [tokenizer_config...];
// each fuzzer's seeds go to <out_dir>/<fuzzer name without _fuzz>/.
// scripts/fuzz_seeds.sh adds the fixture files.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "convert/hf_config.h"
#include "formats/tensor_file_format.h"
#include "llmpack/json_file.h"
#include "llmpack/manifest.h"
#include "llmpack/tensor_file.h"
#include "tokenizer/convert_tokenizer.h"
#include "tokenizer/tokenizer_file.h"
#include "verify/reference.h"

namespace fs = std::filesystem;
using namespace llmpack;

namespace {

void Put(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

absl::Status TensorFile(const fs::path& path, std::vector<TensorSpec> specs) {
  for (TensorSpec& s : specs) {
    auto bytes = TensorDataBytes(s.dtype, s.shape, s.group_size, s.scale_dtype,
                                 s.quant_flags);
    if (!bytes.ok()) return bytes.status();
    s.size_bytes = *bytes;
  }
  fs::create_directories(path.parent_path());
  auto writer =
      TensorFileWriter::Create(path, format::FileKind::kBlock, 0, specs);
  if (!writer.ok()) return writer.status();
  for (const TensorSpec& s : specs) {
    std::vector<uint8_t> data(s.size_bytes);
    for (size_t i = 0; i < data.size(); ++i)
      data[i] = static_cast<uint8_t>(i * 37 + 5);
    absl::Status st = (*writer)->Append(data);
    if (!st.ok()) return st;
  }
  return (*writer)->Finish().status();
}

TensorSpec Spec(std::string name, DType dtype, std::vector<int64_t> shape,
                uint32_t group = 0, DType scale = DType::kF32,
                uint16_t flags = 0) {
  TensorSpec s;
  s.name = std::move(name);
  s.dtype = dtype;
  s.shape = std::move(shape);
  s.group_size = group;
  s.scale_dtype = group ? static_cast<uint16_t>(scale) : 0;
  s.quant_flags = flags;
  return s;
}

std::string Npy(const std::string& shape, int elements) {
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  header.resize(117, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  for (int i = 0; i < elements; ++i) {
    const float v = 0.25f * static_cast<float>(i) - 1.0f;
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  return out;
}

std::string Safetensors() {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},)"
      R"("c":{"dtype":"F16","shape":[1,2],"data_offsets":[32,36]}})";
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>(header.size() >> (8 * i));
  return out + header + std::string(36, '\x3c');
}

absl::Status TokenizerSeeds(const fs::path& out, const fs::path& hf_dir,
                            const std::vector<fs::path>& configs) {
  auto json = ReadJsonFile(hf_dir / "tokenizer.json");
  if (!json.ok()) return json.status();
  auto spec = tokenizer::SpecFromHfTokenizerJson(*json, "tokenizer.json");
  if (!spec.ok()) return spec.status();
  Put(out / "tokenizer_txt" / "tokenizer.txt",
      tokenizer::SerializeTokenizerSpec(*spec));
  for (const fs::path& config : configs) {
    auto c = ReadJsonFile(config);
    if (!c.ok()) return c.status();
    if (c->contains("chat_template") && (*c)["chat_template"].is_string()) {
      Put(out / "chat_template" / config.filename(),
          (*c)["chat_template"].get<std::string>());
    }
  }
  return absl::OkStatus();
}

// Protobuf wire format, enough for a small sentencepiece ModelProto
// (lib/tokenizer/sentencepiece_model.proto).
std::string Varint(uint64_t v) {
  std::string out;
  for (; v >= 0x80; v >>= 7) out += static_cast<char>((v & 0x7f) | 0x80);
  return out + static_cast<char>(v);
}
std::string BytesField(int number, const std::string& bytes) {
  return Varint(number << 3 | 2) + Varint(bytes.size()) + bytes;
}
std::string IntField(int number, uint64_t v) {
  return Varint(number << 3) + Varint(v);
}
std::string Piece(const std::string& text, float score, int type) {
  std::string score_bytes(4, '\0');
  std::memcpy(score_bytes.data(), &score, 4);
  return BytesField(1, BytesField(1, text) + Varint(2 << 3 | 5) + score_bytes +
                           IntField(3, type));
}

// A BPE model with unknown, control, normal and byte pieces.
std::string SentencePieceModel() {
  const std::string kSpace = "\xE2\x96\x81";
  std::string model = Piece("<unk>", 0, 2) + Piece("<s>", 0, 3) +
                      Piece("</s>", 0, 3) + Piece("<0x41>", 0, 6) +
                      Piece(kSpace, -1, 1) + Piece("a", -2, 1) +
                      Piece("b", -3, 1) + Piece(kSpace + "a", -4, 1);
  model += BytesField(2, IntField(3, 2) + IntField(35, 1));  // BPE, bytes
  model += BytesField(3, BytesField(1, "identity") + IntField(3, 1));
  return model;
}

int Run(const fs::path& out, const fs::path& hf_dir,
        const std::vector<fs::path>& configs) {
  const DType f16 = DType::kF16, bf16 = DType::kBF16;
  const uint16_t zp = format::kQuantFlagZeroPoint;
  const fs::path tf = out / "tensor_file";
  for (const absl::Status& st : {
           TensorFile(tf / "float.bin",
                      {Spec("w", DType::kF32, {3, 5}), Spec("h", f16, {7}),
                       Spec("b", bf16, {2, 2, 2})}),
           TensorFile(tf / "q4.bin",
                      {Spec("q", DType::kQ4, {3, 40}, 32, f16, zp),
                       Spec("r", DType::kQ4, {2, 7}, 7, bf16)}),
           TensorFile(tf / "q8.bin",
                      {Spec("q", DType::kQ8, {2, 33}, 16, f16),
                       Spec("z", DType::kQ8, {1, 8}, 8, bf16, zp)}),
       }) {
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
  }

  verify::ReferenceBundle bundle;
  bundle.format = verify::kBundleFormat;
  bundle.info = {{"seed", true}};
  verify::ReferenceCase full;
  full.name = "full";
  full.input_ids = {1, 5, 9};
  full.logits.positions = {0, 2};
  full.logits.vocab = 4;
  full.logits.full = {0, 1, 2, 3, 3, 2, 1, 0};
  full.greedy = {3, 3};
  bundle.cases.push_back(full);
  std::vector<float> rows(2 * 6);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<float>(i % 5);
  verify::ReferenceCase topk = full;
  topk.name = "topk";
  topk.logits = verify::ReduceToTopK(rows, 6, {0, 1}, 2);
  bundle.cases.push_back(topk);
  fs::create_directories(out / "reference");
  if (absl::Status st = verify::WriteReferenceBundle(
          out / "reference" / "bundle.llmref", bundle);
      !st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  Put(out / "reference" / "reference.json",
      R"({"refs":[{"name":"a","input_ids":[1,2,3],"logits_file":"ref_logits_0.npy",)"
      R"("logits_rows":"all","greedy_continuation":[2,3]}]})");

  auto json = ReadJsonFile(hf_dir / "config.json");
  if (!json.ok()) {
    std::fprintf(stderr, "%s\n", json.status().ToString().c_str());
    return 1;
  }
  auto config = convert::ParseHuggingFaceConfig(*json, "config.json");
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().ToString().c_str());
    return 1;
  }
  Manifest manifest;
  manifest.tool_version = "seed";
  manifest.config = *config;
  manifest.weights_dtype = "bf16";
  manifest.source.format = "huggingface-safetensors";
  manifest.files = {{"embedding.bin", "embedding", 100, 7},
                    {"block_000.bin", "block", 200, 8},
                    {"lm.bin", "lm", 300, 9},
                    {"tokenizer.txt", "tokenizer", 10, 11}};
  Put(out / "manifest" / "manifest.json", ManifestToJson(manifest).dump(1));

  if (absl::Status st = TokenizerSeeds(out, hf_dir, configs); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  // Small tokenizer.json files: the fixtures' are 0.3-11 MB, too big for
  // many mutations per second.
  Put(out / "tokenizer_json" / "byte_level.json",
      R"({"added_tokens":[{"id":5,"content":"<|end|>","special":true}],)"
      R"("pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,)"
      R"("use_regex":true},"decoder":{"type":"ByteLevel"},)"
      R"("post_processor":{"type":"TemplateProcessing","single":[)"
      R"({"SpecialToken":{"id":"<|end|>"}},{"Sequence":{"id":"A"}}],)"
      R"("special_tokens":{"<|end|>":{"ids":[5]}}},)"
      R"("model":{"type":"BPE","vocab":{"a":0,"b":1,"Ġ":2,"ab":3,)"
      R"("Ġa":4,"<|end|>":5},"merges":["a b","Ġ a"]}})");
  Put(out / "tokenizer_json" / "metaspace.json",
      R"({"added_tokens":[{"id":4,"content":"<s>","special":true}],)"
      R"("normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend",)"
      R"("prepend":"▁"},{"type":"Replace","pattern":{"String":" "},)"
      R"("content":"▁"}]},"decoder":{"type":"Metaspace",)"
      R"("replacement":"▁","prepend_scheme":"first","split":true},)"
      R"("model":{"type":"BPE","byte_fallback":true,"vocab":{"▁":0,)"
      R"("a":1,"b":2,"▁a":3,"<s>":4,"<0x41>":5},"merges":["▁ a"]}})");
  Put(out / "sentencepiece" / "small.model", SentencePieceModel());
  Put(out / "safetensors" / "small.safetensors", Safetensors());
  Put(out / "npy" / "small.npy", Npy("(2, 3)", 6));
  Put(out / "npy" / "vector.npy", Npy("(5,)", 5));
  Put(out / "eval" / "windows.json",
      R"({"windows":[[1,2,3,4],[1,5,6]],"fp32_ppl":12.5})");
  Put(out / "eval" / "ids.txt",
      "1 2 3, 4 5\n6 7 8 9 10 11 12 13 14 15 16 17 18\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(
        stderr,
        "usage: %s OUT_DIR HF_CHECKPOINT_DIR [tokenizer_config.json...]\n",
        argv[0]);
    return 2;
  }
  return Run(argv[1], argv[2], std::vector<fs::path>(argv + 3, argv + argc));
}
