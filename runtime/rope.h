// Rotary position embedding frequencies, computed the way Hugging Face
// transformers computes them (float32 inverse frequencies, llama3 scaling
// applied to them), so angles match the reference to the last bit or two.
// Thread-safe: pure functions.
#ifndef LLMPACK_RUNTIME_ROPE_H_
#define LLMPACK_RUNTIME_ROPE_H_

#include <cstdint>
#include <vector>

#include "llmpack/model_config.h"

namespace llmpack::runtime {

// head_dim / 2 inverse frequencies for RoPE type "default" or "llama3".
std::vector<float> RopeInverseFrequencies(const RopeConfig& rope,
                                          int64_t head_dim);

// cos/sin tables for positions [first, first + count): row t holds
// head_dim / 2 values for position first + t.
void RopeTables(const std::vector<float>& inv_freq, int64_t first,
                int64_t count, std::vector<float>* cos,
                std::vector<float>* sin);

}  // namespace llmpack::runtime

#endif  // LLMPACK_RUNTIME_ROPE_H_
