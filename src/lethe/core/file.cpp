#include "lethe/core/file.h"

#include "lethe/core/random.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "lethe/core/error.h"

namespace lethe {
namespace fs = std::filesystem;

namespace {
std::string errno_text() { return std::strerror(errno); }
}  // namespace

MappedFile::MappedFile(const fs::path& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  LETHE_CHECK(fd >= 0, "cannot open ", path.string(), ": ", errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    std::string why = errno_text();
    ::close(fd);
    fail("cannot stat ", path.string(), ": ", why);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path.string(), " is not a regular file");
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      std::string why = errno_text();
      ::close(fd);
      fail("cannot map ", path.string(), ": ", why);
    }
    data_ = static_cast<const std::uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::uint8_t*>(data_), size_);
}

void MappedFile::release(std::size_t offset, std::size_t n) const {
  if (data_ == nullptr || offset >= size_) return;
  n = std::min(n, size_ - offset);
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(data_) + offset;
  const std::uintptr_t first = (begin + page - 1) / page * page, last = (begin + n) / page * page;
  // Advice only: a failure leaves the pages mapped, which costs memory, not correctness.
  if (last > first) (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  LETHE_CHECK(in.good(), "cannot open ", path.string(), ": ", errno_text());
  std::ostringstream ss;
  ss << in.rdbuf();
  LETHE_CHECK(!in.bad(), "cannot read ", path.string());
  return ss.str();
}

AtomicFileWriter::AtomicFileWriter(fs::path target, unsigned mode) : target_(std::move(target)) {
  static std::atomic<unsigned> counter{0};
  fs::path dir = target_.parent_path();
  if (dir.empty()) dir = ".";
  temp_ = dir / ("." + target_.filename().string() + ".tmp." + std::to_string(::getpid()) + "." +
                 std::to_string(counter++));
  // O_EXCL: never write through a file or link already there. A name holding this process's
  // pid can only be a dead process's leftover, so it is removed and the create tried again.
  const auto create = [&] {
    return ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                  static_cast<mode_t>(mode & 0666));
  };
  fd_ = create();
  if (fd_ < 0 && errno == EEXIST && ::unlink(temp_.c_str()) == 0) fd_ = create();
  LETHE_CHECK(fd_ >= 0, "cannot create ", temp_.string(), " (writing ", target_.string(),
              "): ", errno_text());
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_.c_str());
  }
}

void AtomicFileWriter::write(const void* data, std::size_t size) {
  LETHE_CHECK(fd_ >= 0, "write to ", target_.string(), " after commit");
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    LETHE_CHECK(n > 0, "cannot write ", target_.string(), ": ", errno_text());
    p += n;
    size -= static_cast<std::size_t>(n);
    written_ += static_cast<std::uint64_t>(n);
  }
}

void AtomicFileWriter::commit() {
  LETHE_CHECK(fd_ >= 0, "commit of ", target_.string(), " twice");
  if (::fsync(fd_) != 0) fail("cannot flush ", target_.string(), ": ", errno_text());
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    ::unlink(temp_.c_str());
    fail("cannot close ", target_.string(), ": ", errno_text());
  }
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    std::string why = errno_text();
    ::unlink(temp_.c_str());
    fail("cannot rename ", temp_.string(), " to ", target_.string(), ": ", why);
  }
  fs::path dir = target_.parent_path();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::string file_fingerprint(const fs::path& path, std::uint64_t full_limit) {
  MappedFile f(path);
  std::uint64_t h = kFnv1aOffset;
  auto feed = [&](const void* p, std::size_t n) { h = fnv1a64(p, n, h); };
  const bool partial = f.size() > full_limit;
  if (!partial) {
    feed(f.data(), f.size());
  } else {
    const std::size_t mib = 1 << 20;
    const std::uint64_t size = f.size();
    feed(&size, sizeof(size));
    feed(f.data(), mib);
    feed(f.data() + f.size() - mib, mib);
  }
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%s%016llx", partial ? "~" : "", static_cast<unsigned long long>(h));
  return buf;
}

void write_file_atomic(const fs::path& path, std::string_view contents) {
  AtomicFileWriter w(path);
  w.write(contents);
  w.commit();
}

}  // namespace lethe
