// Where lethe writes, and what it will not write over.
//
// Four rules keep a user's files safe (docs/outputs.md):
//   1. an output never equals, contains or lies inside one of the run's inputs
//      (check_output_apart, on canonical paths);
//   2. a folder is built in a hidden sibling and renamed into place only when complete
//      (StagedFolder): a killed writer leaves the old folder, or nothing, never half of one;
//      an existing non-empty destination is an error unless the caller asked to replace it, and
//      then the old folder is replaced as a whole;
//   3. files copied from an input folder are not followed through symlinks out of it
//      (copy_input_file), and keep the input's mode, never wider;
//   4. one process per run folder (FolderLock, an flock on <dir>/.lethe-lock).
// Temporaries that a killed process left (".NAME.tmp.PID.N" files, ".NAME.partial.PID.N"
// folders) are removed by remove_stale_temporaries when their process is gone.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace lethe {

// One input of a run, named as the user names it: {"model", "/data/m"}, {"data.forget", ...}.
using NamedPath = std::pair<std::string, std::filesystem::path>;

// Throws when `output` (option `what`, e.g. "output_dir" or "--out") equals, contains or lies
// inside any non-empty input. Paths are compared canonically (symlinks and ".." resolved).
void check_output_apart(const std::filesystem::path& output, const std::string& what,
                        const std::vector<NamedPath>& inputs);

// True when `dir` does not exist or is an empty directory.
bool is_absent_or_empty(const std::filesystem::path& dir);

// A folder built beside its destination: path() is a fresh hidden sibling
// "<parent>/.<name>.partial.<pid>.<n>"; commit() renames it onto the destination (atomically
// exchanged with an existing one, which is then removed). Destroyed without commit(), it
// removes what it built. The constructor refuses a destination that is an existing file, or an
// existing non-empty folder unless `replace`; `what` names it in errors ("--out DIR").
class StagedFolder {
 public:
  StagedFolder(std::filesystem::path target, bool replace, const std::string& what);
  ~StagedFolder();
  StagedFolder(const StagedFolder&) = delete;
  StagedFolder& operator=(const StagedFolder&) = delete;

  const std::filesystem::path& path() const { return staging_; }
  const std::filesystem::path& target() const { return target_; }
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path staging_;
  bool replace_ = false;
  bool committed_ = false;
};

// Removes, directly inside `dir`, the temporaries of processes that no longer run: files
// ".<name>.tmp.<pid>.<n>" (AtomicFileWriter) and folders ".<name>.partial.<pid>.<n>"
// (StagedFolder). Returns how many it removed. A missing `dir` is not an error.
std::size_t remove_stale_temporaries(const std::filesystem::path& dir);

// True when `name` is a temporary's name as above (any process).
bool is_temporary_name(const std::string& name);

// Copies `dir/name` to `dest_dir/name` through AtomicFileWriter. Refuses a source that is a
// symlink resolving outside `dir` (the Hugging Face hub cache's links from snapshots/<rev>/ to
// ../../blobs/ excepted), and one that is not a regular file. The copy gets the source's
// permission bits, never wider than the process's default (0666 & ~umask).
void copy_input_file(const std::filesystem::path& dir, const std::string& name,
                     const std::filesystem::path& dest_dir);

// Copies one file through AtomicFileWriter, with the source's permission bits (never wider
// than 0666 & ~umask).
void copy_file_atomic(const std::filesystem::path& source, const std::filesystem::path& destination);

// Resolves `dir/name` as copy_input_file would, throwing for the same reasons; returns the path
// to read.
std::filesystem::path checked_input_file(const std::filesystem::path& dir, const std::string& name);

// An exclusive advisory lock on <dir>/.lethe-lock (created with `dir` when missing), held until
// destruction. A second process fails at once with an error that names the folder and `what`
// holds it. The lock file stays behind: it marks the folder as lethe's (owned_by_lethe).
class FolderLock {
 public:
  FolderLock(const std::filesystem::path& dir, const std::string& what);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};

// True when `dir` holds lethe's lock file (a run, demo or similar folder lethe made), or holds
// nothing but lethe's temporaries (`.NAME.tmp.PID.N`, `.NAME.partial.PID.N`).
bool owned_by_lethe(const std::filesystem::path& dir);

// The lock file's name, for listings that must leave it out.
inline constexpr const char* kLockFileName = ".lethe-lock";

}  // namespace lethe
