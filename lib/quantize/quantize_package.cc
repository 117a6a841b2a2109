#include "quantize/quantize_package.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "convert/progress.h"
#include "llmpack/checksum.h"
#include "llmpack/file_util.h"
#include "llmpack/package_layout.h"
#include "llmpack/status_macros.h"
#include "llmpack/tensor_file.h"
#include "llmpack/version.h"
#include "quant/codec.h"
#include "quant/methods.h"
#include "quant/tensor_f32.h"
#include "quantize/calibration.h"
#include "quantize/working_package.h"

namespace llmpack::quantize {
namespace fs = std::filesystem;

namespace {

// Bytes copied per step for tensors kept as they are (a large embedding
// never has to be in memory at once).
constexpr uint64_t kCopyChunkBytes = 16 << 20;

// Options after validation, with defaults resolved.
struct Plan {
  DType dtype;
  TensorTarget lm;
  TensorTarget embedding;
  int64_t group_size;  // or kPerRowGroup
  bool zero_point;
  DType scale_dtype;
  quant::Method method;
  int threads;
};

absl::StatusOr<Plan> MakePlan(const QuantizeOptions& o) {
  Plan p;
  if (o.dtype != DType::kQ4 && o.dtype != DType::kQ8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantized dtype must be q4 or q8, found ", DTypeName(o.dtype)));
  }
  p.dtype = o.dtype;
  p.lm = o.lm.value_or(o.dtype == DType::kQ4 ? TensorTarget::kQ4
                                             : TensorTarget::kQ8);
  if (o.embedding == TensorTarget::kQ4) {
    return absl::InvalidArgumentError(
        "the embedding can be kept or quantized to int8, not int4");
  }
  p.embedding = o.embedding;
  p.group_size = o.group_size.value_or(o.dtype == DType::kQ4 ? 32 : 128);
  if (p.group_size != 32 && p.group_size != 64 && p.group_size != 128 &&
      p.group_size != kPerRowGroup) {
    return absl::InvalidArgumentError(
        absl::StrCat("group size ", p.group_size,
                     " is not supported (use 32, 64, 128 or row)"));
  }
  if (o.scale_dtype != DType::kF16 && o.scale_dtype != DType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scale dtype must be f16 or bf16, found ", DTypeName(o.scale_dtype)));
  }
  p.zero_point = o.zero_point.value_or(o.dtype == DType::kQ4);
  p.scale_dtype = o.scale_dtype;
  if (o.method == "auto") {
    p.method = o.calibration_file.empty() ? quant::Method::kSearch
                                          : quant::Method::kGptq;
  } else {
    ASSIGN_OR_RETURN(p.method, quant::ParseMethod(o.method));
  }
  if (quant::NeedsCalibration(p.method) && o.calibration_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("method ", quant::MethodName(p.method),
                     " needs calibration text (--calib FILE)"));
  }
  p.threads =
      o.threads > 0
          ? o.threads
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return p;
}

// The quantization a tensor gets, if any.
std::optional<DType> TargetOf(const Plan& plan, const ExpectedFile& file,
                              const ExpectedTensor& tensor) {
  auto of = [](TensorTarget t) -> std::optional<DType> {
    if (t == TensorTarget::kQ4) return DType::kQ4;
    if (t == TensorTarget::kQ8) return DType::kQ8;
    return std::nullopt;
  };
  if (tensor.name == kEmbedTokens) return of(plan.embedding);
  if (tensor.name == kLmHead) return of(plan.lm);
  if (file.kind == format::FileKind::kBlock && tensor.is_matrix) {
    return plan.dtype;
  }
  return std::nullopt;
}

// The output side of one tensor: its spec and either how to quantize it or
// that it is copied unchanged (in chunks).
struct OutputTensor {
  TensorSpec spec;
  const TensorInfo* input = nullptr;
  std::optional<DType> target;  // nullopt: copied
  quant::RowLayout layout;      // quantized tensors only
};

// Chunk buffers reused by every tensor of a run: allocating them per tensor
// costs a fresh zero-filled, page-faulted mapping each time (a quarter of the
// run time of an RTN pass before they were shared).
struct ChunkBuffers {
  std::vector<uint8_t> raw;     // input rows as stored
  std::vector<float> weights;   // the same rows as f32
  std::vector<uint8_t> packed;  // their quantized rows
};

// State shared by every file of one run.
struct Run {
  const QuantizeOptions& options;
  const Plan& plan;
  const ModelConfig& config;
  const Manifest& input;
  const CalibrationData* calibration;  // nullptr without --calib
  convert::ProgressLine& progress;
  ChunkBuffers& buffers;
};

// The method a tensor gets: calibrated methods need statistics, which the
// embedding (a lookup, not a Linear) never has; it gets the data-free search.
quant::Method MethodFor(const Run& run, const quant::Calibration* cal) {
  if (quant::NeedsCalibration(run.plan.method) && cal == nullptr) {
    return quant::Method::kSearch;
  }
  return run.plan.method;
}

// The spec and layout of `info` quantized to `dtype`.
absl::StatusOr<OutputTensor> PlanQuantized(const Run& run,
                                           const TensorInfo& info,
                                           DType dtype) {
  const int64_t cols = info.shape.back();
  const int64_t group = run.plan.group_size == kPerRowGroup
                            ? cols
                            : std::min(run.plan.group_size, cols);
  OutputTensor out;
  ASSIGN_OR_RETURN(
      out.layout,
      quant::MakeRowLayout(
          {dtype, group, run.plan.scale_dtype, run.plan.zero_point}, cols));
  out.input = &info;
  out.target = dtype;
  out.spec = {info.name,
              dtype,
              info.shape,
              static_cast<uint64_t>(info.num_rows() * out.layout.row_bytes),
              static_cast<uint32_t>(group),
              static_cast<uint16_t>(run.plan.scale_dtype),
              static_cast<uint16_t>(
                  run.plan.zero_point ? format::kQuantFlagZeroPoint : 0)};
  return out;
}

// Quantizes one tensor a chunk of rows at a time (read, quantize, measure,
// append), so memory stays at one chunk however large the tensor.
absl::Status QuantizeTensor(const Run& run, const TensorFileReader& reader,
                            const ExpectedFile& file, const OutputTensor& t,
                            TensorFileWriter& writer, TensorReport* report) {
  const TensorInfo& info = *t.input;
  const quant::RowLayout& layout = t.layout;
  const int64_t cols = layout.cols;
  const int64_t rows = info.num_rows();
  const int64_t layer =
      info.name == kLmHead ? run.config.num_layers : file.block_index;
  const quant::Calibration* cal = run.calibration == nullptr
                                      ? nullptr
                                      : run.calibration->For(layer, info.name);
  quant::MatrixQuantOptions mo;
  mo.method = MethodFor(run, cal);
  mo.calibration = cal;
  mo.threads = run.plan.threads;
  auto in_context = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(file.file_name, ": tensor ",
                                               info.name, ": ", s.message()));
  };
  absl::StatusOr<quant::MatrixQuantizer> quantizer =
      quant::MatrixQuantizer::Create(layout, mo);
  if (!quantizer.ok()) return in_context(quantizer.status());
  const std::vector<float> no_importance;
  quant::ErrorAccumulator error(
      layout, cal == nullptr ? no_importance : cal->importance, mo.threads);
  const int64_t chunk_rows = std::clamp<int64_t>(
      static_cast<int64_t>(run.options.chunk_bytes / (sizeof(float) * cols)), 1,
      std::max<int64_t>(rows, 1));
  ChunkBuffers& b = run.buffers;
  // Grows only, so later tensors reuse the pages of earlier ones.
  auto grow = [](auto& v, int64_t n) {
    if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  };
  grow(b.weights, chunk_rows * cols);
  grow(b.packed, chunk_rows * layout.row_bytes);
  for (int64_t r = 0; r < rows; r += chunk_rows) {
    const int64_t n = std::min(chunk_rows, rows - r);
    RETURN_IF_ERROR(
        quant::ReadRowsAsF32(reader, info, r, n, b.raw, b.weights.data()));
    if (absl::Status s =
            quantizer->Quantize(b.weights.data(), n, r, b.packed.data());
        !s.ok()) {
      return in_context(s);
    }
    error.Add(b.weights.data(), n, b.packed.data());
    RETURN_IF_ERROR(writer.Append(
        {b.packed.data(), static_cast<size_t>(n * layout.row_bytes)}));
  }
  const quant::MatrixError e = error.Result();
  *report = {file.file_name,
             info.name,
             info.shape,
             layout.format.dtype,
             layout.format.group_size,
             run.plan.scale_dtype,
             run.plan.zero_point,
             quant::MethodName(mo.method),
             t.spec.size_bytes,
             e.rel_rms,
             e.max_abs,
             e.rel_weighted};
  return absl::OkStatus();
}

