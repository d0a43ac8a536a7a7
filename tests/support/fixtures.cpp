#include "support/fixtures.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

namespace lethe::test {
namespace fs = std::filesystem;

fs::path shared_dir() {
  if (const char* v = std::getenv("LETHE_FIXTURES"); v != nullptr && *v != '\0') return v;
  return fs::path(LETHE_SOURCE_DIR) / ".." / "shared";
}

std::vector<fs::path> golden_dirs() {
  std::vector<fs::path> out;
  if (const char* v = std::getenv("LETHE_GOLDEN_DIR"); v != nullptr && *v != '\0') {
    std::string list = v;
    for (std::size_t start = 0; start <= list.size();) {
      const std::size_t end = std::min(list.find(':', start), list.size());
      if (end > start) out.emplace_back(list.substr(start, end - start));
      start = end + 1;
    }
  }
  if (out.empty()) out = {shared_dir() / "golden" / "hf", shared_dir() / "golden" / "hf-4.43"};
  return out;
}

fs::path golden_dir() { return golden_dirs().front(); }

bool fixtures_required() {
  const char* v = std::getenv("LETHE_REQUIRE_FIXTURES");
  return v != nullptr && std::string(v) == "1";
}

fs::path tests_dir() { return fs::path(LETHE_SOURCE_DIR) / "tests"; }

namespace {
struct TempDirs {
  std::mutex mu;
  std::vector<fs::path> dirs;
  ~TempDirs() {
    for (const auto& d : dirs) {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  }
};
TempDirs& temp_dirs() {
  static TempDirs t;
  return t;
}
}  // namespace

fs::path temp_dir(const std::string& tag) {
  static std::atomic<int> counter{0};
  fs::path d = fs::temp_directory_path() /
               ("lethe-test-" + tag + "-" + std::to_string(::getpid()) + "-" +
                std::to_string(counter++));
  fs::remove_all(d);
  fs::create_directories(d);
  std::lock_guard<std::mutex> lock(temp_dirs().mu);
  temp_dirs().dirs.push_back(d);
  return d;
}

}  // namespace lethe::test
