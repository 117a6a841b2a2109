#include "verify/reference.h"

#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "llmpack/file_util.h"
#include "llmpack/status_macros.h"
#include "verify/npy.h"

namespace llmpack::verify {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kBundleMagic[8] = {'L', 'L', 'M', 'P', 'R', 'E', 'F', '1'};
constexpr int kZstdLevel = 9;

template <typename T>
absl::StatusOr<std::vector<T>> IntList(const json& j, const char* key,
                                       const std::string& context) {
  if (!j.contains(key) || !j[key].is_array()) {
    return absl::DataLossError(
        absl::StrCat(context, ": missing array '", key, "'"));
  }
  std::vector<T> out;
  for (const json& v : j[key]) {
    if (!v.is_number_integer()) {
      return absl::DataLossError(
          absl::StrCat(context, ": '", key, "' holds a non-integer"));
    }
    out.push_back(v.get<T>());
  }
  return out;
}

absl::StatusOr<ReferenceBundle> ReadFixture(const fs::path& path,
                                            const std::string& text) {
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  const std::string ctx = path.string();
  if (root.is_discarded() || !root.is_object() || !root.contains("refs")) {
    return absl::DataLossError(absl::StrCat(
        ctx,
        ": neither an llmpack reference bundle nor a JSON object with "
        "'refs'"));
  }
  ReferenceBundle bundle;
  bundle.format = "fixture-reference";
  if (root.contains("config")) bundle.info["config"] = root["config"];
  int index = 0;
  for (const json& ref : root["refs"]) {
    const std::string cctx = absl::StrCat(ctx, ": refs[", index, "]");
    ReferenceCase c;
    c.name = absl::StrCat("case ", index++);
    ASSIGN_OR_RETURN(c.input_ids, IntList<int32_t>(ref, "input_ids", cctx));
    if (c.input_ids.empty()) {
      return absl::DataLossError(absl::StrCat(cctx, ": empty input_ids"));
    }
    if (ref.contains("greedy_continuation")) {
      ASSIGN_OR_RETURN(c.greedy,
                       IntList<int32_t>(ref, "greedy_continuation", cctx));
    }
    if (!ref.contains("logits_file") || !ref["logits_file"].is_string()) {
      return absl::DataLossError(absl::StrCat(cctx, ": missing logits_file"));
    }
    ASSIGN_OR_RETURN(
        NpyArray npy,
        ReadNpy(path.parent_path() / ref["logits_file"].get<std::string>()));
    const std::string rows = ref.value("logits_rows", "all positions");
    const int64_t n = static_cast<int64_t>(c.input_ids.size());
    if (rows == "last position only") {
      c.logits.positions = {n - 1};
    } else if (rows == "all positions") {
      c.logits.positions.resize(static_cast<size_t>(n));
      std::iota(c.logits.positions.begin(), c.logits.positions.end(), 0);
    } else {
      return absl::DataLossError(
          absl::StrCat(cctx, ": unknown logits_rows '", rows, "'"));
    }
    if (npy.shape.size() != 2 ||
        npy.shape[0] != static_cast<int64_t>(c.logits.positions.size())) {
      return absl::DataLossError(
          absl::StrCat(cctx, ": logits file has ", npy.shape.size(), " dims / ",
                       npy.shape.empty() ? 0 : npy.shape[0], " rows, expected ",
                       c.logits.positions.size(), " rows (", rows, ")"));
    }
    c.logits.vocab = npy.shape[1];
    c.logits.full = std::move(npy.data);
    bundle.cases.push_back(std::move(c));
  }
  return bundle;
}

// Appends raw array bytes to `payload` and describes them in JSON.
template <typename T>
json PutArray(const std::vector<T>& v, std::string* payload) {
  json d = {{"offset", payload->size()}, {"count", v.size()}};
  payload->append(reinterpret_cast<const char*>(v.data()),
                  v.size() * sizeof(T));
  return d;
}

template <typename T>
absl::Status GetArray(const json& arrays, const char* key,
                      const std::string& payload, const std::string& ctx,
                      std::vector<T>* out) {
  if (!arrays.contains(key)) {
    out->clear();
    return absl::OkStatus();
  }
  const uint64_t offset = arrays[key].value("offset", uint64_t{0});
  const uint64_t count = arrays[key].value("count", uint64_t{0});
  if (offset > payload.size() ||
      count > (payload.size() - offset) / sizeof(T)) {
    return absl::DataLossError(
        absl::StrCat(ctx, ": array '", key, "' runs past the end of the data"));
  }
  out->resize(count);
  std::memcpy(out->data(), payload.data() + offset, count * sizeof(T));
  return absl::OkStatus();
}

absl::StatusOr<ReferenceBundle> ReadBundle(const fs::path& path,
                                           const std::string& compressed) {
  const std::string ctx = path.string();
  const unsigned long long size =
      ZSTD_getFrameContentSize(compressed.data(), compressed.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
    return absl::DataLossError(
        absl::StrCat(ctx, ": corrupt zstd frame in reference bundle"));
  }
  // The frame's declared size is not trusted with an allocation (a few bytes
  // can declare terabytes): decompress in chunks and grow as data arrives.
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(),
                                                          ZSTD_freeDCtx);
  std::string raw;
  ZSTD_inBuffer in = {compressed.data(), compressed.size(), 0};
  std::string chunk(ZSTD_DStreamOutSize(), '\0');
  size_t ret = 1;
  while (ret != 0 && raw.size() <= size) {
    ZSTD_outBuffer out = {chunk.data(), chunk.size(), 0};
    ret = ZSTD_decompressStream(dctx.get(), &out, &in);
    if (ZSTD_isError(ret)) {
      return absl::DataLossError(absl::StrCat(
          ctx,
          ": cannot decompress reference bundle: ", ZSTD_getErrorName(ret)));
    }
    raw.append(chunk.data(), out.pos);
    if (ret != 0 && in.pos == in.size && out.pos < out.size) break;
  }
  if (ret != 0 || raw.size() != size) {
    return absl::DataLossError(
        absl::StrCat(ctx, ": reference bundle declares ", size,
                     " bytes but its zstd frame holds ", raw.size(),
                     ret != 0 ? " before it ends (truncated)" : ""));
  }
  if (raw.size() < 16 || std::memcmp(raw.data(), kBundleMagic, 8) != 0) {
    return absl::DataLossError(
        absl::StrCat(ctx, ": zstd data is not an llmpack reference bundle"));
  }
  uint64_t json_len;
  std::memcpy(&json_len, raw.data() + 8, 8);
  if (json_len > raw.size() - 16) {
    return absl::DataLossError(absl::StrCat(ctx, ": truncated bundle header"));
  }
  json root = json::parse(raw.substr(16, json_len), nullptr, false);
  const std::string payload = raw.substr(16 + json_len);
  if (root.is_discarded() || root.value("format", "") != kBundleFormat) {
    return absl::DataLossError(absl::StrCat(ctx, ": bad bundle header JSON"));
  }
  if (root.value("version", 0) != kBundleVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat(ctx, ": bundle version ", root.value("version", 0),
                     ", this reader knows ", kBundleVersion));
  }
  ReferenceBundle bundle;
  bundle.format = kBundleFormat;
  bundle.info = root.value("info", json::object());
  int index = 0;
  for (const json& jc : root.value("cases", json::array())) {
    const std::string cctx = absl::StrCat(ctx, ": cases[", index++, "]");
    ReferenceCase c;
    c.name = jc.value("name", cctx);
    ASSIGN_OR_RETURN(c.input_ids, IntList<int32_t>(jc, "input_ids", cctx));
    ASSIGN_OR_RETURN(c.greedy, IntList<int32_t>(jc, "greedy", cctx));
    ASSIGN_OR_RETURN(c.logits.positions,
                     IntList<int64_t>(jc, "positions", cctx));
    c.logits.vocab = jc.value("vocab", int64_t{0});
    c.logits.top_k = jc.value("top_k", int64_t{0});
    const json arrays = jc.value("arrays", json::object());
    RETURN_IF_ERROR(GetArray(arrays, "full", payload, cctx, &c.logits.full));
    RETURN_IF_ERROR(
        GetArray(arrays, "topk_ids", payload, cctx, &c.logits.topk_ids));
    RETURN_IF_ERROR(
        GetArray(arrays, "topk_values", payload, cctx, &c.logits.topk_values));
    RETURN_IF_ERROR(
        GetArray(arrays, "row_mean", payload, cctx, &c.logits.row_mean));
    RETURN_IF_ERROR(GetArray(arrays, "row_variance", payload, cctx,
                             &c.logits.row_variance));
    RETURN_IF_ERROR(GetArray(arrays, "row_logsumexp", payload, cctx,
                             &c.logits.row_logsumexp));
    const size_t rows = c.logits.positions.size();
    const size_t want = c.logits.top_k == 0
                            ? rows * static_cast<size_t>(c.logits.vocab)
                            : rows * static_cast<size_t>(c.logits.top_k);
    const size_t have = c.logits.top_k == 0 ? c.logits.full.size()
                                            : c.logits.topk_values.size();
    if (have != want ||
        (c.logits.top_k > 0 && (c.logits.topk_ids.size() != want ||
                                c.logits.row_logsumexp.size() != rows))) {
      return absl::DataLossError(absl::StrCat(
          cctx, ": logits arrays hold ", have, " values, expected ", want));
    }
    for (int64_t p : c.logits.positions) {
      if (p < 0 || p >= static_cast<int64_t>(c.input_ids.size())) {
        return absl::DataLossError(
            absl::StrCat(cctx, ": position ", p, " outside the input"));
      }
    }
    bundle.cases.push_back(std::move(c));
  }
  return bundle;
}

}  // namespace

