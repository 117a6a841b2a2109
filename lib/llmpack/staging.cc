#include "llmpack/staging.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace llmpack {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kLockSuffix = ".lock";
constexpr size_t kHexDigits = 16;

// The absolute final path without a trailing separator ("out/" names "out").
fs::path NormalizedFinal(const fs::path& p) {
  fs::path a = fs::absolute(p).lexically_normal();
  if (!a.has_filename()) a = a.parent_path();
  return a;
}

std::string ErrnoText() { return std::strerror(errno); }

// True when `name` is a lock file of the protocol for output `final_name`:
// ".<final_name>.<kind>-<16 hex>.lock" with kind made of a-z.
bool IsLockNameFor(std::string_view name, const std::string& final_name) {
  const std::string prefix = "." + final_name + ".";
  if (name.size() <= prefix.size() + kLockSuffix.size() ||
      name.substr(0, prefix.size()) != prefix ||
      name.substr(name.size() - kLockSuffix.size()) != kLockSuffix) {
    return false;
  }
  name = name.substr(prefix.size(),
                     name.size() - prefix.size() - kLockSuffix.size());
  const size_t dash = name.rfind('-');
  if (dash == std::string_view::npos || dash == 0 ||
      name.size() - dash - 1 != kHexDigits) {
    return false;
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = i < dash ? (c >= 'a' && c <= 'z')
                    : i > dash
                        ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))
                        : true;
    if (!ok) return false;
  }
  return true;
}

// True when `fd` is still the file at `path` (not unlinked or replaced by a
// run that removed it after we opened it).
bool SameFile(int fd, const fs::path& path) {
  struct stat a, b;
  return ::fstat(fd, &a) == 0 && ::lstat(path.c_str(), &b) == 0 &&
         a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Makes a finished rename durable: the directory entry is on disk once the
// parent folder is synced.
void SyncDirectory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

// ------------------------------------------------------------- StagingLock

absl::StatusOr<StagingLock> StagingLock::Acquire(const fs::path& final_path,
                                                 std::string_view kind) {
  const fs::path final_abs = NormalizedFinal(final_path);
  const fs::path parent = final_abs.parent_path();
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<uint64_t>(::getpid()));
  // A cleanup may lock (and delete) a lock file between our create and our
  // flock; then the lock is not ours and we try another name.
  for (int attempt = 0; attempt < 16; ++attempt) {
    const fs::path entry =
        parent / absl::StrFormat(".%s.%s-%016x", final_abs.filename().string(),
                                 std::string(kind), rng());
    const fs::path lock_path = entry.string() + std::string(kLockSuffix);
    const int fd =
        ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create staging lock ", lock_path.string(), ": ",
                       ErrnoText()));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && SameFile(fd, lock_path)) {
      StagingLock lock;
      lock.fd_ = fd;
      lock.entry_ = entry;
      return lock;
    }
    ::close(fd);
  }
  return absl::InternalError(absl::StrCat("cannot lock a staging name for ",
                                          final_abs.string(), " in 16 tries"));
}

StagingLock::StagingLock(StagingLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      entry_(std::exchange(other.entry_, {})),
      keep_(other.keep_) {}

StagingLock& StagingLock::operator=(StagingLock&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::exchange(other.fd_, -1);
    entry_ = std::exchange(other.entry_, {});
    keep_ = other.keep_;
  }
  return *this;
}

StagingLock::~StagingLock() { Release(); }

void StagingLock::Release() {
  if (fd_ < 0) return;
  // Unlink before closing: once the lock is released, nobody may find the
  // name still locked by us.
  if (!keep_) {
    ::unlink((entry_.string() + std::string(kLockSuffix)).c_str());
  }
  ::close(fd_);
  fd_ = -1;
  entry_.clear();
}

// ------------------------------------------------------------ cleanup

int RemoveStaleStaging(const fs::path& final_path) {
  const fs::path final_abs = NormalizedFinal(final_path);
  const std::string final_name = final_abs.filename().string();
  std::error_code ec;
  fs::directory_iterator it(final_abs.parent_path(), ec);
  if (ec) return 0;
  int removed = 0;
  for (const fs::directory_entry& e : it) {
    const std::string name = e.path().filename().string();
    if (!IsLockNameFor(name, final_name)) continue;
    const fs::path lock_path = e.path();
    const int fd =
        ::open(lock_path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    // A live run holds its lock; a dead one's was released by the kernel.
    // The inode check skips a lock file another cleanup just removed.
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && SameFile(fd, lock_path)) {
      const fs::path entry = lock_path.string().substr(
          0, lock_path.string().size() - kLockSuffix.size());
      std::error_code rm;
      fs::remove_all(entry, rm);
      if (!rm) {
        ::unlink(lock_path.c_str());
        ++removed;
      }
    }
    ::close(fd);
  }
  return removed;
}

// ------------------------------------------------------- WriteStringToFile

