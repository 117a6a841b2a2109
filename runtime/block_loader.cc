#include "runtime/block_loader.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "llmpack/checksum.h"
#include "llmpack/package_layout.h"
#include "llmpack/status_macros.h"
#include "runtime/clock.h"
#include "runtime/huge_mapping.h"

namespace llmpack::runtime {
namespace {

// Address ranges of mapped block files whose pages may vanish (a truncated
// file): a SIGBUS inside one is answered by mapping a zero page over the
// faulting page, so the computation finishes with wrong values that the
// forward pass then discards, having found the file changed. Lock-free so
// the handler may read it.
constexpr int kMaxGuarded = 1024;
struct GuardedRange {
  std::atomic<uintptr_t> begin{0}, end{0};
};
GuardedRange g_guarded[kMaxGuarded];
struct sigaction g_previous_sigbus;
std::once_flag g_sigbus_once;

void OnSigbus(int sig, siginfo_t* info, void* context) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (const GuardedRange& r : g_guarded) {
    const uintptr_t begin = r.begin.load(std::memory_order_acquire);
    if (begin == 0 || addr < begin ||
        addr >= r.end.load(std::memory_order_acquire)) {
      continue;
    }
    const uintptr_t page = addr & ~uintptr_t{4095};
    if (::mmap(reinterpret_cast<void*>(page), 4096, PROT_READ,
               MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) {
      return;  // the load is retried and reads zeros
    }
  }
  // Not ours: whatever was installed before, or the default action (the
  // faulting access repeats and kills the process as it would have).
  if ((g_previous_sigbus.sa_flags & SA_SIGINFO) != 0) {
    g_previous_sigbus.sa_sigaction(sig, info, context);
  } else if (g_previous_sigbus.sa_handler != SIG_DFL &&
             g_previous_sigbus.sa_handler != SIG_IGN) {
    g_previous_sigbus.sa_handler(sig);
  } else {
    ::signal(SIGBUS, SIG_DFL);
  }
}

void InstallSigbusHandler() {
  std::call_once(g_sigbus_once, [] {
    struct sigaction action = {};
    action.sa_sigaction = OnSigbus;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGBUS, &action, &g_previous_sigbus);
  });
}

bool Guard(const uint8_t* data, size_t size) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data);
  for (GuardedRange& r : g_guarded) {
    uintptr_t expected = 0;
    if (r.begin.compare_exchange_strong(expected, 1)) {  // claim the entry
      r.end.store(begin + size, std::memory_order_release);
      r.begin.store(begin, std::memory_order_release);
      return true;
    }
  }
  return false;
}

void Unguard(const uint8_t* data) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data);
  for (GuardedRange& r : g_guarded) {
    if (r.begin.load(std::memory_order_acquire) == begin) {
      r.end.store(0, std::memory_order_release);
      r.begin.store(0, std::memory_order_release);
    }
  }
}

// Fills `w` with views into a whole tensor file held at `base`. Package::Open
// already checked names, shapes and dtypes.
absl::Status BuildWeights(const TensorFileReader& reader, const uint8_t* base,
                          bool verify, BlockWeights* w) {
  auto info = [&](const char* name) -> absl::StatusOr<const TensorInfo*> {
    ASSIGN_OR_RETURN(const TensorInfo* t, reader.Get(name));
    if (verify && Checksum64(base + t->offset, t->size_bytes) != t->checksum) {
      return absl::DataLossError(absl::StrCat(
          reader.path().string(), ": checksum mismatch in tensor ", name));
    }
    return t;
  };
  auto matrix = [&](const char* name, WeightMatrix* m) -> absl::Status {
    ASSIGN_OR_RETURN(const TensorInfo* t, info(name));
    *m = MatrixView(*t, base + t->offset);
    return absl::OkStatus();
  };
  auto vec = [&](const char* name, std::vector<float>* v) -> absl::Status {
    if (reader.Find(name) == nullptr) {
      v->clear();
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(const TensorInfo* t, info(name));
    v->resize(static_cast<size_t>(t->num_elements()));
    ToF32(t->dtype, base + t->offset, v->data(), v->size());
    return absl::OkStatus();
  };
  w->layer = reader.block_index();
  RETURN_IF_ERROR(matrix(kQProj, &w->q));
  RETURN_IF_ERROR(matrix(kKProj, &w->k));
  RETURN_IF_ERROR(matrix(kVProj, &w->v));
  RETURN_IF_ERROR(matrix(kOProj, &w->o));
  RETURN_IF_ERROR(matrix(kGateProj, &w->gate));
  RETURN_IF_ERROR(matrix(kUpProj, &w->up));
  RETURN_IF_ERROR(matrix(kDownProj, &w->down));
  RETURN_IF_ERROR(vec(kInputNorm, &w->input_norm));
  RETURN_IF_ERROR(vec(kPostAttentionNorm, &w->post_attention_norm));
  RETURN_IF_ERROR(vec(kQBias, &w->q_bias));
  RETURN_IF_ERROR(vec(kKBias, &w->k_bias));
  RETURN_IF_ERROR(vec(kVBias, &w->v_bias));
  RETURN_IF_ERROR(vec(kQNorm, &w->q_norm));
  RETURN_IF_ERROR(vec(kKNorm, &w->k_norm));
  return absl::OkStatus();
}

}  // namespace