absl::Status CopyTensor(const TensorFileReader& reader, const TensorInfo& t,
                        TensorFileWriter& writer) {
  std::vector<uint8_t> buffer(
      static_cast<size_t>(std::min<uint64_t>(kCopyChunkBytes, t.size_bytes)));
  for (uint64_t done = 0; done < t.size_bytes;) {
    const uint64_t n = std::min<uint64_t>(buffer.size(), t.size_bytes - done);
    RETURN_IF_ERROR(reader.file().ReadAt(t.offset + done, {buffer.data(), n}));
    RETURN_IF_ERROR(writer.Append({buffer.data(), n}));
    done += n;
  }
  return absl::OkStatus();
}

// Rewrites one tensor file of the package into `dir`: quantized tensors are
// quantized, the others copied byte for byte.
absl::StatusOr<ManifestFile> WriteFile(const Run& run, const ExpectedFile& file,
                                       const fs::path& dir,
                                       std::vector<TensorReport>* reports) {
  ASSIGN_OR_RETURN(TensorFileReader reader,
                   TensorFileReader::Open(
                       run.options.input_dir / file.file_name, file.kind));
  std::vector<OutputTensor> outputs;
  for (const ExpectedTensor& t : file.tensors) {
    ASSIGN_OR_RETURN(const TensorInfo* info, reader.Get(t.name));
    if (info->shape != t.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(reader.path().string(), ": tensor ", t.name,
                       " has shape ", ShapeString(info->shape), ", expected ",
                       ShapeString(t.shape), " from the manifest's config"));
    }
    const std::optional<DType> target = TargetOf(run.plan, file, t);
    if (target.has_value()) {
      ASSIGN_OR_RETURN(OutputTensor out, PlanQuantized(run, *info, *target));
      outputs.push_back(std::move(out));
    } else {
      OutputTensor& out = outputs.emplace_back();
      out.spec = {info->name,       info->dtype,      info->shape,
                  info->size_bytes, info->group_size, info->scale_dtype,
                  info->quant_flags};
      out.input = info;
    }
  }
  std::vector<TensorSpec> specs;
  for (const OutputTensor& out : outputs) specs.push_back(out.spec);
  const fs::path path = dir / file.file_name;
  ASSIGN_OR_RETURN(auto writer, TensorFileWriter::Create(
                                    path, file.kind, file.block_index, specs));
  for (const OutputTensor& out : outputs) {
    if (out.target.has_value()) {
      TensorReport report;
      RETURN_IF_ERROR(QuantizeTensor(run, reader, file, out, *writer, &report));
      reports->push_back(std::move(report));
    } else {
      RETURN_IF_ERROR(CopyTensor(reader, *out.input, *writer));
    }
    run.progress.Add(out.input->size_bytes);
  }
  ASSIGN_OR_RETURN(uint64_t size, writer->Finish());
  ASSIGN_OR_RETURN(uint64_t sum, ChecksumFile(path));
  const ManifestFile* old = run.input.FindFile(file.file_name);
  return ManifestFile{file.file_name, old != nullptr ? old->role : "", size,
                      sum};
}

