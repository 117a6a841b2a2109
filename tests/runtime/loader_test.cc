// Package validation and the streaming block loader: the two-block bound,
// prefetch overlapping compute, and clear errors for corrupt packages.
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmpack/file_util.h"
#include "llmpack/mapped_file.h"
#include "llmpack/package_layout.h"
#include "nlohmann/json.hpp"
#include "runtime/block_loader.h"
#include "runtime/model.h"
#include "runtime/package.h"
#include "runtime/test_package.h"
#include "support/test_paths.h"

namespace llmpack::runtime {
namespace {

using ::llmpack::testing::ScopedTempDir;
using ::llmpack::testing::TinyConfig;
using ::llmpack::testing::WriteTestPackage;
using ::testing::HasSubstr;

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = TinyConfig();
    config_.num_layers = 4;
    ASSERT_TRUE(WriteTestPackage(dir_.path(), config_, DType::kBF16, 1).ok());
    auto package = Package::Open(dir_.path(), {});
    ASSERT_TRUE(package.ok()) << package.status();
    package_ = std::move(*package);
  }
  ScopedTempDir dir_;
  ModelConfig config_;
  std::unique_ptr<Package> package_;
};

int Count(const std::vector<LoaderEvent>& trace, LoaderEvent::Type type) {
  int n = 0;
  for (const LoaderEvent& e : trace) n += e.type == type ? 1 : 0;
  return n;
}

TEST_F(LoaderTest, StreamNeverHoldsMoreThanTwoBlocks) {
  LoaderOptions options;
  options.trace = true;
  auto loader = BlockLoader::Create(*package_, options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  const int passes = 3;
  for (int pass = 0; pass < passes; ++pass) {
    for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
      auto w = (*loader)->Acquire(layer);
      ASSERT_TRUE(w.ok()) << w.status();
      EXPECT_EQ((*w)->layer, layer);
      EXPECT_EQ((*w)->q.rows, config_.q_dim());
      EXPECT_EQ((*w)->input_norm.size(), size_t(config_.hidden_size));
      (*loader)->Release(layer);
    }
  }
  const LoaderStats stats = (*loader)->stats();
  EXPECT_LE(stats.max_resident_blocks, 2);
  EXPECT_EQ(stats.max_resident_blocks, 2);
  // Four layers through two slots: every acquire reads its block once, and
  // the prefetch of block 0 for a next pass also happens after the last.
  EXPECT_GE(stats.blocks_loaded, uint64_t(passes * config_.num_layers));
  EXPECT_LE(stats.blocks_loaded, uint64_t(passes * config_.num_layers + 1));
  EXPECT_EQ(stats.sync_loads, 1u);  // only block 0 of the first pass
  EXPECT_EQ(stats.bytes_read,
            stats.blocks_loaded * package_->block(0).file().size());
  const auto trace = (*loader)->trace();
  EXPECT_EQ(Count(trace, LoaderEvent::kAcquired), passes * 4);
  EXPECT_EQ(Count(trace, LoaderEvent::kReleased), passes * 4);
}

// Mapped or copied, a block's weights are the file's bytes; kAuto maps
// here (blocks smaller than 2 MiB need no huge folios to be mapped whole).
TEST_F(LoaderTest, EveryStreamIoGivesTheFileBytes) {
  for (StreamIo io : {StreamIo::kAuto, StreamIo::kMap, StreamIo::kCopy}) {
    SCOPED_TRACE(StreamIoName(io));
    EXPECT_EQ(ParseStreamIo(StreamIoName(io)), io);
    LoaderOptions options;
    options.stream_io = io;
    auto loader = BlockLoader::Create(*package_, options);
    ASSERT_TRUE(loader.ok()) << loader.status();
    for (int pass = 0; pass < 2; ++pass) {
      for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
        auto w = (*loader)->Acquire(layer);
        ASSERT_TRUE(w.ok()) << w.status();
        const TensorFileReader& file = package_->block(layer);
        auto gate = file.Get(kGateProj);
        ASSERT_TRUE(gate.ok());
        std::vector<uint8_t> expected((*gate)->size_bytes);
        ASSERT_TRUE(
            file.file().ReadAt((*gate)->offset, absl::MakeSpan(expected)).ok());
        EXPECT_EQ(
            std::memcmp((*w)->gate.data, expected.data(), expected.size()), 0);
        (*loader)->Release(layer);
      }
    }
    const LoaderStats stats = (*loader)->stats();
    EXPECT_EQ(stats.mapped_loads,
              io == StreamIo::kCopy ? 0u : stats.blocks_loaded);
    EXPECT_LE(stats.max_resident_blocks, 2);
  }
}