const char* StreamIoName(StreamIo io) {
  switch (io) {
    case StreamIo::kAuto:
      return "auto";
    case StreamIo::kMap:
      return "map";
    case StreamIo::kCopy:
      return "copy";
  }
  return "?";
}

StreamIo ParseStreamIo(const std::string& name) {
  if (name == "map") return StreamIo::kMap;
  if (name == "copy") return StreamIo::kCopy;
  return StreamIo::kAuto;
}

absl::StatusOr<std::unique_ptr<BlockLoader>> BlockLoader::Create(
    const Package& package, const LoaderOptions& options) {
  auto loader = std::unique_ptr<BlockLoader>(new BlockLoader(package, options));
  loader->rebuild_tried_ =
      std::vector<std::atomic<bool>>(static_cast<size_t>(package.num_layers()));
  InstallSigbusHandler();
  if (options.mode == LoadMode::kResident) {
    loader->resident_.resize(static_cast<size_t>(package.num_layers()));
    for (int64_t l = 0; l < package.num_layers(); ++l) {
      // Mapped through the descriptor Package::Open verified.
      ASSIGN_OR_RETURN(MappedFile map, loader->MapBlock(l));
      if (!Guard(map.data(), map.size())) {
        return absl::ResourceExhaustedError(
            "BlockLoader: too many mapped blocks in this process");
      }
      loader->maps_.push_back(std::move(map));  // unguarded by ~BlockLoader
      const MappedFile& mapped = loader->maps_.back();
      RETURN_IF_ERROR(BuildWeights(package.block(l), mapped.data(),
                                   options.verify_each_load,
                                   &loader->resident_[l]));
      loader->stats_.bytes_read += mapped.size();
      loader->stats_.blocks_loaded += 1;
    }
    loader->stats_.max_resident_blocks = static_cast<int>(package.num_layers());
    return loader;
  }
  loader->prefetcher_ = std::thread([l = loader.get()] { l->PrefetchLoop(); });
  return loader;
}

BlockLoader::~BlockLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (prefetcher_.joinable()) prefetcher_.join();
  for (Slot& slot : slots_) Unmap(slot);
  for (const MappedFile& map : maps_) Unguard(map.data());
}

void BlockLoader::Record(LoaderEvent::Type type, int64_t layer,
                         bool background) {
  if (options_.trace) trace_.push_back({type, layer, background});
}

void BlockLoader::UpdateResident() {
  int resident = 0;
  for (const Slot& s : slots_) resident += s.layer >= 0 ? 1 : 0;
  stats_.max_resident_blocks = std::max(stats_.max_resident_blocks, resident);
}

BlockLoader::Slot* BlockLoader::FindSlot(int64_t layer) {
  for (Slot& s : slots_) {
    if (s.layer == layer) return &s;
  }
  return nullptr;
}