// Why `manifest`'s package counts as quantized already ("" if it does not).
absl::StatusOr<std::string> QuantizedReason(const fs::path& dir,
                                            const Manifest& manifest) {
  if (manifest.extensions.contains("quantization")) {
    return std::string("its manifest has a \"quantization\" object");
  }
  for (const ExpectedFile& file : ExpectedPackageFiles(manifest.config)) {
    ASSIGN_OR_RETURN(TensorFileReader reader,
                     TensorFileReader::Open(dir / file.file_name, file.kind));
    for (const TensorInfo& t : reader.tensors()) {
      if (quant::IsQuantizedTensor(t)) {
        return absl::StrCat(file.file_name, " holds ", DTypeName(t.dtype),
                            " tensor ", t.name);
      }
    }
  }
  return std::string();
}

nlohmann::json QuantizationObject(const QuantizeResult& r, const Plan& plan,
                                  const QuantizeOptions& o) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const TensorReport& t : r.tensors) {
    tensors.push_back({{"file", t.file},
                       {"name", t.name},
                       {"dtype", DTypeName(t.dtype)},
                       {"group_size", t.group_size},
                       {"scale_dtype", DTypeName(t.scale_dtype)},
                       {"zero_point", t.zero_point},
                       {"method", t.method}});
  }
  nlohmann::json j = {{"tool", absl::StrCat("llmquant ", kToolVersion)},
                      {"method", quant::MethodName(plan.method)},
                      {"bits_per_weight", r.bits_per_weight},
                      {"quantized_weights", r.quantized_weights},
                      {"quantized_bytes", r.quantized_bytes},
                      {"tensors", std::move(tensors)}};
  if (!o.calibration_file.empty()) {
    j["calibration"] = {{"file", o.calibration_file.filename().string()},
                        {"tokens", r.calibration_tokens}};
  } else {
    j["calibration"] = nullptr;
  }
  return j;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