// A compute step that cannot finish until the loader has started reading
// the next block proves the read runs concurrently with compute: a loader
// that only read on Acquire would make this wait time out.
TEST_F(LoaderTest, PrefetchOfNextBlockStartsBeforeComputeEnds) {
  LoaderOptions options;
  options.trace = true;
  auto loader = BlockLoader::Create(*package_, options);
  ASSERT_TRUE(loader.ok());
  BlockLoader& l = **loader;
  for (int64_t layer = 0; layer + 1 < config_.num_layers; ++layer) {
    ASSERT_TRUE(l.Acquire(layer).ok());
    bool started = false;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!started && std::chrono::steady_clock::now() < deadline) {
      for (const LoaderEvent& e : l.trace()) {
        started = started || (e.type == LoaderEvent::kLoadStart &&
                              e.layer == layer + 1 && e.background);
      }
      if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_TRUE(started) << "prefetch of block " << layer + 1
                         << " never started while block " << layer
                         << " was computing";
    l.Release(layer);
  }
  // In the recorded order, each prefetch start precedes the release (end of
  // compute) of the block before it.
  const auto trace = l.trace();
  for (int64_t layer = 0; layer + 1 < config_.num_layers; ++layer) {
    size_t start = trace.size(), release = trace.size();
    for (size_t i = 0; i < trace.size(); ++i) {
      const LoaderEvent& e = trace[i];
      if (e.type == LoaderEvent::kLoadStart && e.layer == layer + 1 &&
          start == trace.size()) {
        start = i;
      }
      if (e.type == LoaderEvent::kReleased && e.layer == layer &&
          release == trace.size()) {
        release = i;
      }
    }
    EXPECT_LT(start, release) << "layer " << layer;
  }
  EXPECT_LE(l.stats().max_resident_blocks, 2);
}

TEST_F(LoaderTest, ResidentAndStreamGiveTheSameWeights) {
  auto stream = BlockLoader::Create(*package_, {});
  LoaderOptions resident_options;
  resident_options.mode = LoadMode::kResident;
  auto resident = BlockLoader::Create(*package_, resident_options);
  ASSERT_TRUE(stream.ok() && resident.ok());
  for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
    auto a = (*stream)->Acquire(layer);
    auto b = (*resident)->Acquire(layer);
    ASSERT_TRUE(a.ok() && b.ok());
    const size_t bytes = (*a)->down.rows * (*a)->down.cols * 2;
    EXPECT_EQ(std::memcmp((*a)->down.data, (*b)->down.data, bytes), 0);
    EXPECT_EQ((*a)->post_attention_norm, (*b)->post_attention_norm);
    (*stream)->Release(layer);
    (*resident)->Release(layer);
  }
  EXPECT_EQ((*resident)->stats().blocks_loaded, uint64_t(config_.num_layers));
}