absl::StatusOr<const uint8_t*> BlockLoader::CopyInto(Slot& slot,
                                                     int64_t layer) {
  const TensorFileReader& reader = package_.block(layer);
  const size_t size = reader.file().size();
  Unmap(slot);  // StreamIo::kAuto may have mapped into it before
  if (!options_.drop_page_cache && TakeRebuild(layer)) {
    // read() also copies out of 2 MiB folios ~3x faster than out of small
    // ones: let the first load of each block rebuild them.
    ASSIGN_OR_RETURN(HugeMapping m,
                     MapInHugeFolios(reader.file(), /*rebuild=*/true));
    CountMapping(m);
  }
  // Queue the whole file for reading first: the disk then works on many
  // requests at once instead of the readahead window pread alone would
  // keep in flight (a cheap no-op when the file is cached). Not when
  // mapping: WILLNEED reads into small folios, faults in a MADV_HUGEPAGE
  // mapping read 2 MiB ones, and faster (docs/runtime.md).
  ::posix_fadvise(reader.file().fd(), 0, 0, POSIX_FADV_WILLNEED);
  if (slot.capacity < size) {
    // In 2 MiB pages (fewer TLB misses in the copy and in compute), so also
    // aligned to the 64 bytes every tensor's file offset is aligned to.
    slot.buffer = AllocateHugePages(size);
    if (slot.buffer == nullptr) {
      slot.capacity = 0;
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot allocate ", size, " bytes for ", reader.path().string()));
    }
    slot.capacity = RoundUpToAlignment(size, MappedFile::kHugePageBytes);
  }
  absl::Status read = reader.file().ReadAt(0, {slot.buffer.get(), size});
  // A write or truncation before or during the copy changed the file's
  // size or modification time by now: name that rather than a short read.
  RETURN_IF_ERROR(package_.CheckUnchanged(reader));
  RETURN_IF_ERROR(read);
  if (options_.drop_page_cache) {
    ::posix_fadvise(reader.file().fd(), 0, 0, POSIX_FADV_DONTNEED);
  }
  return slot.buffer.get();
}

void BlockLoader::Unmap(Slot& slot) {
  if (slot.mapping.data() == nullptr) return;
  Unguard(slot.mapping.data());
  slot.mapping.Release();
  DropMappedLayer(slot);
}

void BlockLoader::DropMappedLayer(Slot& slot) {
  if (options_.drop_page_cache && slot.mapped_layer >= 0) {
    // Mapped pages are only dropped once no longer mapped, i.e. now.
    ::posix_fadvise(package_.block(slot.mapped_layer).file().fd(), 0, 0,
                    POSIX_FADV_DONTNEED);
  }
  slot.mapped_layer = -1;
}

absl::StatusOr<const uint8_t*> BlockLoader::MapInto(Slot& slot, int64_t layer) {
  const TensorFileReader& reader = package_.block(layer);
  const size_t size = reader.file().size();
  if (slot.mapping.data() == nullptr || slot.mapping.capacity() < size) {
    Unmap(slot);
    RETURN_IF_ERROR(slot.mapping.Reserve(size, reader.path()));
    // Guarded before anything is mapped: Load touches every page.
    if (!Guard(slot.mapping.data(), slot.mapping.capacity())) {
      slot.mapping.Release();
      return absl::ResourceExhaustedError(
          "BlockLoader: too many mapped blocks in this process");
    }
  }
  absl::StatusOr<HugeMapping> m =
      slot.mapping.Load(reader.file(), TakeRebuild(layer));
  DropMappedLayer(slot);  // the previous block's pages are unmapped now
  slot.mapped_layer = layer;
  // A truncated file reads short: name the change rather than the read.
  RETURN_IF_ERROR(package_.CheckUnchanged(reader));
  if (!m.ok()) return m.status();
  CountMapping(*m);
  return slot.mapping.data();
}

bool BlockLoader::TakeRebuild(int64_t layer) {
  // The first map of each block may rebuild its page cache in 2 MiB folios
  // (huge_mapping.h); if that did not give huge mappings, this kernel or
  // filesystem does not make them, and later blocks are not re-read.
  return huge_folios_possible_.load() &&
         !rebuild_tried_[static_cast<size_t>(layer)].exchange(true);
}

void BlockLoader::CountMapping(const HugeMapping& m) {
  if (m.rebuilt && !m.huge) huge_folios_possible_.store(false);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.huge_checked_loads += m.huge ? 1 : 0;
  stats_.page_cache_rebuilds += m.rebuilt ? 1 : 0;
}

absl::StatusOr<MappedFile> BlockLoader::MapBlock(int64_t layer) {
  ASSIGN_OR_RETURN(HugeMapping m, MapInHugeFolios(package_.block(layer).file(),
                                                  TakeRebuild(layer)));
  CountMapping(m);
  return std::move(m.map);
}

bool BlockLoader::MapsNextLoad() const {
  switch (options_.stream_io) {
    case StreamIo::kMap:
      return true;
    case StreamIo::kCopy:
      return false;
    case StreamIo::kAuto:
      return huge_folios_possible_.load();
  }
  return false;
}

absl::Status BlockLoader::LoadInto(Slot& slot, int64_t layer, bool* mapped) {
  const TensorFileReader& reader = package_.block(layer);
  const bool map = MapsNextLoad();
  absl::StatusOr<const uint8_t*> base =
      map ? MapInto(slot, layer) : CopyInto(slot, layer);
  if (!base.ok()) return base.status();
  *mapped = map;
  return BuildWeights(reader, *base, options_.verify_each_load, &slot.weights);
}

