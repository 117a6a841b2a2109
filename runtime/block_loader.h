// Supplies the weights of one transformer block at a time.
//
// Stream mode (default): two slots. Acquire(i) returns block i (loading it
// now if it was not prefetched) and immediately asks a background thread to
// load block i+1 (mod layers) into the other slot, so the load overlaps
// block i's compute. A slot is only refilled after its block was released,
// so at most two blocks are ever in memory. A slot maps its block file and
// populates the mapping on the prefetch thread (no copy: the weights are the
// page cache's pages, as in resident mode, replaced when the slot is
// refilled; SlotMapping), or copies the file into a private buffer after
// queueing it whole with posix_fadvise(WILLNEED) (StreamIo). Resident mode:
// every block file is mapped and populated once, at creation. Mappings ask
// for 2 MiB pages (huge_mapping.h).
//
// Checksums: Package::Open hashed every file (unless disabled); a load only
// checks, with one fstat, that the file was not truncated or written to
// since (Package::CheckUnchanged), and re-hashes its tensors only with
// verify_each_load. Mapped blocks (stream or resident) are checked at each
// load and Acquire, and the forward pass checks every file again before it
// returns logits (model.cc). A mapped page that a truncation removed would
// raise SIGBUS when computed with; the loader installs a SIGBUS handler that
// maps a zero page there instead (for addresses inside its mappings only;
// any other SIGBUS goes to the previous handler), so the run reports the
// changed file instead of dying. docs/runtime.md has the details.
//
// Ownership: the loader owns its slots (buffers or mappings) and its
// prefetch thread; a block returned by Acquire stays valid until its Release.
// Thread safety: Acquire/Release must be called from one thread (the
// forward pass), at most one block acquired at a time. stats() and trace()
// may be called from any thread.
#ifndef LLMPACK_RUNTIME_BLOCK_LOADER_H_
#define LLMPACK_RUNTIME_BLOCK_LOADER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "llmpack/mapped_file.h"
#include "runtime/aligned_bytes.h"
#include "runtime/huge_mapping.h"
#include "runtime/kernels.h"
#include "runtime/package.h"

namespace llmpack::runtime {

enum class LoadMode { kStream, kResident };

// How stream mode fills a slot. docs/runtime.md, "Block streaming", has the
// measurements behind the default.
enum class StreamIo {
  // Map the block file (no copy) when its pages can be mapped in 2 MiB
  // entries (huge_mapping.h; the first load of each block checks, and
  // re-reads the file into 2 MiB folios if it is cached in small ones);
  // where they cannot, copy instead, for the rest of the run.
  kAuto,
  kMap,   // always map
  kCopy,  // always copy into a private buffer (2 MiB folios made as in kAuto)
};
const char* StreamIoName(StreamIo io);            // "auto", "map", "copy"
StreamIo ParseStreamIo(const std::string& name);  // kAuto unless map/copy

// One block's weights. Matrices point into the loader's memory (valid until
// Release); the small vectors are widened to f32 at load time.
struct BlockWeights {
  int64_t layer = -1;
  WeightMatrix q, k, v, o, gate, up, down;
  std::vector<float> input_norm, post_attention_norm;
  std::vector<float> q_bias, k_bias, v_bias;  // empty unless qkv_bias
  std::vector<float> q_norm, k_norm;          // empty unless qk_norm
};

struct LoaderOptions {
  LoadMode mode = LoadMode::kStream;
  // Re-hash each tensor (XXH3-64) every time its block is read (stream
  // mode) or once when it is mapped (resident mode), on top of the whole-file
  // checksums of Package::Open. Costs a pass over the model per token.
  bool verify_each_load = false;
  // Stream mode: how a slot is filled (StreamIo).
  StreamIo stream_io = StreamIo::kAuto;
  // Stream mode: once a block is no longer needed, advise the kernel to
  // drop the file's pages (posix_fadvise DONTNEED), so streaming a model
  // larger than memory does not push everything else out of the page cache.
  // Every token then reads from disk: also how cold streaming is measured.
  bool drop_page_cache = false;
  // Record a LoaderEvent for every load, acquire and release.
  bool trace = false;
};

struct LoaderStats {
  uint64_t bytes_read = 0;        // block file bytes read (or mapped)
  uint64_t blocks_loaded = 0;     // block reads (or maps)
  uint64_t prefetched_loads = 0;  // reads done by the background thread
  uint64_t sync_loads = 0;        // reads the compute thread had to do
  int max_resident_blocks = 0;    // most blocks held in memory at once
  int64_t wait_ns = 0;  // time Acquire waited for data (prefetch or read)
  // Mapped loads (resident, or stream mapping): the first load of
  // each block checks that it is mapped in 2 MiB entries (huge_mapping.h),
  // re-reading its file to get there if needed; how many were, and how many
  // re-read.
  uint64_t huge_checked_loads = 0;
  uint64_t page_cache_rebuilds = 0;
  uint64_t mapped_loads = 0;  // stream loads that mapped (others copied)
};

struct LoaderEvent {
  enum Type { kLoadStart, kLoadEnd, kAcquired, kReleased };
  Type type;
  int64_t layer;
  bool background;  // load events: done by the prefetch thread
};

class BlockLoader {
 public:
  // `package` must outlive the loader.
  static absl::StatusOr<std::unique_ptr<BlockLoader>> Create(
      const Package& package, const LoaderOptions& options);
  ~BlockLoader();
  BlockLoader(const BlockLoader&) = delete;
  BlockLoader& operator=(const BlockLoader&) = delete;

