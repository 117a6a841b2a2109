#include "onnx_import/graph_facts.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "llmpack/status_macros.h"

namespace llmpack::onnx_import {
namespace {

std::string Shape(const std::vector<int64_t>& s) {
  return absl::StrCat("[", absl::StrJoin(s, ", "), "]");
}

}  // namespace

absl::Status DeriveFactsAndCheckShapes(const std::string& where,
                                       const LayerEvidence& evidence,
                                       RecoveredModel& model) {
  const std::vector<int64_t>& reshape_q = evidence.reshape_q;
  const std::vector<int64_t>& reshape_k = evidence.reshape_k;
  const RopeEvidence& rope = evidence.rope;
  auto Error = [&](const std::string& msg) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", msg));
  };
  GraphFacts& f = model.facts;
  const LayerWeights& l0 = model.layers[0];
  f.vocab_size = model.embedding.shape[0];
  f.hidden_size = model.embedding.shape[1];
  f.q_dim = l0.q.shape[0];
  f.kv_dim = l0.k.shape[0];
  // Three tensors carry ffn_size; the majority wins, so one malformed
  // tensor is the one blamed.
  f.ffn_size =
      l0.up.shape[0] == l0.down.shape[1] ? l0.up.shape[0] : l0.gate.shape[0];
  f.qkv_bias = l0.q_bias.present();
  f.qk_norm = l0.q_norm.present();
  const int64_t h = f.hidden_size;

  // head_dim evidence, strongest first: the q reshape into heads, the
  // per-head norm size, the RoPE frequency count.
  if (reshape_q[0] > 0 && f.q_dim % reshape_q[0] == 0 &&
      reshape_q[0] < f.q_dim) {
    f.head_dim = reshape_q[0];
    f.head_dim_from = "the Reshape of q into heads";
  } else if (f.qk_norm) {
    f.head_dim = l0.q_norm.shape[0];
    f.head_dim_from = "the q_norm weight size";
  } else if (!rope.inv_freq.empty()) {
    f.head_dim = 2 * static_cast<int64_t>(rope.inv_freq.size());
    f.head_dim_from = "the RoPE inverse-frequency count";
  }
  f.inv_freq = rope.inv_freq;
  f.rope_table_rows = rope.table_rows;
  f.rope_note = rope.note;
  const int64_t hd = f.head_dim;

  auto expect = [&](const std::string& where, const WeightRef& ref,
                    std::vector<int64_t> shape) -> absl::Status {
    if (ref.shape == shape) return absl::OkStatus();
    return Error(absl::StrCat(where, " '", ref.value, "' has shape ",
                              Shape(ref.shape), " in Hugging Face layout, ",
                              "expected ", Shape(shape)));
  };
  RETURN_IF_ERROR(expect("final norm", model.final_norm, {h}));
  RETURN_IF_ERROR(
      expect("output projection", model.lm_head, {f.vocab_size, h}));
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const LayerWeights& w = model.layers[i];
    const std::string p = absl::StrCat("layer ", i, ": ");
    RETURN_IF_ERROR(expect(p + "input norm", w.input_norm, {h}));
    RETURN_IF_ERROR(expect(p + "q projection", w.q, {f.q_dim, h}));
    RETURN_IF_ERROR(expect(p + "k projection", w.k, {f.kv_dim, h}));
    RETURN_IF_ERROR(expect(p + "v projection", w.v, {f.kv_dim, h}));
    RETURN_IF_ERROR(expect(p + "o projection", w.o, {h, f.q_dim}));
    RETURN_IF_ERROR(expect(p + "post-attention norm", w.post_norm, {h}));
    RETURN_IF_ERROR(expect(p + "gate projection", w.gate, {f.ffn_size, h}));
    RETURN_IF_ERROR(expect(p + "up projection", w.up, {f.ffn_size, h}));
    RETURN_IF_ERROR(expect(p + "down projection", w.down, {h, f.ffn_size}));
    if (w.q_bias.present() != f.qkv_bias || w.k_bias.present() != f.qkv_bias ||
        w.v_bias.present() != f.qkv_bias) {
      return Error(p + "q/k/v biases are present on some projections only");
    }
    if (f.qkv_bias) {
      RETURN_IF_ERROR(expect(p + "q bias", w.q_bias, {f.q_dim}));
      RETURN_IF_ERROR(expect(p + "k bias", w.k_bias, {f.kv_dim}));
      RETURN_IF_ERROR(expect(p + "v bias", w.v_bias, {f.kv_dim}));
    }
    if (w.q_norm.present() != f.qk_norm || w.k_norm.present() != f.qk_norm) {
      return Error(p +
                   "q_norm/k_norm are present on some layers or "
                   "projections only");
    }
    if (f.qk_norm) {
      RETURN_IF_ERROR(expect(p + "q_norm", w.q_norm, {hd}));
      RETURN_IF_ERROR(expect(p + "k_norm", w.k_norm, {hd}));
    }
    if (hd > 0 && (reshape_q[i] > 0 && reshape_q[i] != hd)) {
      return Error(absl::StrCat(p, "q is reshaped into heads of ", reshape_q[i],
                                ", but head_dim is ", hd, " (from ",
                                f.head_dim_from, ")"));
    }
    if (hd > 0 && (reshape_k[i] > 0 && reshape_k[i] != hd)) {
      return Error(absl::StrCat(p, "k is reshaped into heads of ", reshape_k[i],
                                ", but head_dim is ", hd, " (from ",
                                f.head_dim_from, ")"));
    }
  }
  if (hd > 0 && (f.q_dim % hd != 0 || f.kv_dim % hd != 0)) {
    return Error(absl::StrCat("q width ", f.q_dim, " and k/v width ", f.kv_dim,
                              " are not multiples of head_dim ", hd, " (from ",
                              f.head_dim_from, ")"));
  }
  return absl::OkStatus();
}

}  // namespace llmpack::onnx_import
