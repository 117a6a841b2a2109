// Structure-aware damage: each case changes one count, offset, shape, dtype,
// group size or scale dtype of a real package (float, q4 and q8 tensors) or
// one field of its manifest, then recomputes the tensor checksums, the
// directory checksum and the manifest's file checksums, so the damage gets
// past every checksum and must be caught by the check behind it. Each case
// asserts the exact status code and the key words of the message, through
// runtime::Package::Open (what llmverify and llmquant's calibration call).
#include <cstring>
#include <functional>

#include "hostile/hostile_support.h"
#include "llmpack/file_util.h"
#include "llmpack/tensor_file.h"
#include "nlohmann/json.hpp"
#include "runtime/package.h"
#include "runtime/test_package.h"

namespace llmpack::hostile {
namespace {

using format::TensorEntry;
using nlohmann::json;

enum class Pkg { kF32, kQ4, kQ8 };

struct Mutation {
  std::string name;
  Pkg package;
  std::string file;  // tensor file to edit ("" for manifest-only cases)
  std::function<void(TensorFileImage&)> edit_tensors;
  std::function<void(json&)> edit_manifest;
  bool fix_file_size = true;
  absl::StatusCode code;
  std::vector<std::string> words;
};

std::ostream& operator<<(std::ostream& os, const Mutation& m) {
  return os << m.name;
}

// The first tensor entry whose name ends with `suffix`.
TensorEntry& Entry(TensorFileImage& f, const std::string& suffix) {
  for (TensorEntry& e : f.entries) {
    const std::string n = e.name;
    if (n.size() >= suffix.size() &&
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return e;
    }
  }
  ADD_FAILURE() << "no tensor *" << suffix;
  return f.entries.front();
}

constexpr uint64_t k2p40 = uint64_t{1} << 40;

std::vector<Mutation> Mutations() {
  using C = absl::StatusCode;
  const std::string block = "block_000.bin";
  auto up = [](TensorFileImage& f) -> TensorEntry& {
    return Entry(f, "mlp.up_proj.weight");
  };
  auto norm = [](TensorFileImage& f) -> TensorEntry& {
    return Entry(f, "input_layernorm.weight");
  };
  return {
      // ---- header counts and offsets
      {"TensorCountRaised",
       Pkg::kF32,
       block,
       [](TensorFileImage& f) { ++f.header.tensor_count; },
       nullptr,
       true,
       C::kDataLoss,
       {"inconsistent header", "tensors)"}},
      {"TensorCountHuge",
       Pkg::kF32,
       "lm.bin",
       [](TensorFileImage& f) {
         f.header.tensor_count = 1u << 31;
         f.header.directory_bytes = (uint64_t{1} << 31) * 192;
       },
       nullptr,
       true,
       C::kDataLoss,
       {"directory runs past the end of file"}},
      {"DirectoryOffsetMoved",
       Pkg::kF32,
       block,
       [](TensorFileImage& f) { f.header.directory_offset = 128; },
       nullptr,
       true,
       C::kDataLoss,
       {"inconsistent header", "directory at 128"}},
      {"AlignmentChanged",
       Pkg::kF32,
       block,
       [](TensorFileImage& f) { f.header.alignment = 32; },
       nullptr,
       true,
       C::kDataLoss,
       {"inconsistent header", "alignment 32"}},
      {"FileSizeFieldTooLarge",
       Pkg::kF32,
       block,
       [](TensorFileImage& f) { f.header.file_size = f.bytes.size() + 64; },
       nullptr,
       false,
       C::kDataLoss,
       {"header says the file is"}},
      {"MajorVersionTwo",
       Pkg::kF32,
       block,
       [](TensorFileImage& f) { f.header.major_version = 2; },
       nullptr,
       true,
       C::kFailedPrecondition,
       {"format version 2.0 is not supported"}},
      {"FileKindUnknown",
       Pkg::kF32,
       block,
       [](TensorFileImage& f) { f.header.file_kind = 9; },
       nullptr,
       true,
       C::kInvalidArgument,
       {"file kind 9 is not 1, 2 or 3"}},
      {"FileKindSwapped",
       Pkg::kF32,
       block,
       [](TensorFileImage& f) { f.header.file_kind = 3; },
       nullptr,
       true,
       C::kInvalidArgument,
       {"file kind is 3, expected 2"}},
      {"HeaderReservedNonZero",
       Pkg::kF32,
       block,
       [](TensorFileImage& f) { f.header.reserved0 = 7; },
       nullptr,
       true,
       C::kDataLoss,
       {"reserved0 must be 0, found 7"}},
      {"BlockIndexWrong",
       Pkg::kF32,
       block,
       [](TensorFileImage& f) { f.header.block_index = 5; },
       nullptr,
       true,
       C::kDataLoss,
       {"header says block index 5, expected 0"}},
      {"TrailingBytes",
       Pkg::kF32,
       block,
       [](TensorFileImage& f) { f.bytes.append(64, '\0'); },
       nullptr,
       true,
       C::kDataLoss,
       {"64 trailing bytes after the last tensor"}},
      // ---- directory entries: names, dtypes, ranks, dims
      {"NameNotTerminated",
       Pkg::kF32,
       block,
       [norm](TensorFileImage& f) {
         std::memset(norm(f).name, 'a', sizeof(norm(f).name));
       },
       nullptr,
       true,
       C::kDataLoss,
       {"name is empty or not terminated"}},
      {"DuplicateTensorName",
       Pkg::kF32,
       block,
       [](TensorFileImage& f) {
         std::strcpy(Entry(f, "post_attention_layernorm.weight").name,
                     "input_layernorm.weight");
       },
       nullptr,
       true,
       C::kDataLoss,
       {"input_layernorm.weight is listed twice"}},
      {"TensorRenamed",
       Pkg::kF32,
       block,
       [norm](TensorFileImage& f) { std::strcpy(norm(f).name, "evil.weight"); },
       nullptr,
       true,
       C::kNotFound,
       {"input_layernorm.weight is missing"}},
      {"DTypeUnknown",
       Pkg::kF32,
       block,
       [up](TensorFileImage& f) { up(f).dtype = 99; },
       nullptr,
       true,
       C::kInvalidArgument,
       {"mlp.up_proj.weight", "unknown dtype code 99"}},
      {"DTypeF32ToF16",
       Pkg::kF32,
       block,
       [up](TensorFileImage& f) { up(f).dtype = 2; },
       nullptr,
       true,
       C::kDataLoss,
       {"mlp.up_proj.weight", "size_bytes should be 2816"}},
      {"RankZero",
       Pkg::kF32,
       block,
       [up](TensorFileImage& f) { up(f).rank = 0; },
       nullptr,
       true,
       C::kDataLoss,
       {"mlp.up_proj.weight has invalid rank 0"}},
      {"RankFive",
       Pkg::kF32,
       block,
       [up](TensorFileImage& f) { up(f).rank = 5; },
       nullptr,
       true,
       C::kDataLoss,
       {"mlp.up_proj.weight has invalid rank 5"}},
      {"DimZero",
       Pkg::kF32,
       block,
       [up](TensorFileImage& f) { up(f).dims[1] = 0; },
       nullptr,
       true,
       C::kDataLoss,
       {"mlp.up_proj.weight has invalid dimension 0"}},
      {"DimAbove2To40",
       Pkg::kF32,
       block,
       [up](TensorFileImage& f) { up(f).dims[0] = k2p40 + 1; },
       nullptr,
       true,
       C::kDataLoss,
       {"mlp.up_proj.weight has invalid dimension 1099511627777"}},
      {"RowsColsSizeOverflow",
       Pkg::kF32,
       block,
       [up](TensorFileImage& f) {
         up(f).rank = 4;
         up(f).dims[0] = up(f).dims[1] = up(f).dims[2] = up(f).dims[3] = k2p40;
       },
       nullptr,
       true,
       C::kDataLoss,
       {"mlp.up_proj.weight", "overflows"}},
      {"ShapeGrownKeepingSize",
       Pkg::kF32,
       block,
       [up](TensorFileImage& f) { up(f).dims[0] += 1; },
       nullptr,
       true,
       C::kDataLoss,
       {"mlp.up_proj.weight [45, 32] f32", "size_bytes should be"}},
      {"ShapeTransposedSelfConsistent",
       Pkg::kF32,
       block,
       [up](TensorFileImage& f) { std::swap(up(f).dims[0], up(f).dims[1]); },
       nullptr,
       true,
       C::kDataLoss,
       {"mlp.up_proj.weight has shape [32, 44]", "config implies [44, 32]"}},
      {"FloatWithGroupSize",
       Pkg::kF32,
       block,
       [norm](TensorFileImage& f) { norm(f).group_size = 32; },
       nullptr,
       true,
       C::kDataLoss,
       {"group_size must be 0 for float type f32, found 32"}},
      {"EntryReservedNonZero",
       Pkg::kF32,
       block,
       [norm](TensorFileImage& f) { norm(f).reserved1[0] = 1; },
       nullptr,
       true,
       C::kDataLoss,
       {"reserved1[0] must be 0"}},
      // ---- offsets and sizes
      {"OffsetMisaligned",
       Pkg::kF32,
       block,
       [up](TensorFileImage& f) { up(f).offset += 1; },
       nullptr,
       true,
       C::kDataLoss,
       {"mlp.up_proj.weight data", "misaligned"}},
      {"OffsetPastEnd",
       Pkg::kF32,
       block,
       [up](TensorFileImage& f) { up(f).offset = f.bytes.size() + 64 * 10; },
       nullptr,
       true,
       C::kDataLoss,
       {"mlp.up_proj.weight data", "outside"}},
      {"OffsetIntoDirectory",
       Pkg::kF32,
       block,
       [up](TensorFileImage& f) { up(f).offset = 64; },
       nullptr,
       true,
       C::kDataLoss,
       {"mlp.up_proj.weight data [64,", "outside"}},
      {"SizeBytesShrunk",
       Pkg::kF32,
       block,
       [up](TensorFileImage& f) { up(f).size_bytes -= 64; },
       nullptr,
       true,
       C::kDataLoss,
       {"size_bytes should be 5632 bytes, directory says 5568"}},
      {"OverlappingTensors",
       Pkg::kF32,
       block,
       [norm](TensorFileImage& f) {
         Entry(f, "post_attention_layernorm.weight").offset = norm(f).offset;
       },
       nullptr,
       true,
       C::kDataLoss,
       {"overlaps tensor"}},
      // ---- quantized tensors
      {"Q4GroupSizeZero",
       Pkg::kQ4,
       block,
       [up](TensorFileImage& f) { up(f).group_size = 0; },
       nullptr,
       true,
       C::kDataLoss,
       {"mlp.up_proj.weight q4", "group_size must be in 1..32"}},
      {"Q4GroupSizeAboveCols",
       Pkg::kQ4,
       block,
       [up](TensorFileImage& f) { up(f).group_size = 33; },
       nullptr,
       true,
       C::kDataLoss,
       {"group_size must be in 1..32", "found 33"}},
      {"Q4GroupSizeHalved",
       Pkg::kQ4,
       block,
       [up](TensorFileImage& f) { up(f).group_size /= 2; },
       nullptr,
       true,
       C::kDataLoss,
       {"mlp.up_proj.weight [44, 32] q4", "size_bytes should be"}},
      {"Q4ScaleDtypeF32",
       Pkg::kQ4,
       block,
       [up](TensorFileImage& f) { up(f).scale_dtype = 1; },
       nullptr,
       true,
       C::kDataLoss,
       {"scale_dtype must be 2 (f16) or 3 (bf16), found 1"}},
      {"Q4UnknownQuantFlag",
       Pkg::kQ4,
       block,
       [up](TensorFileImage& f) { up(f).quant_flags |= 4; },
       nullptr,
       true,
       C::kDataLoss,
       {"quant_flags may only use bits 0x1, found 0x5"}},
      {"Q4ZeroPointFlagDropped",
       Pkg::kQ4,
       block,
       [up](TensorFileImage& f) { up(f).quant_flags = 0; },
       nullptr,
       true,
       C::kDataLoss,
       {"mlp.up_proj.weight [44, 32] q4", "size_bytes should be"}},
      {"Q4EmbeddingDimGrown",
       Pkg::kQ4,
       "embedding.bin",
       [](TensorFileImage& f) { Entry(f, "embed_tokens.weight").dims[0] *= 2; },
       nullptr,
       true,
       C::kDataLoss,
       {"embed_tokens.weight", "size_bytes should be"}},
      {"Q8RelabeledQ4",
       Pkg::kQ8,
       "lm.bin",
       [](TensorFileImage& f) { Entry(f, "lm_head.weight").dtype = 17; },
       nullptr,
       true,
       C::kDataLoss,
       {"lm_head.weight", "q4", "size_bytes should be"}},
      {"Q8ScaleDtypeUnknown",
       Pkg::kQ8,
       "lm.bin",
       [](TensorFileImage& f) { Entry(f, "lm_head.weight").scale_dtype = 77; },
       nullptr,
       true,
       C::kDataLoss,
       {"lm_head.weight", "found 77"}},
      {"Q8NormQuantized",
       Pkg::kQ8,
       "lm.bin",
       [](TensorFileImage& f) { Entry(f, "norm.weight").dtype = 16; },
       nullptr,
       true,
       C::kDataLoss,
       {"norm.weight", "group_size must be in 1..32"}},
      // ---- manifest fields (file checksums recomputed)
      {"ManifestLayerCountRaised",
       Pkg::kF32,
       "",
       nullptr,
       [](json& m) { m["config"]["num_layers"] = 4; },
       true,
       C::kNotFound,
       {"needs file block_003.bin", "does not list it"}},
      {"ManifestHiddenSizeChanged",
       Pkg::kF32,
       "",
       nullptr,
       [](json& m) {
         m["config"]["hidden_size"] = 64;
         m["config"]["head_dim"] = 16;
       },
       true,
       C::kDataLoss,
       {"embed_tokens.weight", "config implies"}},
      {"ManifestVocabShrunk",
       Pkg::kF32,
       "",
       nullptr,
       [](json& m) { m["config"]["vocab_size"] = 50; },
       true,
       C::kDataLoss,
       {"embed_tokens.weight", "config implies [50, 32]"}},
      {"ManifestHeadsNotDividing",
       Pkg::kF32,
       "",
       nullptr,
       [](json& m) { m["config"]["num_kv_heads"] = 3; },
       true,
       C::kInvalidArgument,
       {"manifest.json", "num_heads (4)", "num_kv_heads (3)"}},
      {"ManifestFileSizeLies",
       Pkg::kF32,
       "",
       nullptr,
       [](json& m) {
         m["files"][1]["size"] = m["files"][1]["size"].get<int64_t>() + 1;
       },
       false,
       C::kDataLoss,
       {"manifest says"}},
  };
}

class HostileMutation : public Hostile,
                        public ::testing::WithParamInterface<Mutation> {};

TEST_P(HostileMutation, RefusedBehindTheChecksums) {
  const Mutation& m = GetParam();
  const fs::path pkg = dir("pkg");
  const fs::path f32 = m.package == Pkg::kF32 ? pkg : dir("f32");
  ASSERT_TRUE(
      testing::WriteTestPackage(f32, testing::TinyConfig(), DType::kF32, 7)
          .ok());
  if (m.package != Pkg::kF32) {
    testing::TestQuantization q;
    q.linear.dtype = m.package == Pkg::kQ4 ? DType::kQ4 : DType::kQ8;
    q.linear.group_size = m.package == Pkg::kQ4 ? 8 : 32;
    q.linear.zero_point = m.package == Pkg::kQ4;
    q.embedding = true;
    ASSERT_TRUE(testing::QuantizeTestPackage(f32, pkg, q).ok());
  }
  // The untouched package opens: the damage below is the only fault.
  ASSERT_TRUE(runtime::Package::Open(pkg, {}).ok());
  if (!m.file.empty()) {
    EditTensorFile(pkg / m.file, m.edit_tensors, m.fix_file_size);
  }
  ResealPackage(pkg);  // the manifest vouches for the damaged files
  if (m.edit_manifest) {
    json j = json::parse(*ReadFileToString(pkg / "manifest.json"));
    m.edit_manifest(j);
    ASSERT_TRUE(WriteStringToFile(pkg / "manifest.json", j.dump()).ok());
  }
  const auto opened = runtime::Package::Open(pkg, {});
  ASSERT_FALSE(opened.ok()) << "damage not detected";
  EXPECT_EQ(opened.status().code(), m.code) << opened.status();
  const std::string msg(opened.status().message());
  if (!m.file.empty()) {
    EXPECT_NE(msg.find(m.file), std::string::npos) << msg;
  }
  for (const std::string& w : m.words) {
    EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in " << msg;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, HostileMutation,
                         ::testing::ValuesIn(Mutations()),
                         [](const ::testing::TestParamInfo<Mutation>& info) {
                           return info.param.name;
                         });

// Every mutation that reaches a check behind the checksums must also be
// refused when the checksums are NOT recomputed: the directory checksum
// alone then catches it (a sanity check that recomputing is what lets the
// damage through to the deeper checks).
TEST(HostileMutationSanity, WithoutResealingTheChecksumCatchesIt) {
  testing::ScopedTempDir tmp;
  const fs::path pkg = tmp.path() / "pkg";
  ASSERT_TRUE(
      testing::WriteTestPackage(pkg, testing::TinyConfig(), DType::kF32, 7)
          .ok());
  std::string b = *ReadFileToString(pkg / "block_000.bin");
  b[64 + 96] ^= 1;  // the first entry's dtype, checksum left stale
  ASSERT_TRUE(WriteStringToFile(pkg / "block_000.bin", b).ok());
  const auto reader = TensorFileReader::Open(pkg / "block_000.bin");
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(reader.status().message().find("directory checksum mismatch"),
            std::string::npos);
}

}  // namespace
}  // namespace llmpack::hostile
