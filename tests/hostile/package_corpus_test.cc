// Hostile packages and verification inputs through the real llmverify and
// llmquant binaries. Tensor files are damaged with their checksums (and the
// manifest's) recomputed, so each case reaches the check it names; each
// asserts the message and that nothing was written.
#include <sys/stat.h>

#include <cstring>

#include "hostile/hostile_support.h"
#include "llmpack/file_util.h"
#include "nlohmann/json.hpp"

namespace llmpack::hostile {
namespace {

using nlohmann::json;

class HostilePackage : public Hostile {
 protected:
  void SetUp() override { WriteTinyPackage(pkg(), options_); }
  fs::path pkg() const { return dir("pkg"); }

  // Opens the package and runs `what` (by default: generates two tokens);
  // the report would go to out(), which must not appear when the package is
  // refused.
  testing::ToolRun Verify(const std::string& what = "--prompt-ids 1,2") {
    return Tool("llmverify", Quote(pkg()) + " -n 2 --quiet --json " +
                                 Quote(out()) + " " + what);
  }
  testing::ToolRun Quantize() {
    return Tool("llmquant",
                Quote(pkg()) + " -o " + Quote(out()) + " --int4 --quiet");
  }
  // Both tools refuse the package with the same words.
  void ExpectBothRefuse(const std::vector<std::string>& words) {
    const std::vector<std::string> before = Listing(pkg());
    ExpectRefused(Verify(), words);
    ExpectRefused(Quantize(), words);
    EXPECT_EQ(Listing(pkg()), before) << "the input package was changed";
  }
  void EditManifest(const std::function<void(json&)>& edit) {
    json m = json::parse(*ReadFileToString(pkg() / "manifest.json"));
    edit(m);
    ASSERT_TRUE(WriteStringToFile(pkg() / "manifest.json", m.dump(2)).ok());
  }
  // Replaces the line after the line `after` in tokenizer.txt.
  void EditTokenizerLine(const std::string& after, const std::string& line) {
    std::string t = *ReadFileToString(pkg() / "tokenizer.txt");
    const size_t at = t.find("\n" + after + "\n");
    ASSERT_NE(at, std::string::npos);
    const size_t b = at + after.size() + 2;
    t.replace(b, t.find('\n', b) - b, line);
    ASSERT_TRUE(WriteStringToFile(pkg() / "tokenizer.txt", t).ok());
    ResealPackage(pkg());
  }