// One and two layers: the "next" block is the block itself or the other
// slot's, so nothing is re-read after the first pass.
TEST(LoaderEdgeTest, OneAndTwoLayerPackagesStayCached) {
  for (int64_t layers : {1, 2}) {
    ScopedTempDir dir;
    ModelConfig config = TinyConfig();
    config.num_layers = layers;
    ASSERT_TRUE(WriteTestPackage(dir.path(), config, DType::kF32, 4).ok());
    auto package = Package::Open(dir.path(), {});
    ASSERT_TRUE(package.ok());
    auto loader = BlockLoader::Create(**package, {});
    ASSERT_TRUE(loader.ok());
    for (int pass = 0; pass < 3; ++pass) {
      for (int64_t layer = 0; layer < layers; ++layer) {
        auto w = (*loader)->Acquire(layer);
        ASSERT_TRUE(w.ok()) << w.status();
        EXPECT_EQ((*w)->layer, layer);
        (*loader)->Release(layer);
      }
    }
    EXPECT_EQ((*loader)->stats().blocks_loaded, uint64_t(layers));
    EXPECT_LE((*loader)->stats().max_resident_blocks, 2);
  }
}

TEST_F(LoaderTest, AcquireOutOfRangeIsAnError) {
  auto loader = BlockLoader::Create(*package_, {});
  ASSERT_TRUE(loader.ok());
  EXPECT_EQ((*loader)->Acquire(99).status().code(),
            absl::StatusCode::kOutOfRange);
}

// Overwrites `count` bytes at `offset` of a file.
void Scribble(const std::filesystem::path& path, uint64_t offset, int count) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  for (int i = 0; i < count; ++i) f.put(static_cast<char>(0x5A + i));
}

uint64_t TensorOffset(const std::filesystem::path& file, const char* name) {
  auto reader = TensorFileReader::Open(file);
  EXPECT_TRUE(reader.ok());
  return (*reader).Find(name)->offset;
}

TEST_F(LoaderTest, ChecksumMismatchIsReportedWithTheFileName) {
  const auto block = dir_.path() / "block_001.bin";
  Scribble(block, TensorOffset(block, kUpProj) + 8, 4);
  auto package = Package::Open(dir_.path(), {});
  ASSERT_FALSE(package.ok());
  EXPECT_EQ(package.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(package.status().message()),
              HasSubstr("block_001.bin"));
  EXPECT_THAT(std::string(package.status().message()), HasSubstr("checksum"));
}

// Files are checksummed once, at open; later changes to them are caught by
// size and modification time. The package's files get a modification time an
// hour back, as a package written long ago has, so a write now changes it
// even where timestamps are coarse (otherwise the test would race the tick).
class ChangedFileTest : public LoaderTest {
 protected:
  void SetUp() override {
    LoaderTest::SetUp();
    for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
      std::filesystem::last_write_time(
          entry.path(), std::filesystem::last_write_time(entry.path()) -
                            std::chrono::hours(1));
    }
  }

  // Opens the package, feeds a prompt (so the session is mid-generation),
  // applies `change` to the package's files, then feeds one more token.
  absl::Status NextTokenAfter(const std::function<void()>& change,
                              LoadMode mode = LoadMode::kStream,
                              bool verify_each_load = false,
                              std::vector<float>* logits = nullptr) {
    ModelOptions options;
    options.mode = mode;
    options.threads = 1;
    options.verify_each_load = verify_each_load;
    options.stream_io = stream_io_;
    auto model = Model::Open(dir_.path(), options);
    if (!model.ok()) return model.status();
    Session session(**model, 8);
    std::vector<float> scratch;
    if (logits == nullptr) logits = &scratch;
    const int32_t prompt[] = {1, 5, 7};
    absl::Status status = session.Forward(prompt, LogitsRows::kLast, logits);
    if (!status.ok()) return status;
    change();
    const int32_t next[] = {3};
    return session.Forward(next, LogitsRows::kLast, logits);
  }

  std::filesystem::path Block(int i) const {
    return dir_.path() / BlockFileName(i);
  }
  StreamIo stream_io_ = StreamIo::kAuto;  // the default
};