  absl::StatusOr<const BlockWeights*> Acquire(int64_t layer);
  void Release(int64_t layer);

  LoadMode mode() const { return options_.mode; }
  LoaderStats stats() const;
  // False once a page cache rebuild failed to give 2 MiB mappings (this
  // kernel or filesystem does not make them): other files of the package
  // mapped elsewhere (the lm file) then skip their rebuild too. Any thread.
  bool huge_folios_possible() const { return huge_folios_possible_.load(); }
  std::vector<LoaderEvent> trace() const;

 private:
  struct Slot {
    enum State { kEmpty, kLoading, kReady, kInUse };
    State state = kEmpty;
    int64_t layer = -1;
    bool background = false;  // the prefetch thread owns the pending read
    AlignedBytes buffer{nullptr, &std::free};
    size_t capacity = 0;
    SlotMapping mapping;        // a mapped load: its range is guarded
    int64_t mapped_layer = -1;  // whose file `mapping` holds
    BlockWeights weights;
    absl::Status status;
  };

  BlockLoader(const Package& package, const LoaderOptions& options)
      : package_(package), options_(options) {}
  // Reads block `layer` into `slot` (no lock held); `mapped` is set when it
  // mapped the file (rather than copying it) successfully.
  absl::Status LoadInto(Slot& slot, int64_t layer, bool* mapped);
  bool MapsNextLoad() const;  // StreamIo resolved for the next load
  // LoadInto's two ways to fill a slot; both return the block's bytes.
  absl::StatusOr<const uint8_t*> CopyInto(Slot& slot, int64_t layer);
  absl::StatusOr<const uint8_t*> MapInto(Slot& slot, int64_t layer);
  // Maps block `layer`'s file in huge folios where possible
  // (huge_mapping.h), counting the outcome in stats_. Any thread.
  absl::StatusOr<MappedFile> MapBlock(int64_t layer);
  // Returns the slot's mapping (dropping its pages if asked).
  void Unmap(Slot& slot);
  // With drop_page_cache: drops the pages of the block the slot mapped.
  void DropMappedLayer(Slot& slot);
  // Whether this load of `layer` may rebuild its page cache (the first).
  bool TakeRebuild(int64_t layer);
  void CountMapping(const HugeMapping& m);  // into stats_
  // With `lock` (on mu_) held on entry and exit: reads `layer` into `slot`
  // with the lock released, then marks the slot ready and counts the read as
  // a prefetch (`background`) or a synchronous load.
  void LoadAndPublish(std::unique_lock<std::mutex>& lock, Slot& slot,
                      int64_t layer, bool background);
  Slot* FindSlot(int64_t layer);
  void Record(LoaderEvent::Type type, int64_t layer, bool background);
  void UpdateResident();
  void PrefetchLoop();

  const Package& package_;
  const LoaderOptions options_;
  // Resident mode.
  std::vector<MappedFile> maps_;
  std::vector<BlockWeights> resident_;
  // Stream mode.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Slot slots_[2];
  bool stop_ = false;
  std::thread prefetcher_;
  LoaderStats stats_;
  std::vector<LoaderEvent> trace_;
  // MapBlock: whether a block's page cache was already offered a rebuild,
  // and whether rebuilding can give huge mappings at all.
  std::vector<std::atomic<bool>> rebuild_tried_;
  std::atomic<bool> huge_folios_possible_{true};
};

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_BLOCK_LOADER_H_
