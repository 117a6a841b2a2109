// The BPE merge loop shared by byte-level and SentencePiece-style models.
// A MergeTable maps an adjacent (left id, right id) pair to its priority and
// the merged id; ApplyMerges repeatedly merges the lowest-rank pair, leftmost
// first on ties (what Hugging Face tokenizers and sentencepiece both do).
// MergeTable is immutable after construction and safe to share between
// threads.
#ifndef LLMPACK_TOKENIZER_BPE_MERGE_H_
#define LLMPACK_TOKENIZER_BPE_MERGE_H_

#include <climits>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace llmpack::tokenizer {

struct MergeResult {
  int32_t rank;
  int32_t id;
};

class MergeTable {
 public:
  // Keeps the first (lowest-rank) entry when a pair is added twice.
  void Add(int32_t left, int32_t right, int32_t rank, int32_t merged) {
    if (IsDense(left, right)) {
      if (dense_.empty()) dense_.assign(kDense * kDense, {kNone, -1});
      MergeResult& slot = dense_[left * kDense + right];
      if (slot.rank == kNone) slot = {rank, merged};
      return;
    }
    map_.try_emplace(Key(left, right), MergeResult{rank, merged});
  }
  void Reserve(size_t n) { map_.reserve(n); }
  const MergeResult* Find(int32_t left, int32_t right) const {
    if (IsDense(left, right)) {
      if (dense_.empty()) return nullptr;
      const MergeResult& slot = dense_[left * kDense + right];
      return slot.rank == kNone ? nullptr : &slot;
    }
    auto it = map_.find(Key(left, right));
    return it == map_.end() ? nullptr : &it->second;
  }

 private:
  // Pairs of ids below kDense (the byte tokens of byte-level vocabularies,
  // which every word starts from) live in a flat 512 KB array.
  static constexpr int32_t kDense = 256;
  static constexpr int32_t kNone = INT32_MAX;
  static bool IsDense(int32_t l, int32_t r) {
    return uint32_t(l) < uint32_t(kDense) && uint32_t(r) < uint32_t(kDense);
  }
  static uint64_t Key(int32_t l, int32_t r) {
    return (uint64_t(uint32_t(l)) << 32) | uint32_t(r);
  }
  std::vector<MergeResult> dense_;
  absl::flat_hash_map<uint64_t, MergeResult> map_;
};

// A symbol of a word being merged; id < 0 marks an unknown symbol that never
// merges. start/len locate its bytes in the word.
struct Symbol {
  int32_t id;
  uint32_t start;
  uint32_t len;
};

// Merges `symbols` in place until no adjacent pair is in the table.
void ApplyMerges(const MergeTable& table, std::vector<Symbol>* symbols);

}  // namespace llmpack::tokenizer

#endif  // LLMPACK_TOKENIZER_BPE_MERGE_H_
