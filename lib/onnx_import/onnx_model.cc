#include "onnx_import/onnx_model.h"

#include <fcntl.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "llmpack/dtype.h"
#include "llmpack/status_macros.h"

namespace llmpack::onnx_import {
namespace fs = std::filesystem;
using onnx::TensorProto;

namespace {

// Element counts beyond this cannot be real tensors and would overflow
// byte-size arithmetic.
constexpr int64_t kMaxElements = int64_t{1} << 48;

absl::StatusOr<int64_t> ElementCount(const TensorProto& t,
                                     const std::string& where) {
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": tensor '", t.name(), "' has negative dimension ", d));
    }
    if (d != 0 && n > kMaxElements / d) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": tensor '", t.name(), "' has implausibly large dims [",
          absl::StrJoin(t.dims(), ", "), "]"));
    }
    n *= d;
  }
  return n;
}

// Elements stored in the typed repeated field that holds `type`.
int64_t TypedFieldCount(const TensorProto& t) {
  switch (t.data_type()) {
    case TensorProto::FLOAT:
      return t.float_data_size();
    case TensorProto::DOUBLE:
      return t.double_data_size();
    case TensorProto::INT64:
      return t.int64_data_size();
    case TensorProto::UINT32:
    case TensorProto::UINT64:
      return t.uint64_data_size();
    default:
      return t.int32_data_size();
  }
}

template <typename T>
void AppendLE(std::vector<uint8_t>& out, T value, size_t size) {
  uint8_t bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.insert(out.end(), bytes, bytes + size);
}

// Packs a tensor's typed repeated field into little-endian element bytes.
std::vector<uint8_t> PackTypedField(const TensorProto& t) {
  const size_t size = OnnxTypeSize(t.data_type());
  std::vector<uint8_t> out;
  out.reserve(TypedFieldCount(t) * size);
  switch (t.data_type()) {
    case TensorProto::FLOAT:
      for (float v : t.float_data()) AppendLE(out, v, size);
      break;
    case TensorProto::DOUBLE:
      for (double v : t.double_data()) AppendLE(out, v, size);
      break;
    case TensorProto::INT64:
      for (int64_t v : t.int64_data()) AppendLE(out, v, size);
      break;
    case TensorProto::UINT32:
    case TensorProto::UINT64:
      for (uint64_t v : t.uint64_data()) AppendLE(out, v, size);
      break;
    default:  // int32_data holds every narrower type, one per entry.
      for (int32_t v : t.int32_data()) AppendLE(out, v, size);
      break;
  }
  return out;
}

}  // namespace

int64_t ConstantData::num_elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::string OnnxTypeName(int32_t onnx_type) {
  if (TensorProto::DataType_IsValid(onnx_type)) {
    return TensorProto::DataType_Name(
        static_cast<TensorProto::DataType>(onnx_type));
  }
  return absl::StrCat("unknown type ", onnx_type);
}

size_t OnnxTypeSize(int32_t onnx_type) {
  switch (onnx_type) {
    case TensorProto::UINT8:
    case TensorProto::INT8:
    case TensorProto::BOOL:
      return 1;
    case TensorProto::UINT16:
    case TensorProto::INT16:
    case TensorProto::FLOAT16:
    case TensorProto::BFLOAT16:
      return 2;
    case TensorProto::FLOAT:
    case TensorProto::INT32:
    case TensorProto::UINT32:
      return 4;
    case TensorProto::DOUBLE:
    case TensorProto::INT64:
    case TensorProto::UINT64:
      return 8;
    default:
      return 0;
  }
}

absl::StatusOr<std::unique_ptr<OnnxModel>> OnnxModel::Load(
    const fs::path& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) {
    return absl::NotFoundError(
        absl::StrCat(path.string(), ": cannot read: ", ec.message()));
  }
  if (size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": empty file, not an ONNX model"));
  }
  if (size > static_cast<uintmax_t>(INT_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path.string(), ": ", size,
        " bytes exceeds protobuf's 2 GiB message limit; models that large "
        "must keep their weights as external data"));
  }
  auto model = std::unique_ptr<OnnxModel>(new OnnxModel);
  model->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  }
  bool parsed = false;
  {
    google::protobuf::io::FileInputStream file_stream(fd);
    google::protobuf::io::CodedInputStream stream(&file_stream);
    // The default 64 MB limit is far below real models with inline weights.
    stream.SetTotalBytesLimit(INT_MAX);
    parsed = model->model_.ParseFromCodedStream(&stream) &&
             stream.ConsumedEntireMessage();
  }
  ::close(fd);
  if (!parsed) {
    return absl::InvalidArgumentError(absl::StrCat(
        path.string(),
        ": cannot parse as an ONNX ModelProto (truncated or not ONNX)"));
  }
  if (!model->model_.has_graph() || model->model_.graph().node_size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path.string(), ": ONNX model has no graph nodes (truncated?)"));
  }
  RETURN_IF_ERROR(model->IndexConstants());
  return model;
}

