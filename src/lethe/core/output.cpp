// Output safety: inputs kept apart from outputs, staged folders, guarded copies, run locks.
#include "lethe/core/output.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "lethe/core/error.h"
#include "lethe/core/file.h"

namespace lethe {
namespace fs = std::filesystem;

namespace {

std::string errno_text() { return std::strerror(errno); }

fs::path canonical_form(const fs::path& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) abs = p;
  fs::path c = fs::weakly_canonical(abs, ec);
  return ec ? abs.lexically_normal() : c;
}

// True when `inner` is `outer` or lies below it (whole path components compared).
bool within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // a trailing separator
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

bool process_alive(long pid) {
  if (pid <= 0) return false;
  if (pid == static_cast<long>(::getpid())) return true;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

// ".<name>.tmp.<pid>.<n>" or ".<name>.partial.<pid>.<n>": the pid, or -1 when `name` is not one.
long temporary_pid(const std::string& name) {
  if (name.size() < 2 || name[0] != '.') return -1;
  const auto last = name.rfind('.');
  if (last == std::string::npos || last + 1 == name.size()) return -1;
  const auto prev = name.rfind('.', last - 1);
  if (prev == std::string::npos || prev + 1 == last) return -1;
  const std::string n = name.substr(last + 1), pid = name.substr(prev + 1, last - prev - 1);
  auto digits = [](const std::string& s) {
    return !s.empty() && s.size() < 12 && s.find_first_not_of("0123456789") == std::string::npos;
  };
  if (!digits(n) || !digits(pid)) return -1;
  const std::string head = name.substr(0, prev);
  for (const char* kind : {".tmp", ".partial"}) {
    const std::string k = kind;
    if (head.size() > k.size() + 1 && head.compare(head.size() - k.size(), k.size(), k) == 0) {
      return std::stol(pid);
    }
  }
  return -1;
}

unsigned next_serial() {
  static std::atomic<unsigned> counter{0};
  return counter++;
}

// "<parent>/.<name>.partial.<pid>.<serial>": hidden, and recognisably this process's.
fs::path sibling_name(const fs::path& target, unsigned serial) {
  return target.parent_path() / ("." + target.filename().string() + ".partial." + std::to_string(::getpid()) +
                                 "." + std::to_string(serial));
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void check_output_apart(const fs::path& output, const std::string& what,
                        const std::vector<NamedPath>& inputs) {
  if (output.empty()) return;
  const fs::path out = canonical_form(output);
  for (const auto& [name, input] : inputs) {
    if (input.empty()) continue;
    const fs::path in = canonical_form(input);
    const char* relation = out == in              ? "is"
                           : within(in, out)      ? "contains"
                           : within(out, in)      ? "lies inside"
                                                  : nullptr;
    if (relation == nullptr) continue;
    fail(what, " ", output.string(), " ", relation, " the input ", name, " (", input.string(),
         "): lethe never writes into its own inputs; choose another ", what);
  }
}

bool is_absent_or_empty(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return true;
  return fs::is_directory(dir, ec) && fs::is_empty(dir, ec);
}

// ---- StagedFolder ------------------------------------------------------------------------------

StagedFolder::StagedFolder(fs::path target, bool replace, const std::string& what)
    : target_(fs::absolute(target).lexically_normal()), replace_(replace) {
  if (target_.filename().empty()) target_ = target_.parent_path();
  std::error_code ec;
  LETHE_CHECK(!fs::exists(target_, ec) || fs::is_directory(target_, ec), what, " ", target.string(),
              " is a file, not a folder; nothing was written");
  LETHE_CHECK(replace_ || is_absent_or_empty(target_), what, " ", target.string(),
              " exists and is not empty; nothing was written (choose a new folder, or pass --force to "
              "replace it as a whole)");
  const fs::path parent = target_.parent_path();
  fs::create_directories(parent);
  remove_stale_temporaries(parent);
  for (int attempt = 0; attempt < 100; ++attempt) {
    staging_ = sibling_name(target_, next_serial());
    if (::mkdir(staging_.c_str(), 0755) == 0) return;
    LETHE_CHECK(errno == EEXIST, "cannot create ", staging_.string(), " (writing ", target_.string(), "): ",
                errno_text());
  }
  fail("cannot create a staging folder beside ", target_.string());
}

StagedFolder::~StagedFolder() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

void StagedFolder::commit() {
  LETHE_CHECK(!committed_, "commit of ", target_.string(), " twice");
  std::error_code ec;
  const bool exists = fs::exists(target_, ec);
  LETHE_CHECK(!exists || replace_ || is_absent_or_empty(target_), target_.string(),
              " was filled by someone else while lethe wrote it; lethe's copy was not moved in");
  if (exists) {
    // Swap in one step so a reader sees the old folder or the new one, never neither.
    if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, target_.c_str(), RENAME_EXCHANGE) == 0) {
      committed_ = true;
      fs::remove_all(staging_, ec);  // now the old contents
      fsync_dir(target_.parent_path());
      return;
    }
    // Filesystems without RENAME_EXCHANGE: move the old folder aside first.
    const fs::path aside = sibling_name(target_, next_serial());
    if (::rename(target_.c_str(), aside.c_str()) != 0) {
      fail("cannot move ", target_.string(), " aside to replace it: ", errno_text());
    }
    if (::rename(staging_.c_str(), target_.c_str()) != 0) {
      const std::string why = errno_text();
      ::rename(aside.c_str(), target_.c_str());
      fail("cannot rename ", staging_.string(), " to ", target_.string(), ": ", why);
    }
    committed_ = true;
    fs::remove_all(aside, ec);
    fsync_dir(target_.parent_path());
    return;
  }
  if (::rename(staging_.c_str(), target_.c_str()) != 0) {
    fail("cannot rename ", staging_.string(), " to ", target_.string(), ": ", errno_text());
  }
  committed_ = true;
  fsync_dir(target_.parent_path());
}

// ---- temporaries -------------------------------------------------------------------------------

bool is_temporary_name(const std::string& name) { return temporary_pid(name) > 0; }

std::size_t remove_stale_temporaries(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  std::size_t removed = 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const long pid = temporary_pid(e.path().filename().string());
    if (pid <= 0 || process_alive(pid)) continue;
    std::error_code rec;
    if (fs::remove_all(e.path(), rec) > 0 && !rec) ++removed;
  }
  return removed;
}

