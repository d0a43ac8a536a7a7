// Fixture lookup (../shared/README.md): $LETHE_FIXTURES, else <repo>/../shared. A test whose
// fixture is missing is skipped with the path it looked for — or fails when
// LETHE_REQUIRE_FIXTURES=1 (as in CI).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <vector>
#include <string>

namespace lethe::test {

std::filesystem::path shared_dir();
// $LETHE_GOLDEN_DIR, else shared_dir()/golden/hf.
// The first golden folder (../shared/golden/hf unless LETHE_GOLDEN_DIR says otherwise).
std::filesystem::path golden_dir();
// Every golden folder: LETHE_GOLDEN_DIR (several separated by ':'), else ../shared/golden/hf and
// ../shared/golden/hf-4.43.
std::vector<std::filesystem::path> golden_dirs();
bool fixtures_required();
// A fresh empty directory under the system temp dir, removed at process exit.
std::filesystem::path temp_dir(const std::string& tag);
// The repository's tests/ folder.
std::filesystem::path tests_dir();

}  // namespace lethe::test

// Skips (or fails, under LETHE_REQUIRE_FIXTURES=1) the current test when `fixture` is missing.
#define LETHE_NEED_FIXTURE(fixture)                                                           \
  do {                                                                                     \
    const std::filesystem::path lethe_fixture_path_ = (fixture);                              \
    if (!std::filesystem::exists(lethe_fixture_path_)) {                                   \
      if (::lethe::test::fixtures_required()) {                                            \
        FAIL() << "fixture missing (LETHE_REQUIRE_FIXTURES=1): " << lethe_fixture_path_;   \
      } else {                                                                             \
        GTEST_SKIP() << "fixture missing: " << lethe_fixture_path_                         \
                     << " (set LETHE_FIXTURES to the shared/ folder)";                     \
      }                                                                                    \
    }                                                                                      \
  } while (0)