absl::StatusOr<QuantizeResult> QuantizePackage(const QuantizeOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(const Plan plan, MakePlan(o));
  if (IsSameOrInside(o.output_dir, o.input_dir) ||
      IsSameOrInside(o.input_dir, o.output_dir)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output ", o.output_dir.string(), " must not be the input package ",
        o.input_dir.string(), " or inside it (or contain it)"));
  }
  ASSIGN_OR_RETURN(const Manifest input, ReadManifest(o.input_dir));
  RETURN_IF_ERROR(
      VerifyPackageFiles(o.input_dir, input, /*verify_checksums=*/true));
  ASSIGN_OR_RETURN(const std::string quantized,
                   QuantizedReason(o.input_dir, input));
  if (!quantized.empty() && !o.force) {
    return absl::FailedPreconditionError(absl::StrCat(
        o.input_dir.string(), " is already quantized (", quantized,
        "); quantizing it again compounds the error. Quantize the float "
        "package, or pass --force to re-quantize its dequantized values"));
  }
  if (!o.output_dir.empty() && !o.force) {
    std::error_code ec;
    if (fs::exists(o.output_dir, ec)) {
      return absl::AlreadyExistsError(
          absl::StrCat(o.output_dir.string(),
                       " already exists (use --force to replace it)"));
    }
  }

  QuantizeResult result;
  std::optional<CalibrationSet> calibration;
  if (!o.calibration_file.empty()) {
    CalibrationOptions co;
    co.file = o.calibration_file;
    co.max_tokens = o.calibration_tokens;
    ASSIGN_OR_RETURN(calibration, LoadCalibration(o.input_dir, co));
    result.calibration_tokens = calibration->tokens;
  }

  ASSIGN_OR_RETURN(StagingDirectory staging,
                   StagingDirectory::Create(o.output_dir, o.force));
  std::optional<WorkingPackage> work;
  if (calibration.has_value()) {
    ASSIGN_OR_RETURN(work,
                     WorkingPackage::Create(o.input_dir, input, o.output_dir));
  }
  Manifest manifest = input;
  manifest.tool_version = kToolVersion;
  manifest.weights_dtype = DTypeName(plan.dtype);
  manifest.files.clear();
  const std::vector<ExpectedFile> files = ExpectedPackageFiles(input.config);
  uint64_t total = 0;
  for (const ExpectedFile& f : files) {
    if (const ManifestFile* m = input.FindFile(f.file_name)) total += m->size;
  }
  convert::ProgressLine progress("llmquant", total, o.show_progress);
  ChunkBuffers buffers;
  // Tokenizer and other non-tensor files first, byte for byte.
  for (const ManifestFile& f : input.files) {
    bool tensor_file = false;
    for (const ExpectedFile& e : files) tensor_file |= e.file_name == f.name;
    if (tensor_file) continue;
    std::error_code ec;
    fs::create_directories((staging.path() / f.name).parent_path(), ec);
    fs::copy_file(o.input_dir / f.name, staging.path() / f.name, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat(
          "cannot copy ", (o.input_dir / f.name).string(), ": ", ec.message()));
    }
    manifest.files.push_back(f);
  }
  // Sequential calibration: the statistics of each block (and of the output
  // projection) come from a pass over the calibration windows through a
  // model whose earlier files are already quantized, so each layer is fitted
  // to the inputs it will see; only one layer's statistics are in memory.
  for (const ExpectedFile& file : files) {
    std::optional<CalibrationData> stats;
    const bool has_linears =
        file.kind == format::FileKind::kBlock ||
        (file.kind == format::FileKind::kLm && plan.lm != TensorTarget::kKeep);
    if (work.has_value() && has_linears) {
      const auto calib_start = std::chrono::steady_clock::now();
      const int64_t layer = file.kind == format::FileKind::kBlock
                                ? file.block_index
                                : input.config.num_layers;
      ASSIGN_OR_RETURN(
          stats,
          CollectStatistics(work->dir(), *calibration, layer,
                            quant::NeedsHessian(plan.method), plan.threads));
      result.calibration_seconds += SecondsSince(calib_start);
    }
    const Run run{
        o,        plan,   input.config, input, stats ? &*stats : nullptr,
        progress, buffers};
    const size_t reported = result.tensors.size();
    ASSIGN_OR_RETURN(ManifestFile written,
                     WriteFile(run, file, staging.path(), &result.tensors));
    manifest.files.push_back(std::move(written));
    if (work.has_value() && file.kind != format::FileKind::kLm &&
        result.tensors.size() > reported) {
      RETURN_IF_ERROR(work->Replace(
          file.file_name, staging.path() / file.file_name, file.kind));
    }
  }
  progress.Finish();
  for (const TensorReport& t : result.tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    result.quantized_weights += static_cast<uint64_t>(n);
    result.quantized_bytes += t.bytes;
  }
  result.bits_per_weight =
      result.quantized_weights == 0
          ? 0
          : 8.0 * static_cast<double>(result.quantized_bytes) /
                static_cast<double>(result.quantized_weights);
  manifest.extensions["quantization"] = QuantizationObject(result, plan, o);
  RETURN_IF_ERROR(VerifyPackageFiles(staging.path(), manifest,
                                     /*verify_checksums=*/true));
  RETURN_IF_ERROR(WriteManifest(staging.path(), manifest));
  RETURN_IF_ERROR(staging.Commit());
  result.manifest = std::move(manifest);
  result.seconds = SecondsSince(start);
  return result;
}

}  // namespace llmpack::quantize
