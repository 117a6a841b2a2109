#include "llmpack/manifest.h"

#include "absl/strings/str_cat.h"
#include "llmpack/checksum.h"
#include "llmpack/file_util.h"
#include "llmpack/json_file.h"
#include "llmpack/package_layout.h"
#include "llmpack/status_macros.h"

namespace llmpack {
namespace fs = std::filesystem;
using nlohmann::json;

const ManifestFile* Manifest::FindFile(std::string_view name) const {
  for (const ManifestFile& f : files) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

json ManifestToJson(const Manifest& m) {
  json files = json::array();
  for (const ManifestFile& f : m.files) {
    files.push_back({{"name", f.name},
                     {"role", f.role},
                     {"size", f.size},
                     {"xxh3_64", ChecksumToHex(f.checksum)}});
  }
  json j = {
      {"format", "llmpack"},
      {"format_version", absl::StrCat(m.format_major, ".", m.format_minor)},
      {"tool_version", m.tool_version},
      {"source",
       {{"path", m.source.path},
        {"format", m.source.format},
        {"architecture", m.source.architecture},
        {"dtype", m.source.dtype},
        {"content_xxh3_64", ChecksumToHex(m.source.content_hash)},
        {"files", m.source.files}}},
      {"config", ModelConfigToJson(m.config)},
      {"weights_dtype", m.weights_dtype},
      {"files", files},
  };
  for (auto& [key, value] : m.extensions.items()) j[key] = value;
  return j;
}

absl::StatusOr<Manifest> ManifestFromJson(const json& j,
                                          const std::string& context) {
  Manifest m;
  try {
    if (j.at("format").get<std::string>() != "llmpack") {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": 'format' is not \"llmpack\""));
    }
    const std::string version = j.at("format_version").get<std::string>();
    if (std::sscanf(version.c_str(), "%d.%d", &m.format_major,
                    &m.format_minor) != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, ": bad format_version '", version, "'"));
    }
    if (m.format_major != kManifestFormatMajor) {
      return absl::FailedPreconditionError(absl::StrCat(
          context, ": manifest format ", version,
          " is not supported (this build reads ", kManifestFormatMajor, ".x)"));
    }
    m.tool_version = j.at("tool_version").get<std::string>();
    const json& s = j.at("source");
    m.source.path = s.at("path").get<std::string>();
    m.source.format = s.at("format").get<std::string>();
    m.source.architecture = s.at("architecture").get<std::string>();
    m.source.dtype = s.value("dtype", std::string());
    ASSIGN_OR_RETURN(
        m.source.content_hash,
        ChecksumFromHex(s.at("content_xxh3_64").get<std::string>()));
    m.source.files = s.at("files").get<std::vector<std::string>>();
    m.weights_dtype = j.at("weights_dtype").get<std::string>();
    for (const json& f : j.at("files")) {
      ManifestFile file;
      file.name = f.at("name").get<std::string>();
      file.role = f.at("role").get<std::string>();
      if (!f.at("size").is_number_unsigned()) {
        return absl::InvalidArgumentError(absl::StrCat(
            context, ": size of file '", file.name,
            "' must be a non-negative integer, found ", f.at("size").dump()));
      }
      file.size = f.at("size").get<uint64_t>();
      ASSIGN_OR_RETURN(file.checksum,
                       ChecksumFromHex(f.at("xxh3_64").get<std::string>()));
      if (file.name.empty() || file.name.find('/') != std::string::npos ||
          file.name.front() == '.') {
        return absl::InvalidArgumentError(
            absl::StrCat(context, ": file name '", file.name,
                         "' must be a plain name inside the package"));
      }
      m.files.push_back(std::move(file));
    }
    for (auto& [key, value] : j.items()) {
      static constexpr std::string_view kKnown[] = {
          "format", "format_version", "tool_version", "source",
          "config", "weights_dtype",  "files"};
      if (std::find(std::begin(kKnown), std::end(kKnown), key) ==
          std::end(kKnown)) {
        m.extensions[key] = value;
      }
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": malformed manifest: ", e.what()));
  }
  if (!j.contains("config")) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": malformed manifest: no 'config'"));
  }
  ASSIGN_OR_RETURN(m.config, ModelConfigFromJson(j["config"], context));
  return m;
}

namespace {

// Packages are our own format and every file in one is written by our tools
// as a regular file, so a symlink (or FIFO, device, folder) where a package
// file should be is refused: it could make a verified-looking package read
// bytes from anywhere on the machine (formats/package_format.md, "Files").
absl::Status CheckPlainPackageFile(const fs::path& path) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(path, ec);
  if (ec || st.type() == fs::file_type::not_found) {
    return absl::NotFoundError(
        absl::StrCat(path.string(), ": listed in the manifest but missing"));
  }
  if (fs::is_symlink(st)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path.string(),
        ": is a symbolic link; package files must be regular files inside "
        "the package folder"));
  }
  if (!fs::is_regular_file(st)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": is not a regular file"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Manifest> ReadManifest(const fs::path& package_dir) {
  const fs::path path = package_dir / kManifestFile;
  if (fs::is_symlink(path)) RETURN_IF_ERROR(CheckPlainPackageFile(path));
  ASSIGN_OR_RETURN(json j, ReadJsonFile(path));
  return ManifestFromJson(j, path.string());
}

absl::Status WriteManifest(const fs::path& package_dir, const Manifest& m) {
  return WriteStringToFile(package_dir / kManifestFile,
                           ManifestToJson(m).dump(2) + "\n");
}

absl::Status VerifyPackageFiles(const fs::path& package_dir, const Manifest& m,
                                bool verify_checksums) {
  for (const ManifestFile& f : m.files) {
    const fs::path path = package_dir / f.name;
    RETURN_IF_ERROR(CheckPlainPackageFile(path));
    std::error_code ec;
    const uint64_t size = fs::file_size(path, ec);
    if (ec) {
      return absl::NotFoundError(
          absl::StrCat(path.string(), ": listed in the manifest but missing"));
    }
    if (size != f.size) {
      return absl::DataLossError(absl::StrCat(
          path.string(), ": size is ", size, " bytes, manifest says ", f.size));
    }
    if (verify_checksums) {
      ASSIGN_OR_RETURN(uint64_t sum, ChecksumFile(path));
      if (sum != f.checksum) {
        return absl::DataLossError(absl::StrCat(
            path.string(), ": checksum ", ChecksumToHex(sum),
            " does not match the manifest's ", ChecksumToHex(f.checksum)));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace llmpack
