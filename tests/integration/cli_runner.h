// Running the `lethe` binary under test (LETHE_CLI) from integration tests.
#pragma once

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "lethe/core/file.h"
#include "support/fixtures.h"

namespace lethe::test {

struct Result {
  int code = -1;
  std::string out, err;
};

inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs `lethe args...` in `cwd` (the test's working directory when empty).
inline Result lethe_in(const std::filesystem::path& cwd, const std::vector<std::string>& args) {
  const std::filesystem::path dir = temp_dir("cli");
  std::string cmd = cwd.empty() ? std::string() : "cd " + quote(cwd.string()) + " && ";
  cmd += quote(LETHE_CLI);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " >" + quote((dir / "out").string()) + " 2>" + quote((dir / "err").string());
  Result r;
  const int status = std::system(cmd.c_str());
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(dir / "out");
  r.err = read_file(dir / "err");
  return r;
}

inline Result lethe(const std::vector<std::string>& args) { return lethe_in({}, args); }

// Starts `lethe args...` without waiting; stdout and stderr go to `log`. Returns the pid, for
// kill() and waitpid().
inline pid_t spawn_lethe(const std::vector<std::string>& args, const std::filesystem::path& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    std::vector<std::string> all = {LETHE_CLI};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(LETHE_CLI, argv.data());
    ::_exit(127);
  }
  return pid;
}

// Waits for a spawned process; its exit code, or -signal when a signal ended it.
inline int wait_lethe(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1000;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

inline void expect_one_line_error(const Result& r, const std::string& fragment) {
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(r.err.rfind("lethe: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line expected: " << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << "missing \"" << fragment << "\" in " << r.err;
}

}  // namespace lethe::test
