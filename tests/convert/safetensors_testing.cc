#include "convert/safetensors_testing.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "nlohmann/json.hpp"

namespace llmpack::testing {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void ReadOne(const fs::path& path, std::map<std::string, RawTensor>* out) {
  const std::string b = Slurp(path);
  uint64_t n;
  std::memcpy(&n, b.data(), 8);
  const json h = json::parse(b.substr(8, n));
  for (auto& [name, v] : h.items()) {
    if (name == "__metadata__") continue;
    RawTensor t;
    t.dtype = v["dtype"];
    t.shape = v["shape"].get<std::vector<int64_t>>();
    const uint64_t begin = v["data_offsets"][0], end = v["data_offsets"][1];
    t.bytes = b.substr(8 + n + begin, end - begin);
    (*out)[name] = std::move(t);
  }
}

}  // namespace

std::map<std::string, RawTensor> ReadCheckpointTensors(const fs::path& dir) {
  std::map<std::string, RawTensor> out;
  if (fs::exists(dir / "model.safetensors.index.json")) {
    const json index = json::parse(Slurp(dir / "model.safetensors.index.json"));
    std::map<std::string, bool> shards;
    for (auto& [k, v] : index["weight_map"].items()) shards[v] = true;
    for (auto& [shard, unused] : shards) ReadOne(dir / shard, &out);
  } else {
    ReadOne(dir / "model.safetensors", &out);
  }
  return out;
}

void WriteSafetensors(const fs::path& path,
                      const std::map<std::string, RawTensor>& tensors) {
  json h = json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    h[name] = {{"dtype", t.dtype},
               {"shape", t.shape},
               {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  const std::string header = h.dump();
  const uint64_t n = header.size();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << data;
}

void CopyCheckpoint(const fs::path& src, const fs::path& dst) {
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src)) {
    fs::copy_file(e.path(), dst / e.path().filename(),
                  fs::copy_options::overwrite_existing);
    fs::permissions(dst / e.path().filename(), fs::perms::owner_all,
                    fs::perm_options::add);
  }
}

}  // namespace llmpack::testing
