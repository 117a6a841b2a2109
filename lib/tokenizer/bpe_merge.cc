#include "tokenizer/bpe_merge.h"

#include <climits>
#include <queue>

namespace llmpack::tokenizer {
namespace {

constexpr int32_t kNoMerge = INT32_MAX;

// Below this many symbols a rescan of a rank array beats a heap.
constexpr size_t kHeapThreshold = 48;

int32_t PairRank(const MergeTable& table, const Symbol& a, const Symbol& b,
                 int32_t* merged) {
  if (a.id < 0 || b.id < 0) return kNoMerge;
  const MergeResult* m = table.Find(a.id, b.id);
  if (m == nullptr) return kNoMerge;
  *merged = m->id;
  return m->rank;
}

// O(n^2) in the worst case but tiny constants: the usual path for words.
void MergeSmall(const MergeTable& table, std::vector<Symbol>* symbols) {
  std::vector<Symbol>& s = *symbols;
  if (s.size() < 2) return;
  int32_t ranks[kHeapThreshold];
  int32_t merged[kHeapThreshold];
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    ranks[i] = PairRank(table, s[i], s[i + 1], &merged[i]);
  }
  size_t n = s.size();
  while (n > 1) {
    size_t best = 0;
    int32_t best_rank = kNoMerge;
    for (size_t i = 0; i + 1 < n; ++i) {
      if (ranks[i] < best_rank) {
        best_rank = ranks[i];
        best = i;
      }
    }
    if (best_rank == kNoMerge) break;
    s[best].id = merged[best];
    s[best].len += s[best + 1].len;
    for (size_t i = best + 1; i + 1 < n; ++i) {
      s[i] = s[i + 1];
      ranks[i] = ranks[i + 1];
      merged[i] = merged[i + 1];
    }
    --n;
    if (best > 0) {
      ranks[best - 1] =
          PairRank(table, s[best - 1], s[best], &merged[best - 1]);
    }
    if (best + 1 < n) {
      ranks[best] = PairRank(table, s[best], s[best + 1], &merged[best]);
    }
  }
  s.resize(n);
}

struct Candidate {
  int32_t rank;
  int32_t left;  // index of the left symbol (its order in the word)
  int32_t left_id;
  int32_t right_id;
  bool operator>(const Candidate& o) const {
    return rank != o.rank ? rank > o.rank : left > o.left;
  }
};

// O(n log n) with a linked list and a heap of candidate pairs; stale
// candidates are recognised by the ids they were computed for.
void MergeLarge(const MergeTable& table, std::vector<Symbol>* symbols) {
  std::vector<Symbol>& s = *symbols;
  const int32_t n = static_cast<int32_t>(s.size());
  std::vector<int32_t> prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto push = [&](int32_t l) {
    const int32_t r = next[l];
    if (l < 0 || r < 0) return;
    int32_t merged;
    const int32_t rank = PairRank(table, s[l], s[r], &merged);
    if (rank != kNoMerge) heap.push({rank, l, s[l].id, s[r].id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int32_t l = c.left;
    const int32_t r = next[l];
    if (s[l].len == 0 || r < 0 || s[l].id != c.left_id ||
        s[r].id != c.right_id) {
      continue;
    }
    const MergeResult* m = table.Find(c.left_id, c.right_id);
    s[l].id = m->id;
    s[l].len += s[r].len;
    s[r].len = 0;
    next[l] = next[r];
    if (next[r] >= 0) prev[next[r]] = l;
    if (prev[l] >= 0) push(prev[l]);
    push(l);
  }
  size_t out = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (s[i].len != 0) s[out++] = s[i];
  }
  s.resize(out);
}

}  // namespace

void ApplyMerges(const MergeTable& table, std::vector<Symbol>* symbols) {
  if (symbols->size() <= kHeapThreshold) {
    MergeSmall(table, symbols);
  } else {
    MergeLarge(table, symbols);
  }
}

}  // namespace llmpack::tokenizer