  TinyCheckpointOptions options_;
};

// ---------------------------------------------------------------- manifest

TEST_F(HostilePackage, ManifestTruncated) {
  EditManifestText(pkg(), [](std::string& t) { t.resize(t.size() / 2); });
  ExpectBothRefuse({"manifest.json"});
}

TEST_F(HostilePackage, ManifestDeepJsonNesting) {
  EditManifestText(pkg(), [](std::string& t) {
    t = std::string(100000, '[') + std::string(100000, ']');
  });
  ExpectBothRefuse({"manifest.json"});
}

TEST_F(HostilePackage, ManifestBadUtf8) {
  EditManifestText(pkg(), [](std::string& t) {
    t.replace(t.find("llmpack"), 7, "llm\xf8\x88\x80\x80\x80");
  });
  ExpectBothRefuse({"manifest.json"});
}

TEST_F(HostilePackage, ManifestPathTraversal) {
  EditManifest([](json& m) { m["files"][1]["name"] = "../pkg/block_000.bin"; });
  ExpectBothRefuse(
      {"manifest.json", "must be a plain name inside the package"});
}

TEST_F(HostilePackage, ManifestNegativeFileSize) {
  EditManifest([](json& m) { m["files"][1]["size"] = -5; });
  ExpectBothRefuse({"manifest.json", "must be a non-negative integer"});
}

TEST_F(HostilePackage, ManifestHugeLayerCount) {
  EditManifest([](json& m) { m["config"]["num_layers"] = 1000000000; });
  ExpectBothRefuse({"manifest.json", "num_layers must be in 1..16777216"});
}

TEST_F(HostilePackage, ManifestMissingFile) {
  fs::remove(pkg() / "block_001.bin");
  ExpectBothRefuse({"block_001.bin", "missing"});
}

// ----------------------------------------------------------- symlink policy

TEST_F(HostilePackage, ManifestIsSymlink) {
  fs::rename(pkg() / "manifest.json", dir("elsewhere.json"));
  fs::create_symlink(dir("elsewhere.json"), pkg() / "manifest.json");
  ExpectBothRefuse({"manifest.json", "symbolic link"});
}

TEST_F(HostilePackage, BlockFileSymlinkOutsidePackage) {
  // The target holds the very bytes the manifest vouches for: only the
  // symlink policy refuses it (before, the block was read from outside).
  fs::rename(pkg() / "block_000.bin", dir("outside.bin"));
  fs::create_symlink(dir("outside.bin"), pkg() / "block_000.bin");
  ExpectBothRefuse({"block_000.bin", "symbolic link"});
}

TEST_F(HostilePackage, BlockFileSymlinkInsidePackage) {
  fs::rename(pkg() / "block_000.bin", pkg() / "real.bin");
  fs::create_symlink("real.bin", pkg() / "block_000.bin");
  ExpectBothRefuse({"block_000.bin", "symbolic link"});
}

TEST_F(HostilePackage, PackageFileIsAFifo) {
  fs::remove(pkg() / "lm.bin");
  ASSERT_EQ(::mkfifo((pkg() / "lm.bin").c_str(), 0600), 0);
  ExpectBothRefuse({"lm.bin", "not a regular file"});
}

// ------------------------------------------------- tensor files (resealed)

TEST_F(HostilePackage, BlockTruncatedAndResealed) {
  const fs::path block = pkg() / "block_001.bin";
  std::string b = *ReadFileToString(block);
  ASSERT_TRUE(WriteStringToFile(block, b.substr(0, b.size() / 2)).ok());
  ResealPackage(pkg());
  ExpectBothRefuse({"block_001.bin", "truncated"});
}

TEST_F(HostilePackage, BlockOverlappingTensors) {
  EditTensorFile(pkg() / "block_000.bin", [](TensorFileImage& f) {
    f.Find("post_attention_layernorm.weight")->offset =
        f.Find("input_layernorm.weight")->offset;
  });
  ResealPackage(pkg());
  ExpectBothRefuse({"block_000.bin", "overlaps tensor"});
}

TEST_F(HostilePackage, BlockDuplicateTensorName) {
  EditTensorFile(pkg() / "block_000.bin", [](TensorFileImage& f) {
    std::strcpy(f.Find("post_attention_layernorm.weight")->name,
                "input_layernorm.weight");
  });
  ResealPackage(pkg());
  ExpectBothRefuse({"block_000.bin", "input_layernorm.weight", "listed twice"});
}

TEST_F(HostilePackage, LmHugeTensorCount) {
  EditTensorFile(pkg() / "lm.bin", [](TensorFileImage& f) {
    f.header.tensor_count = 0xFFFFFFFF;
    f.header.directory_bytes = uint64_t{0xFFFFFFFF} * 192;
  });
  ResealPackage(pkg());
  ExpectBothRefuse({"lm.bin", "directory runs past the end of file"});
}

TEST_F(HostilePackage, EmbeddingRowsTimesColsOverflow) {
  EditTensorFile(pkg() / "embedding.bin", [](TensorFileImage& f) {
    format::TensorEntry* e = f.Find("embed_tokens.weight");
    e->rank = 3;
    e->dims[0] = e->dims[1] = e->dims[2] = uint64_t{1} << 40;
  });
  ResealPackage(pkg());
  ExpectBothRefuse({"embedding.bin", "embed_tokens.weight", "overflows"});
}

TEST_F(HostilePackage, BlockWrongDtype) {
  EditTensorFile(pkg() / "block_001.bin", [](TensorFileImage& f) {
    f.Find("mlp.up_proj.weight")->dtype = 4;  // not a dtype code
  });
  ResealPackage(pkg());
  ExpectBothRefuse(
      {"block_001.bin", "mlp.up_proj.weight", "unknown dtype code 4"});
}

// --------------------------------------------------------------- tokenizer

TEST_F(HostilePackage, TokenizerTxtBadBase64) {
  EditTokenizerLine("tokens", "!!!!");
  const std::vector<std::string> before = Listing(pkg());
  ExpectRefused(Tool("llmverify", Quote(pkg()) + " --tokenize hi"),
                {"tokenizer.txt"});
  ExpectRefused(Verify("--chat hi"), {"tokenizer.txt"});
  EXPECT_EQ(Listing(pkg()), before);
}

TEST_F(HostilePackage, TokenizerTxtDuplicateTokens) {
  std::string t = *ReadFileToString(pkg() / "tokenizer.txt");
  const size_t b = t.find("\ntokens\n") + 8;
  const std::string first = t.substr(b, t.find('\n', b) - b);
  EditTokenizerLine(first, first);  // token 1 gets token 0's bytes
  ExpectRefused(Tool("llmverify", Quote(pkg()) + " --tokenize hi"),
                {"tokenizer.txt"});
}

TEST_F(HostilePackage, TokenizerTxtHugeVocabSize) {
  std::string t = *ReadFileToString(pkg() / "tokenizer.txt");
  const size_t b = t.find("vocab_size ");
  t.replace(b, t.find('\n', b) - b, "vocab_size 4000000000");
  ASSERT_TRUE(WriteStringToFile(pkg() / "tokenizer.txt", t).ok());
  ResealPackage(pkg());
  ExpectRefused(Tool("llmverify", Quote(pkg()) + " --tokenize hi"),
                {"tokenizer.txt"});
}

// ----------------------------------------------- untrusted template, regex

class HostileTemplate : public HostilePackage {
 protected:
  void SetUp() override {}  // each case writes its own package
  void Make(const std::string& chat_template, const std::string& split) {
    options_.chat_template = chat_template;
    options_.split_regex = split;
    WriteTinyPackage(pkg(), options_);
  }
};

TEST_F(HostileTemplate, ChatTemplateLoopsForever) {
  // Six nested loops over 100 items: 10^12 iterations.
  std::string t = "{% set xs = [";
  for (int i = 0; i < 100; ++i) t += std::to_string(i) + ",";
  t += "0] %}";
  for (int d = 0; d < 6; ++d) t += "{% for x" + std::to_string(d) + " in xs %}";
  t += "x";
  for (int d = 0; d < 6; ++d) t += "{% endfor %}";
  Make(t, kPlainSplit);
  ExpectRefused(Verify("--chat hi"), {"chat template", "rendering exceeded"});
}

TEST_F(HostileTemplate, ChatTemplateRendersGigabytes) {
  // The string doubles 40 times: a terabyte if nothing stops it.
  std::string t =
      "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}"
      "{% for i in [";
  for (int i = 0; i < 40; ++i) t += "0,";
  t += "0] %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}";
  Make(t, kPlainSplit);
  ExpectRefused(Verify("--chat hi"),
                {"chat template", "exceeds 16777216 bytes"});
}

TEST_F(HostileTemplate, ChatTemplateListBomb) {
  // [x, x] nesting doubles memory while lengths stay 2.
  std::string t = "{% set ns = namespace(l=[1]) %}{% for i in [";
  for (int i = 0; i < 60; ++i) t += "0,";
  t += "0] %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}x";
  Make(t, kPlainSplit);
  ExpectRefused(Verify("--chat hi"), {"chat template", "rendering exceeded"});
}

TEST_F(HostileTemplate, ChatTemplateDeepNesting) {
  std::string t;
  for (int i = 0; i < 5000; ++i) t += "{% if true %}";
  for (int i = 0; i < 5000; ++i) t += "{% endif %}";
  Make(t, kPlainSplit);
  ExpectRefused(Verify("--chat hi"),
                {"chat template", "nested deeper than 64"});
}

TEST_F(HostileTemplate, ChatTemplateDeepExpression) {
  Make(
      "{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}",
      kPlainSplit);
  ExpectRefused(Verify("--chat hi"),
                {"chat template", "nested deeper than 64"});
}

TEST_F(HostileTemplate, PretokenizerCatastrophicBacktracking) {
  // (a+)+b on a run of 40 'a's without a 'b' backtracks 2^40 ways.
  Make(kPlainTemplate, "(?:a+)+b|\\s+|[^\\s]");
  const std::string text(40, 'a');
  ExpectRefused(Tool("llmverify", Quote(pkg()) + " --tokenize " + text),
                {"pre-tokenizer regex", "(?:a+)+b", "limit"});
  ExpectRefused(Verify("--chat " + text), {"pre-tokenizer regex", "limit"});
}

// ---------------------------------------------------- verification inputs

TEST_F(HostilePackage, ReferenceNpyShapeOverflow) {
  const std::string npy_header =
      "{'descr': '<f4', 'fortran_order': False, "
      "'shape': (4611686018427387904, 4), }";
  std::string npy("\x93NUMPY\x01\x00", 8);
  std::string padded = npy_header;
  while ((10 + padded.size() + 1) % 64 != 0) padded += ' ';
  padded += '\n';
  npy += static_cast<char>(padded.size() & 0xFF);
  npy += static_cast<char>(padded.size() >> 8);
  npy += padded;
  ASSERT_TRUE(WriteStringToFile(dir("logits.npy"), npy).ok());
  const json ref = {{"refs",
                     {{{"input_ids", {1, 2, 3}},
                       {"logits_file", "logits.npy"},
                       {"logits_rows", "last position only"}}}}};
  ASSERT_TRUE(WriteStringToFile(dir("reference.json"), ref.dump()).ok());
  ExpectRefused(Verify("--reference " + Quote(dir("reference.json"))),
                {"logits.npy", "too large"});
}

TEST_F(HostilePackage, ReferenceBundleDeclaresGigabyte) {
  // A zstd frame whose header declares 1 GiB of content but holds 16 bytes.
  std::string z = "\x28\xB5\x2F\xFD";
  z += '\xE0';  // single segment, 8-byte content size
  const uint64_t declared = uint64_t{1} << 30;
  z.append(reinterpret_cast<const char*>(&declared), 8);
  z += std::string("\x81\x00\x00", 3);  // last raw block of 16 bytes
  z += "LLMPREF1xxxxxxxx";
  ASSERT_TRUE(WriteStringToFile(dir("bundle.llmref"), z).ok());
  ExpectRefused(Verify("--reference " + Quote(dir("bundle.llmref"))),
                {"bundle.llmref", "reference bundle"});
}

TEST_F(HostilePackage, EvalTokenIdOutOfRange) {
  ASSERT_TRUE(WriteStringToFile(dir("ids.txt"), "1 2 3 999999 4 5\n").ok());
  ExpectRefused(Verify("--eval " + Quote(dir("ids.txt"))), {"999999"});
}

TEST_F(HostilePackage, EvalWindowsDeepJsonNesting) {
  ASSERT_TRUE(WriteStringToFile(dir("eval.json"),
                                "{\"windows\": " + std::string(100000, '[') +
                                    std::string(100000, ']') + "}")
                  .ok());
  ExpectRefused(Verify("--eval " + Quote(dir("eval.json"))), {"eval.json"});
}

}  // namespace
}  // namespace llmpack::hostile