absl::StatusOr<ReferenceBundle> ReadReference(const fs::path& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  if (bytes.size() >= 4 && static_cast<uint8_t>(bytes[0]) == 0x28 &&
      static_cast<uint8_t>(bytes[1]) == 0xB5 &&
      static_cast<uint8_t>(bytes[2]) == 0x2F &&
      static_cast<uint8_t>(bytes[3]) == 0xFD) {
    return ReadBundle(path, bytes);
  }
  return ReadFixture(path, bytes);
}

absl::Status WriteReferenceBundle(const fs::path& path,
                                  const ReferenceBundle& bundle) {
  std::string payload;
  json cases = json::array();
  for (const ReferenceCase& c : bundle.cases) {
    json arrays = json::object();
    if (c.logits.top_k == 0) {
      arrays["full"] = PutArray(c.logits.full, &payload);
    } else {
      arrays["topk_ids"] = PutArray(c.logits.topk_ids, &payload);
      arrays["topk_values"] = PutArray(c.logits.topk_values, &payload);
      arrays["row_mean"] = PutArray(c.logits.row_mean, &payload);
      arrays["row_variance"] = PutArray(c.logits.row_variance, &payload);
      arrays["row_logsumexp"] = PutArray(c.logits.row_logsumexp, &payload);
    }
    cases.push_back({{"name", c.name},
                     {"input_ids", c.input_ids},
                     {"greedy", c.greedy},
                     {"positions", c.logits.positions},
                     {"vocab", c.logits.vocab},
                     {"top_k", c.logits.top_k},
                     {"arrays", arrays}});
  }
  const std::string header = json{
      {"format", kBundleFormat},
      {"version", kBundleVersion},
      {"info", bundle.info},
      {"cases", cases}}.dump();
  std::string raw(kBundleMagic, 8);
  const uint64_t len = header.size();
  raw.append(reinterpret_cast<const char*>(&len), 8);
  raw += header;
  raw += payload;
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  const size_t n =
      ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), kZstdLevel);
  if (ZSTD_isError(n)) {
    return absl::InternalError(absl::StrCat("zstd compression failed for ",
                                            path.string(), ": ",
                                            ZSTD_getErrorName(n)));
  }
  out.resize(n);
  return WriteStringToFile(path, out);
}