absl::Status OnnxModel::IndexConstants() {
  const onnx::GraphProto& g = model_.graph();
  const std::string where = path_.string();
  if (g.sparse_initializer_size() > 0) {
    return absl::UnimplementedError(
        absl::StrCat(where, ": sparse initializers are not supported (found ",
                     g.sparse_initializer_size(), ")"));
  }
  std::vector<const TensorProto*> tensors;
  for (const TensorProto& t : g.initializer()) {
    if (!constants_.emplace(t.name(), &t).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": initializer '", t.name(), "' is defined twice"));
    }
    tensors.push_back(&t);
  }
  for (const onnx::NodeProto& node : g.node()) {
    if (node.op_type() != "Constant" || !node.domain().empty() ||
        node.output_size() != 1) {
      continue;
    }
    for (const onnx::AttributeProto& a : node.attribute()) {
      const TensorProto* t = nullptr;
      if (a.name() == "value" && a.has_t()) {
        t = &a.t();
      } else if (a.name() == "value_float" || a.name() == "value_floats" ||
                 a.name() == "value_int" || a.name() == "value_ints") {
        auto s = std::make_unique<TensorProto>();
        const bool is_float = a.name().starts_with("value_float");
        s->set_data_type(is_float ? TensorProto::FLOAT : TensorProto::INT64);
        if (a.name() == "value_float") s->add_float_data(a.f());
        if (a.name() == "value_int") s->add_int64_data(a.i());
        for (float f : a.floats()) s->add_float_data(f);
        for (int64_t i : a.ints()) s->add_int64_data(i);
        if (a.name().ends_with("s")) {
          s->add_dims(is_float ? a.floats_size() : a.ints_size());
        }
        t = s.get();
        synthesized_.push_back(std::move(s));
      }
      if (t == nullptr) continue;
      if (!constants_.emplace(node.output(0), t).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": value '", node.output(0), "' is defined twice"));
      }
      tensors.push_back(t);
    }
  }
  for (const TensorProto* t : tensors) {
    ASSIGN_OR_RETURN(int64_t n, ElementCount(*t, where));
    const size_t size = OnnxTypeSize(t->data_type());
    constant_bytes_ += n * size;
    if (t->data_location() == TensorProto::EXTERNAL) {
      RETURN_IF_ERROR(ResolveExternal(*t));
      continue;
    }
    if (size == 0) continue;  // refused later if a weight role uses it
    if (t->has_raw_data()) {
      if (t->raw_data().size() != static_cast<uint64_t>(n) * size) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": tensor '", t->name(), "' (", OnnxTypeName(t->data_type()),
            " [", absl::StrJoin(t->dims(), ", "), "]) needs ", n * size,
            " bytes but its raw_data holds ", t->raw_data().size()));
      }
    } else if (TypedFieldCount(*t) != n) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": tensor '", t->name(), "' has dims [",
          absl::StrJoin(t->dims(), ", "), "] (", n, " elements) but stores ",
          TypedFieldCount(*t), " values"));
    }
  }
  return absl::OkStatus();
}

absl::Status OnnxModel::ResolveExternal(const TensorProto& t) {
  const std::string where =
      absl::StrCat(path_.string(), ": tensor '", t.name(), "'");
  std::string location;
  std::optional<uint64_t> offset, length;
  for (const onnx::StringStringEntryProto& kv : t.external_data()) {
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset" || kv.key() == "length") {
      uint64_t v = 0;
      if (!absl::SimpleAtoi(kv.value(), &v)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": external data ", kv.key(), " '", kv.value(),
                         "' is not a non-negative integer"));
      }
      (kv.key() == "offset" ? offset : length) = v;
    }
  }
  if (location.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": external data has no location"));
  }
  // The location must stay inside the model's folder: no absolute paths and
  // no ".." steps (checked on the text, so links placed by the user work).
  const fs::path rel = fs::path(location).lexically_normal();
  bool escapes = rel.is_absolute() || rel.empty();
  for (const fs::path& part : rel) escapes = escapes || part == "..";
  if (escapes) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": external data location '", location,
                     "' must be a relative path inside the model's folder"));
  }
  const fs::path file_path = path_.parent_path() / rel;
  auto it = external_files_.find(rel.string());
  if (it == external_files_.end()) {
    if (!fs::is_regular_file(file_path)) {
      return absl::NotFoundError(absl::StrCat(
          where, ": external data file ", file_path.string(), " is missing"));
    }
    ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::Open(file_path));
    it = external_files_
             .emplace(rel.string(),
                      std::make_unique<MappedFile>(std::move(mapped)))
             .first;
  }
  const MappedFile& file = *it->second;
  const uint64_t elements = static_cast<uint64_t>(*ElementCount(t, where));
  const size_t elem_size = OnnxTypeSize(t.data_type());
  const uint64_t begin = offset.value_or(0);
  if (begin > file.size()) {
    return absl::OutOfRangeError(absl::StrCat(
        where, ": external data offset ", begin, " is past the end of ",
        file_path.string(), " (", file.size(), " bytes; truncated?)"));
  }
  const uint64_t len = length.value_or(elements * elem_size);
  if (elem_size != 0 && len != elements * elem_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": external data length ", len, " does not match ",
        OnnxTypeName(t.data_type()), " [", absl::StrJoin(t.dims(), ", "), "] (",
        elements * elem_size, " bytes)"));
  }
  if (len > file.size() - begin) {
    return absl::OutOfRangeError(
        absl::StrCat(where, ": external data needs bytes [", begin, ", ",
                     begin + len, ") of ", file_path.string(),
                     ", which has only ", file.size(), " bytes (truncated?)"));
  }
  external_[&t] = External{&file, begin, len};
  return absl::OkStatus();
}

