// Tensor files of a package (TensorFileReader: header, directory, float and
// quantized layouts), then every tensor read whole with its checksum, its
// last row read, and a quantized row dequantized. Before parsing, the
// checksums and the file size in the (mutated) input are recomputed, so
// mutations reach the size and offset checks behind them instead of all
// stopping at a checksum mismatch.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "formats/tensor_file_format.h"
#include "fuzz/fuzz_util.h"
#include "llmpack/checksum.h"
#include "llmpack/tensor_file.h"
#include "quant/codec.h"

namespace {

using llmpack::format::FileHeader;
using llmpack::format::TensorEntry;

// Rewrites file_size, every tensor checksum whose data lies in the file and
// the directory checksum, where the directory itself lies in the file.
void FixChecksums(std::string& bytes) {
  if (bytes.size() < sizeof(FileHeader)) return;
  FileHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  h.file_size = bytes.size();
  const uint64_t room = bytes.size() - sizeof h;
  if (h.directory_offset == sizeof h && h.directory_bytes <= room &&
      h.directory_bytes % sizeof(TensorEntry) == 0) {
    char* dir = bytes.data() + sizeof h;
    for (uint64_t i = 0; i < h.directory_bytes / sizeof(TensorEntry); ++i) {
      TensorEntry e;
      std::memcpy(&e, dir + i * sizeof e, sizeof e);
      if (e.offset <= bytes.size() && e.size_bytes <= bytes.size() - e.offset) {
        e.checksum = llmpack::Checksum64(bytes.data() + e.offset, e.size_bytes);
        std::memcpy(dir + i * sizeof e, &e, sizeof e);
      }
    }
    h.directory_checksum = llmpack::Checksum64(dir, h.directory_bytes);
  }
  std::memcpy(bytes.data(), &h, sizeof h);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace llmpack;
  std::string bytes(fuzz::AsText(data, size));
  FixChecksums(bytes);
  const auto path = fuzz::WriteTemp("block.bin", bytes);
  auto reader = TensorFileReader::Open(path);
  if (!reader.ok()) return 0;
  for (const TensorInfo& t : reader->tensors()) {
    fuzz::Check(t.offset <= size && t.size_bytes <= size - t.offset,
                "tensor bytes inside the file");
    std::vector<uint8_t> bytes(t.size_bytes);
    if (!reader->ReadTensor(t, absl::MakeSpan(bytes), true).ok()) continue;
    if (t.shape.empty() || t.num_rows() < 1) continue;
    std::vector<uint8_t> row(t.row_bytes());
    fuzz::Check(
        reader->ReadRows(t, t.num_rows() - 1, 1, absl::MakeSpan(row)).ok(),
        "the last row of a readable tensor reads");
    if (t.dtype != DType::kQ4 && t.dtype != DType::kQ8) continue;
    quant::QuantFormat format;
    format.dtype = t.dtype;
    format.group_size = t.group_size;
    format.scale_dtype = static_cast<DType>(t.scale_dtype);
    format.zero_point = (t.quant_flags & 1) != 0;
    auto layout = quant::MakeRowLayout(format, t.shape.back());
    if (!layout.ok()) continue;
    fuzz::Check(static_cast<uint64_t>(layout->row_bytes) == t.row_bytes(),
                "codec and reader agree on the row size");
    std::vector<float> out(t.shape.back());
    quant::DequantizeRow(*layout, row.data(), out.data());
  }
  return 0;
}