absl::Status WriteStringToFile(const fs::path& path,
                               std::string_view contents) {
  RemoveStaleStaging(path);
  auto lock = StagingLock::Acquire(path, "partial");
  if (!lock.ok()) {
    return absl::Status(lock.status().code(),
                        absl::StrCat("cannot write ", path.string(), ": ",
                                     lock.status().message()));
  }
  const fs::path& tmp = lock->entry();
  const int fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", tmp.string(), " (for ", path.string(),
                     "): ", ErrnoText()));
  }
  auto fail = [&](const char* what) {
    const std::string err = ErrnoText();
    ::close(fd);
    ::unlink(tmp.c_str());
    return absl::DataLossError(absl::StrCat("cannot write ", path.string(),
                                            ": ", what, " failed: ", err));
  };
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n =
        ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write");
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("fsync");
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return absl::DataLossError(absl::StrCat("cannot write ", path.string(),
                                            ": close failed: ", ErrnoText()));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = ErrnoText();
    ::unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot rename ", tmp.string(),
                                            " to ", path.string(), ": ", err));
  }
  return absl::OkStatus();
}

// ------------------------------------------------------- StagingDirectory

absl::StatusOr<StagingDirectory> StagingDirectory::Create(
    const fs::path& final_dir, bool replace_existing, std::string_view kind) {
  std::error_code ec;
  const fs::path final_abs = NormalizedFinal(final_dir);
  if (fs::exists(final_abs, ec) && !replace_existing) {
    return absl::AlreadyExistsError(absl::StrCat(
        final_dir.string(), " already exists (use --force to replace it)"));
  }
  const fs::path parent = final_abs.parent_path();
  fs::create_directories(parent, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", parent.string(), ": ", ec.message()));
  }
  RemoveStaleStaging(final_abs);
  StagingDirectory dir;
  dir.final_dir_ = final_abs;
  dir.replace_existing_ = replace_existing;
  absl::StatusOr<StagingLock> lock = StagingLock::Acquire(final_abs, kind);
  if (!lock.ok()) return lock.status();
  dir.lock_ = *std::move(lock);
  if (::mkdir(dir.path().c_str(), 0755) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create staging directory ", dir.path().string(),
                     ": ", ErrnoText()));
  }
  return dir;
}

StagingDirectory& StagingDirectory::operator=(
    StagingDirectory&& other) noexcept {
  if (this != &other) {
    Abandon();
    final_dir_ = std::move(other.final_dir_);
    lock_ = std::move(other.lock_);
    replace_existing_ = other.replace_existing_;
    committed_ = other.committed_;
  }
  return *this;
}

StagingDirectory::~StagingDirectory() { Abandon(); }

void StagingDirectory::Abandon() {
  if (!committed_ && !path().empty()) {
    std::error_code ec;
    fs::remove_all(path(), ec);
    if (ec) lock_.Keep();
  }
  lock_ = StagingLock();
}

absl::Status StagingDirectory::Commit() {
  const fs::path& tmp = path();
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir_.c_str(),
                  RENAME_NOREPLACE) == 0) {
    committed_ = true;
    SyncDirectory(final_dir_.parent_path());
    return absl::OkStatus();
  }
  if (errno == EEXIST || errno == ENOTEMPTY) {
    if (!replace_existing_) {
      return absl::AlreadyExistsError(
          absl::StrCat(final_dir_.string(), " already exists"));
    }
    // One atomic step: the final path goes from the old output to the new
    // one, and the old output lands on the staging name (still locked), so a
    // kill at any point leaves one complete output at the final path.
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir_.c_str(),
                    RENAME_EXCHANGE) == 0) {
      committed_ = true;
      SyncDirectory(final_dir_.parent_path());
      std::error_code ec;
      fs::remove_all(tmp, ec);
      if (ec) lock_.Keep();  // a later run retries
      return absl::OkStatus();
    }
  }
  if (errno != EINVAL && errno != ENOSYS) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp.string(),
                                            " to ", final_dir_.string(), ": ",
                                            ErrnoText()));
  }
  // The file system has no renameat2 flags (e.g. NFS): two plain renames,
  // the old output moved aside to its own locked staging name first (a kill
  // between them leaves the final path empty, never partial).
  std::error_code ec;
  std::optional<StagingLock> aside;
  if (fs::exists(final_dir_, ec)) {
    if (!replace_existing_) {
      return absl::AlreadyExistsError(
          absl::StrCat(final_dir_.string(), " already exists"));
    }
    absl::StatusOr<StagingLock> old = StagingLock::Acquire(final_dir_, "old");
    if (!old.ok()) return old.status();
    aside = *std::move(old);
    fs::rename(final_dir_, aside->entry(), ec);
    if (ec) {
      return absl::InternalError(absl::StrCat(
          "cannot move old ", final_dir_.string(), " aside: ", ec.message()));
    }
  }
  fs::rename(tmp, final_dir_, ec);
  if (ec) {
    if (aside) fs::rename(aside->entry(), final_dir_, ec);
    return absl::InternalError(absl::StrCat("cannot rename ", tmp.string(),
                                            " to ", final_dir_.string(), ": ",
                                            ec.message()));
  }
  committed_ = true;
  SyncDirectory(final_dir_.parent_path());
  if (aside) {
    fs::remove_all(aside->entry(), ec);
    if (ec) aside->Keep();
  }
  return absl::OkStatus();
}

}  // namespace llmpack