ReferenceLogits ReduceToTopK(const std::vector<float>& rows, int64_t vocab,
                             std::vector<int64_t> positions, int64_t top_k) {
  ReferenceLogits r;
  r.vocab = vocab;
  r.top_k = std::min(top_k, vocab);
  r.positions = std::move(positions);
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  for (size_t row = 0; row < r.positions.size(); ++row) {
    const float* l = rows.data() + row * vocab;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + r.top_k, order.end(),
                      [&](int32_t a, int32_t b) {
                        return l[a] > l[b] || (l[a] == l[b] && a < b);
                      });
    double sum = 0, max = l[order[0]];
    for (int64_t i = 0; i < vocab; ++i) sum += l[i];
    const double mean = sum / vocab;
    double var = 0, lse = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      var += (l[i] - mean) * (l[i] - mean);
      lse += std::exp(l[i] - max);
    }
    r.row_mean.push_back(static_cast<float>(mean));
    r.row_variance.push_back(static_cast<float>(var / vocab));
    r.row_logsumexp.push_back(static_cast<float>(max + std::log(lse)));
    for (int64_t i = 0; i < r.top_k; ++i) {
      r.topk_ids.push_back(order[i]);
      r.topk_values.push_back(l[order[i]]);
    }
  }
  return r;
}