const TensorProto* OnnxModel::FindConstant(const std::string& value) const {
  auto it = constants_.find(value);
  return it == constants_.end() ? nullptr : it->second;
}

absl::StatusOr<ConstantData> OnnxModel::Data(const std::string& value) const {
  const TensorProto* t = FindConstant(value);
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrCat(path_.string(), ": '", value,
                                            "' is not a constant tensor"));
  }
  ConstantData data;
  data.onnx_type = t->data_type();
  data.dims.assign(t->dims().begin(), t->dims().end());
  if (OnnxTypeSize(t->data_type()) == 0) {
    return absl::UnimplementedError(absl::StrCat(
        path_.string(), ": tensor '", value, "' has unsupported ONNX dtype ",
        OnnxTypeName(t->data_type())));
  }
  if (auto ext = external_.find(t); ext != external_.end()) {
    data.bytes = {ext->second.file->data() + ext->second.offset,
                  ext->second.length};
  } else if (t->has_raw_data()) {
    data.bytes = {reinterpret_cast<const uint8_t*>(t->raw_data().data()),
                  t->raw_data().size()};
  } else {
    auto owned = std::make_shared<std::vector<uint8_t>>(PackTypedField(*t));
    data.bytes = {owned->data(), owned->size()};
    data.owned = std::move(owned);
  }
  return data;
}

absl::StatusOr<std::vector<int64_t>> OnnxModel::IntValues(
    const std::string& value) const {
  ASSIGN_OR_RETURN(ConstantData d, Data(value));
  std::vector<int64_t> out(d.num_elements());
  for (size_t i = 0; i < out.size(); ++i) {
    if (d.onnx_type == TensorProto::INT64) {
      std::memcpy(&out[i], d.bytes.data() + 8 * i, 8);
    } else if (d.onnx_type == TensorProto::INT32) {
      int32_t v;
      std::memcpy(&v, d.bytes.data() + 4 * i, 4);
      out[i] = v;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(path_.string(), ": constant '", value, "' is ",
                       OnnxTypeName(d.onnx_type), ", expected INT64 or INT32"));
    }
  }
  return out;
}

absl::StatusOr<std::vector<double>> OnnxModel::FloatValues(
    const std::string& value) const {
  ASSIGN_OR_RETURN(ConstantData d, Data(value));
  std::vector<double> out(d.num_elements());
  for (size_t i = 0; i < out.size(); ++i) {
    switch (d.onnx_type) {
      case TensorProto::FLOAT: {
        float v;
        std::memcpy(&v, d.bytes.data() + 4 * i, 4);
        out[i] = v;
        break;
      }
      case TensorProto::DOUBLE:
        std::memcpy(&out[i], d.bytes.data() + 8 * i, 8);
        break;
      case TensorProto::FLOAT16:
      case TensorProto::BFLOAT16: {
        uint16_t v;
        std::memcpy(&v, d.bytes.data() + 2 * i, 2);
        out[i] =
            d.onnx_type == TensorProto::FLOAT16 ? F16ToF32(v) : BF16ToF32(v);
        break;
      }
      default:
        return absl::InvalidArgumentError(
            absl::StrCat(path_.string(), ": constant '", value, "' is ",
                         OnnxTypeName(d.onnx_type), ", expected a float type"));
    }
  }
  return out;
}

void OnnxModel::ReleasePages(const std::string& value) const {
  const TensorProto* t = FindConstant(value);
  if (t == nullptr) return;
  if (auto ext = external_.find(t); ext != external_.end()) {
    ext->second.file->ReleasePages(ext->second.offset, ext->second.length);
  }
}

std::vector<std::string> OnnxModel::ExternalFiles() const {
  std::vector<std::string> names;
  for (const auto& [name, file] : external_files_) names.push_back(name);
  return names;
}

}  // namespace llmpack::onnx_import
