// quant_quality: measures how far a quantized package's next-token
// distributions are from its float original, before the runtime can run
// q4/q8 directly: the quantized package is dequantized into an f32 package
// ("fake quant": the reference codec's exact values), then both run over the
// same eval windows. Prints mean / p99 / max KL(p_base || p_quant), top-1
// agreement, both perplexities and the bits per weight of the quantized
// tensors.
//
// usage: quant_quality <base-pkg> <quant-pkg> <eval.json> [work-dir]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "llmpack/file_util.h"
#include "llmpack/manifest.h"
#include "llmpack/package_layout.h"
#include "llmpack/status_macros.h"
#include "llmpack/tensor_file.h"
#include "quant/tensor_f32.h"
#include "quantize/working_package.h"
#include "verify/eval.h"
#include "runtime/model.h"

namespace fs = std::filesystem;
namespace lp = llmpack;

namespace {

struct Bits {
  uint64_t weights = 0;
  uint64_t bytes = 0;
};

// Writes `src` with every tensor widened/dequantized to f32 into `dst` and
// counts the quantized tensors' weights and bytes.
absl::Status Dequantize(const fs::path& src, const fs::path& dst, Bits* bits) {
  ASSIGN_OR_RETURN(lp::Manifest m, lp::ReadManifest(src));
  fs::remove_all(dst);
  fs::create_directories(dst);
  std::vector<lp::ManifestFile> files;
  for (const lp::ExpectedFile& f : lp::ExpectedPackageFiles(m.config)) {
    ASSIGN_OR_RETURN(lp::TensorFileReader r,
                     lp::TensorFileReader::Open(src / f.file_name, f.kind));
    for (const lp::TensorInfo& t : r.tensors()) {
      if (!lp::quant::IsQuantizedTensor(t)) continue;
      bits->weights += static_cast<uint64_t>(t.num_elements());
      bits->bytes += t.size_bytes;
    }
    const lp::ManifestFile* old = m.FindFile(f.file_name);
    ASSIGN_OR_RETURN(lp::ManifestFile written,
                     lp::quantize::WriteDequantizedFile(
                         src / f.file_name, dst / f.file_name, f.kind,
                         f.file_name, old ? old->role : ""));
    files.push_back(std::move(written));
  }
  for (const lp::ManifestFile& f : m.files) {
    if (fs::exists(dst / f.name)) continue;
    fs::copy_file(src / f.name, dst / f.name);
    files.push_back(f);
  }
  m.files = files;
  m.weights_dtype = "f32";
  return lp::WriteManifest(dst, m);
}

struct Row {
  double kl;
  bool agree;
  double nll_base;
  double nll_quant;
};

// Log-softmax of one logits row (double).
void LogSoftmax(const float* x, int64_t n, std::vector<double>* out) {
  out->resize(static_cast<size_t>(n));
  const double mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double{x[i]} - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) (*out)[i] = x[i] - lse;
}

absl::Status Run(const fs::path& base, const fs::path& quant,
                 const fs::path& eval, const fs::path& work) {
  Bits bits;
  RETURN_IF_ERROR(Dequantize(quant, work, &bits));
  lp::runtime::ModelOptions mo;
  mo.mode = lp::runtime::LoadMode::kResident;
  mo.verify_checksums = false;
  ASSIGN_OR_RETURN(auto mb, lp::runtime::Model::Open(base, mo));
  ASSIGN_OR_RETURN(auto mq, lp::runtime::Model::Open(work, mo));
  lp::verify::EvalInputOptions eo;
  ASSIGN_OR_RETURN(lp::verify::EvalSet set,
                   lp::verify::LoadEvalSet(eval, eo));
  const int64_t vocab = mb->config().vocab_size;
  std::vector<Row> rows;
  std::vector<float> lb, lq;
  std::vector<double> pb, pq;
  for (const auto& w : set.windows) {
    const int64_t n = static_cast<int64_t>(w.size()) - 1;
    lp::runtime::Session sb(*mb, n), sq(*mq, n);
    const absl::Span<const int32_t> in(w.data(), n);
    RETURN_IF_ERROR(sb.Forward(in, lp::runtime::LogitsRows::kAll, &lb));
    RETURN_IF_ERROR(sq.Forward(in, lp::runtime::LogitsRows::kAll, &lq));
    for (int64_t t = 0; t < n; ++t) {
      LogSoftmax(lb.data() + t * vocab, vocab, &pb);
      LogSoftmax(lq.data() + t * vocab, vocab, &pq);
      double kl = 0;
      for (int64_t i = 0; i < vocab; ++i)
        kl += std::exp(pb[i]) * (pb[i] - pq[i]);
      const int64_t ab = std::max_element(pb.begin(), pb.end()) - pb.begin();
      const int64_t aq = std::max_element(pq.begin(), pq.end()) - pq.begin();
      rows.push_back({kl, ab == aq, -pb[w[t + 1]], -pq[w[t + 1]]});
    }
  }
  double kl = 0, nb = 0, nq = 0;
  int64_t agree = 0;
  std::vector<double> kls;
  for (const Row& r : rows) {
    kl += r.kl;
    nb += r.nll_base;
    nq += r.nll_quant;
    agree += r.agree;
    kls.push_back(r.kl);
  }
  std::sort(kls.begin(), kls.end());
  const double n = static_cast<double>(rows.size());
  std::printf(
      "positions %zu  mean_kl %.6f  p99_kl %.5f  max_kl %.4f  top1 %.4f  "
      "ppl_base %.4f  ppl_quant %.4f  ppl_ratio %.5f  bpw %.4f\n",
      rows.size(), kl / n, kls[static_cast<size_t>(0.99 * (n - 1))], kls.back(),
      agree / n, std::exp(nb / n), std::exp(nq / n), std::exp((nq - nb) / n),
      bits.weights ? 8.0 * bits.bytes / bits.weights : 0.0);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: quant_quality <base-pkg> <quant-pkg> <eval.json> "
                 "[work-dir]\n");
    return 2;
  }
  const fs::path work = argc > 4
                            ? fs::path(argv[4])
                            : fs::path(std::string(argv[2]) + ".fakequant");
  absl::Status s = Run(argv[1], argv[2], argv[3], work);
  if (!s.ok()) {
    std::fprintf(stderr, "quant_quality: %s\n",
                 std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