absl::StatusOr<LogitsComparison> CompareLogits(const std::vector<float>& ours,
                                               const ReferenceLogits& ref) {
  const int64_t rows = static_cast<int64_t>(ref.positions.size());
  const int64_t v = ref.vocab;
  if (static_cast<int64_t>(ours.size()) != rows * v) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reference has ", rows, " rows of ", v, " logits, run produced ",
        ours.size(), " values (vocabulary mismatch?)"));
  }
  LogitsComparison c;
  c.rows = rows;
  double sq_err = 0, ref_var_sum = 0, count = 0;
  int64_t agree = 0;
  // Full references: variance over the whole matrix, computed two-pass.
  double ref_mean = 0;
  if (ref.top_k == 0) {
    for (float x : ref.full) ref_mean += x;
    ref_mean /= std::max<double>(1, ref.full.size());
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* o = ours.data() + r * v;
    const int64_t our_top =
        std::max_element(o, o + v) - o;  // first maximum, like argmax
    double dot = 0, no = 0, nr = 0;
    auto add = [&](double a, double b) {
      const double d = a - b;
      sq_err += d * d;
      c.max_abs_error = std::max(c.max_abs_error, std::abs(d));
      dot += a * b;
      no += a * a;
      nr += b * b;
      count += 1;
    };
    if (ref.top_k == 0) {
      const float* f = ref.full.data() + r * v;
      for (int64_t i = 0; i < v; ++i) {
        add(o[i], f[i]);
        ref_var_sum += (f[i] - ref_mean) * (f[i] - ref_mean);
      }
      agree += (std::max_element(f, f + v) - f) == our_top ? 1 : 0;
    } else {
      const int64_t k = ref.top_k;
      for (int64_t i = 0; i < k; ++i) {
        add(o[ref.topk_ids[r * k + i]], ref.topk_values[r * k + i]);
      }
      ref_var_sum += ref.row_variance[r];
      agree += ref.topk_ids[r * k] == our_top ? 1 : 0;
      const double max = o[our_top];
      double lse = 0;
      for (int64_t i = 0; i < v; ++i) lse += std::exp(o[i] - max);
      c.max_logsumexp_error =
          std::max(c.max_logsumexp_error,
                   std::abs(max + std::log(lse) - ref.row_logsumexp[r]));
    }
    const double cosine = (no > 0 && nr > 0) ? dot / std::sqrt(no * nr) : 1.0;
    c.min_cosine = std::min(c.min_cosine, cosine);
  }
  const double mse = count > 0 ? sq_err / count : 0;
  const double var = ref.top_k == 0 ? ref_var_sum / std::max(1.0, count)
                                    : ref_var_sum / std::max<int64_t>(1, rows);
  c.nmse = var > 0 ? mse / var : (mse > 0 ? INFINITY : 0);
  c.top1_agreement = rows > 0 ? static_cast<double>(agree) / rows : 1.0;
  return c;
}

}  // namespace llmpack::verify