// ---- guarded copies ----------------------------------------------------------------------------

fs::path checked_input_file(const fs::path& dir, const std::string& name) {
  const fs::path p = dir / name;
  struct stat lst {};
  LETHE_CHECK(::lstat(p.c_str(), &lst) == 0, "cannot read ", p.string(), ": ", errno_text());
  std::error_code ec;
  fs::path real = fs::canonical(p, ec);
  LETHE_CHECK(!ec, p.string(), " is a symbolic link to a file that does not exist");
  if (S_ISLNK(lst.st_mode)) {
    const fs::path home = fs::canonical(dir);
    // The Hugging Face hub cache keeps files in <repo>/blobs/ and links them from
    // <repo>/snapshots/<revision>/; those links stay inside the repository's cache folder.
    const bool hub_cache = home.parent_path().filename() == "snapshots" &&
                           real.parent_path() == home.parent_path().parent_path() / "blobs";
    LETHE_CHECK(within(real, home) || hub_cache, p.string(), " is a symbolic link to ", real.string(),
                ", outside ", dir.string(),
                ": lethe does not copy files from outside an input folder (replace the link with the file "
                "itself)");
  }
  LETHE_CHECK(fs::is_regular_file(real, ec), p.string(), " is not a regular file");
  return real;
}

void copy_file_atomic(const fs::path& source, const fs::path& destination) {
  const int fd = ::open(source.c_str(), O_RDONLY | O_CLOEXEC);
  LETHE_CHECK(fd >= 0, "cannot open ", source.string(), ": ", errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(source.string(), " is not a regular file");
  }
  AtomicFileWriter w(destination, static_cast<unsigned>(st.st_mode & 0666));
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = errno_text();
      ::close(fd);
      fail("cannot read ", source.string(), ": ", why);
    }
    if (n == 0) break;
    w.write(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  w.commit();
}

void copy_input_file(const fs::path& dir, const std::string& name, const fs::path& dest_dir) {
  copy_file_atomic(checked_input_file(dir, name), dest_dir / name);
}

// ---- FolderLock --------------------------------------------------------------------------------

FolderLock::FolderLock(const fs::path& dir, const std::string& what) {
  fs::create_directories(dir);
  const fs::path file = dir / kLockFileName;
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  LETHE_CHECK(fd_ >= 0, "cannot create ", file.string(), ": ", errno_text());
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char holder[32] = {0};
    const ssize_t n = ::pread(fd_, holder, sizeof(holder) - 1, 0);
    ::close(fd_);
    fd_ = -1;
    std::string pid = n > 0 ? std::string(holder, static_cast<std::size_t>(n)) : std::string();
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    LETHE_CHECK(err != EWOULDBLOCK, dir.string(), " is in use by another lethe process",
                pid.empty() ? "" : " (pid " + pid + ")",
                "; wait for it to finish or choose another output folder for this ", what);
    fail("cannot lock ", file.string(), ": ", std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
}

FolderLock::~FolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

bool owned_by_lethe(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / kLockFileName, ec)) return true;
  // A folder holding nothing but lethe's temporaries is one of its own: what a run killed
  // before its lock file reached the disk, or a staged output's leftovers, leaves behind.
  bool any = false;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (temporary_pid(e.path().filename().string()) < 0) return false;
    any = true;
  }
  return any && !ec;
}

}  // namespace lethe