TEST_F(ChangedFileTest, StreamBlockTruncatedBetweenTokensIsAnError) {
  const auto block = Block(2);
  const uint64_t size = std::filesystem::file_size(block);
  absl::Status status =
      NextTokenAfter([&] { std::filesystem::resize_file(block, size / 2); });
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()), HasSubstr("block_002.bin"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr(absl::StrCat("changed while in use: ", size,
                                     " bytes when the package was opened, "
                                     "now ",
                                     size / 2)));
}

TEST_F(ChangedFileTest, MappedBlockTruncatedBetweenTokensIsAnError) {
  stream_io_ = StreamIo::kMap;
  const auto block = Block(2);
  absl::Status status =
      NextTokenAfter([&] { std::filesystem::resize_file(block, 100); });
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("block_002.bin"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("changed while in use"));
}

// A truncation while a mapped block computes removes its pages; reading
// them must not kill the process (the loader's SIGBUS guard maps zeros
// there) and the change is then reported. The block is over 2 MiB, so that a
// stream slot maps its first 2 MiB (the rest is copied: huge_mapping.h).
TEST_F(ChangedFileTest, MappedBlockTruncatedDuringComputeIsNotACrash) {
  ModelConfig config = config_;
  config.hidden_size = 256;
  config.head_dim = 64;
  config.ffn_size = 2048;
  for (LoadMode mode : {LoadMode::kStream, LoadMode::kResident}) {
    ScopedTempDir dir;
    ASSERT_TRUE(WriteTestPackage(dir.path(), config, DType::kBF16, 1).ok());
    auto package = Package::Open(dir.path(), {});
    ASSERT_TRUE(package.ok());
    const TensorFileReader& file = (*package)->block(1);
    ASSERT_GT(file.file().size(), MappedFile::kHugePageBytes);
    auto q = file.Get(kQProj);
    ASSERT_TRUE(q.ok());
    ASSERT_LE((*q)->offset + (*q)->size_bytes, MappedFile::kHugePageBytes);
    LoaderOptions options;
    options.mode = mode;
    options.stream_io = StreamIo::kMap;
    auto loader = BlockLoader::Create(**package, options);
    ASSERT_TRUE(loader.ok());
    auto w = (*loader)->Acquire(1);
    ASSERT_TRUE(w.ok()) << w.status();
    std::filesystem::resize_file(dir.path() / BlockFileName(1), 0);
    const auto* bytes = static_cast<const uint8_t*>((*w)->q.data);
    uint64_t sum = 0;  // what a matmul would read, every byte
    for (uint64_t i = 0; i < (*q)->size_bytes; ++i) sum += bytes[i];
    EXPECT_EQ(sum, 0u) << "the vanished pages read as zeros";
    (*loader)->Release(1);
    absl::Status status = (*package)->CheckUnchanged();
    EXPECT_THAT(std::string(status.message()), HasSubstr("block_001.bin"));
    EXPECT_THAT(std::string(status.message()),
                HasSubstr("changed while in use"));
  }
}

TEST_F(ChangedFileTest, StreamBlockOverwrittenInPlaceBetweenTokensIsAnError) {
  const auto block = Block(2);
  absl::Status status = NextTokenAfter(
      [&] { Scribble(block, TensorOffset(block, kGateProj) + 2, 4); });
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("block_002.bin"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("written to after the package was opened"));
}

TEST_F(ChangedFileTest, EmbeddingOverwrittenBetweenTokensIsAnError) {
  const auto file = dir_.path() / kEmbeddingFile;
  absl::Status status = NextTokenAfter(
      [&] { Scribble(file, TensorOffset(file, kEmbedTokens) + 2, 4); });
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr(kEmbeddingFile));
  EXPECT_THAT(std::string(status.message()), HasSubstr("changed while in use"));
}

