// Files: read-only memory maps, whole-file reads and atomic writes.
//
// Every file lethe writes goes through AtomicFileWriter: the bytes go to a temporary file in
// the destination's directory, are fsync'ed, and the temporary is renamed over the destination,
// so a crash or a full disk never leaves a half-written model, log or report behind.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace lethe {

// A read-only mapping of a whole file. Empty files map to data() == nullptr, size() == 0.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  // Drops the pages wholly inside [offset, offset + n) from this process's memory (they are read
  // again from the file if touched later): a loader that has copied a tensor out releases it, so
  // peak memory holds the copy and not the mapping too.
  void release(std::size_t offset, std::size_t n) const;

 private:
  std::filesystem::path path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

// Reads a whole file; throws lethe::Error naming the path when it cannot.
std::string read_file(const std::filesystem::path& path);

// Writes to "<dir>/.<name>.tmp.<pid>.<n>", then commit() fsyncs and renames it over the target
// (and fsyncs the directory). Destroyed without commit(), it removes the temporary. `mode` is
// the new file's permission bits before the umask.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::filesystem::path target, unsigned mode = 0644);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, std::size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }
  std::uint64_t bytes_written() const { return written_; }
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
  std::uint64_t written_ = 0;
};

// One-shot atomic write of a whole file.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

// 64-bit FNV-1a of a whole file, as 16 hex digits: a fingerprint for run records, not a
// cryptographic hash. Files over `full_limit` bytes are fingerprinted from their size, their
// first and their last MiB (so multi-GB checkpoints cost milliseconds); the result says so with
// a "~" prefix.
std::string file_fingerprint(const std::filesystem::path& path,
                             std::uint64_t full_limit = 64ull << 20);

}  // namespace lethe