void BlockLoader::LoadAndPublish(std::unique_lock<std::mutex>& lock, Slot& slot,
                                 int64_t layer, bool background) {
  Record(LoaderEvent::kLoadStart, layer, background);
  lock.unlock();
  bool mapped = false;
  absl::Status status = LoadInto(slot, layer, &mapped);
  lock.lock();
  slot.status = status;
  slot.state = Slot::kReady;
  slot.background = false;
  // Counted together, so stats() never sees a mapped load that is not yet
  // a loaded block.
  stats_.bytes_read += package_.block(layer).file().size();
  stats_.blocks_loaded += 1;
  if (mapped) stats_.mapped_loads += 1;
  (background ? stats_.prefetched_loads : stats_.sync_loads) += 1;
  Record(LoaderEvent::kLoadEnd, layer, background);
}

void BlockLoader::PrefetchLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    Slot* job = nullptr;
    cv_.wait(lock, [&] {
      if (stop_) return true;
      for (Slot& s : slots_) {
        if (s.state == Slot::kLoading && s.background) job = &s;
      }
      return job != nullptr;
    });
    if (stop_) return;
    LoadAndPublish(lock, *job, job->layer, /*background=*/true);
    cv_.notify_all();
  }
}

absl::StatusOr<const BlockWeights*> BlockLoader::Acquire(int64_t layer) {
  const int64_t layers = package_.num_layers();
  if (layer < 0 || layer >= layers) {
    return absl::OutOfRangeError(
        absl::StrCat("block ", layer, " requested, package has ", layers));
  }
  if (options_.mode == LoadMode::kResident) {
    // Mapped pages show the file as it is now: refuse a changed file before
    // computing with it (see docs/runtime.md for what this cannot catch).
    RETURN_IF_ERROR(package_.CheckUnchanged(package_.block(layer)));
    return &resident_[layer];
  }

  const int64_t start = NowNs();
  std::unique_lock<std::mutex> lock(mu_);
  Slot* slot = FindSlot(layer);
  if (slot == nullptr) {
    // Not prefetched: take a slot nobody uses, letting a prefetch already
    // running into it finish first (reads cannot be interrupted).
    slot = nullptr;
    for (Slot& s : slots_) {
      const bool idle = s.state == Slot::kEmpty || s.state == Slot::kReady;
      if (idle && slot == nullptr) slot = &s;
    }
    for (Slot& s : slots_) {
      if (s.state == Slot::kLoading && slot == nullptr) slot = &s;
    }
    if (slot == nullptr) {
      return absl::FailedPreconditionError(
          "BlockLoader::Acquire: two blocks are already acquired");
    }
    cv_.wait(lock, [&] { return slot->state != Slot::kLoading; });
    slot->layer = layer;
    slot->state = Slot::kLoading;
    slot->background = false;
    UpdateResident();
    LoadAndPublish(lock, *slot, layer, /*background=*/false);
  } else {
    cv_.wait(lock, [&] { return slot->state != Slot::kLoading; });
  }
  stats_.wait_ns += NowNs() - start;
  if (!slot->status.ok()) {
    absl::Status status = slot->status;
    slot->layer = -1;  // a failed read leaves nothing usable
    slot->state = Slot::kEmpty;
    return status;
  }
  slot->state = Slot::kInUse;
  Record(LoaderEvent::kAcquired, layer, false);

  // Start reading the next block into the other slot while this one runs.
  const int64_t next = (layer + 1) % layers;
  if (next != layer && FindSlot(next) == nullptr) {
    Slot* other = slot == &slots_[0] ? &slots_[1] : &slots_[0];
    if (other->state == Slot::kEmpty || other->state == Slot::kReady) {
      other->layer = next;
      other->state = Slot::kLoading;
      other->background = true;
      UpdateResident();
      cv_.notify_all();
    }
  }
  return &slot->weights;
}

void BlockLoader::Release(int64_t layer) {
  if (options_.mode == LoadMode::kResident) return;
  std::lock_guard<std::mutex> lock(mu_);
  Slot* slot = FindSlot(layer);
  if (slot != nullptr && slot->state == Slot::kInUse) {
    slot->state = Slot::kReady;
    Record(LoaderEvent::kReleased, layer, false);
  }
}

LoaderStats BlockLoader::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

std::vector<LoaderEvent> BlockLoader::trace() const {
  std::lock_guard<std::mutex> lock(mu_);
  return trace_;
}

}  // namespace llmpack::runtime