// Replacing a file by rename (as llmconvert/llmquant replace a package)
// leaves the inode the runtime opened and verified intact: generation goes
// on with the original weights, bit for bit.
TEST_F(ChangedFileTest, StreamBlockReplacedByRenameKeepsTheOpenedFile) {
  std::vector<float> expected, logits;
  ASSERT_TRUE(NextTokenAfter([] {}, LoadMode::kStream, false, &expected).ok());
  ScopedTempDir other;
  ASSERT_TRUE(WriteTestPackage(other.path(), config_, DType::kBF16, 2).ok());
  absl::Status status = NextTokenAfter(
      [&] {
        const auto staged = dir_.path() / "block_002.bin.new";
        std::filesystem::copy_file(other.path() / BlockFileName(2), staged);
        std::filesystem::rename(staged, Block(2));
      },
      LoadMode::kStream, false, &logits);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(logits, expected);
}

// Resident blocks are the file's mapped pages: touching a truncated page
// would raise SIGBUS, so a changed file is refused before its block is used.
TEST_F(ChangedFileTest, ResidentBlockTruncatedBetweenTokensIsAnErrorNotACrash) {
  const auto block = Block(1);
  absl::Status status = NextTokenAfter(
      [&] { std::filesystem::resize_file(block, 4096); }, LoadMode::kResident);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("block_001.bin"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("changed while in use"));
}

// A write that puts the modification time back is invisible to the fstat
// check (which shows loads no longer re-hash); --verify-each-load sees it.
class HiddenWriteTest : public ChangedFileTest {
 protected:
  void HiddenWrite() {
    const auto block = Block(2);
    const auto mtime = std::filesystem::last_write_time(block);
    Scribble(block, TensorOffset(block, kGateProj) + 2, 4);
    std::filesystem::last_write_time(block, mtime);
  }
};

TEST_F(HiddenWriteTest, IsNotSeenWithoutVerifyEachLoad) {
  EXPECT_TRUE(NextTokenAfter([&] { HiddenWrite(); }).ok());
}

TEST_F(HiddenWriteTest, VerifyEachLoadReportsTheTensor) {
  absl::Status status =
      NextTokenAfter([&] { HiddenWrite(); }, LoadMode::kStream,
                     /*verify_each_load=*/true);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("block_002.bin"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("checksum mismatch in tensor mlp.gate_proj.weight"));
}

TEST_F(LoaderTest, MissingBlockFileIsReported) {
  std::filesystem::remove(dir_.path() / "block_003.bin");
  auto package = Package::Open(dir_.path(), {});
  ASSERT_FALSE(package.ok());
  EXPECT_EQ(package.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(package.status().message()),
              HasSubstr("block_003.bin"));
  EXPECT_THAT(std::string(package.status().message()), HasSubstr("missing"));
}

TEST_F(LoaderTest, ShapeThatDisagreesWithTheManifestIsReported) {
  // Claim a larger FFN in the manifest than the block files hold.
  const auto path = dir_.path() / kManifestFile;
  auto text = ReadFileToString(path);
  ASSERT_TRUE(text.ok());
  nlohmann::json manifest = nlohmann::json::parse(*text);
  manifest["config"]["ffn_size"] = config_.ffn_size + 4;
  ASSERT_TRUE(WriteStringToFile(path, manifest.dump()).ok());
  auto package = Package::Open(dir_.path(), {});
  ASSERT_FALSE(package.ok());
  const std::string message(package.status().message());
  EXPECT_THAT(message, HasSubstr("block_000.bin"));
  EXPECT_THAT(message, HasSubstr("mlp.gate_proj.weight has shape [44, 32]"));
  EXPECT_THAT(message, HasSubstr("implies [48, 32]"));
}

TEST_F(LoaderTest, SkippingChecksumsStillChecksSizes) {
  std::ofstream(dir_.path() / "block_000.bin", std::ios::app | std::ios::binary)
      << "tail";
  auto package = Package::Open(dir_.path(), {/*verify_checksums=*/false});
  ASSERT_FALSE(package.ok());
  EXPECT_THAT(std::string(package.status().message()),
              HasSubstr("block_000.bin"));
}

}  // namespace
}  // namespace llmpack::runtime
