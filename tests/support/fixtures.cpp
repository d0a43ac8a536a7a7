#include "support/fixtures.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace lethe::test {
namespace fs = std::filesystem;

fs::path shared_dir() {
  if (const char* v = std::getenv("LETHE_FIXTURES"); v != nullptr && *v != '\0') return v;
  return fs::path(LETHE_SOURCE_DIR) / ".." / "shared";
}

fs::path golden_dir() {
  if (const char* v = std::getenv("LETHE_GOLDEN_DIR"); v != nullptr && *v != '\0') return v;
  return shared_dir() / "golden" / "hf";
}

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
