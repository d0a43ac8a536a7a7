// Finds and opens liblethe_sentencepiece.so (see spm_backend.h).
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "lethe/core/error.h"
#include "text/spm_backend.h"

namespace lethe::text {
namespace fs = std::filesystem;
namespace {

constexpr const char* kPlugin = "liblethe_sentencepiece.so";

struct Plugin {
  SpmCreateFn create = nullptr;
  SpmTrainFn train = nullptr;
};

// $LETHE_PLUGIN_DIR, then <executable dir>/../lib (build tree and installs), then the build
// tree this copy of lethe was compiled in.
std::vector<fs::path> candidates() {
  std::vector<fs::path> out;
  if (const char* d = std::getenv("LETHE_PLUGIN_DIR"); d != nullptr && *d != '\0') out.push_back(fs::path(d) / kPlugin);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) out.push_back(exe.parent_path().parent_path() / "lib" / kPlugin);
#ifdef LETHE_PLUGIN_BUILD_DIR
  out.push_back(fs::path(LETHE_PLUGIN_BUILD_DIR) / kPlugin);
#endif
  return out;
}

// RTLD_DEEPBIND keeps the plugin's protobuf apart from libtorch's. AddressSanitizer cannot run
// deep-bound libraries; the fuzz build, which loads no libtorch, binds normally.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LETHE_NO_DEEPBIND 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define LETHE_NO_DEEPBIND 1
#endif
#ifdef LETHE_NO_DEEPBIND
constexpr int kDeepBind = 0;
#else
constexpr int kDeepBind = RTLD_DEEPBIND;
#endif

const Plugin& plugin() {
  static std::once_flag once;
  static Plugin p;
  static std::string failure;
  std::call_once(once, [] {
    std::string tried;
    for (const auto& path : candidates()) {
      tried += (tried.empty() ? "" : ", ") + path.string();
      if (!fs::exists(path)) continue;
      void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | kDeepBind);
      if (h == nullptr) {
        failure = std::string("cannot open ") + path.string() + ": " + dlerror();
        return;
      }
      p.create = reinterpret_cast<SpmCreateFn>(dlsym(h, "lethe_spm_create"));
      p.train = reinterpret_cast<SpmTrainFn>(dlsym(h, "lethe_spm_train"));
      if (p.create == nullptr || p.train == nullptr) failure = path.string() + " is not lethe's SentencePiece plugin";
      return;
    }
    failure = std::string("the SentencePiece plugin ") + kPlugin + " was not found (looked in " + tried +
              "; set LETHE_PLUGIN_DIR to the folder that holds it)";
  });
  LETHE_CHECK(failure.empty(), failure);
  return p;
}

}  // namespace

std::unique_ptr<SpmBackend> spm_load(const std::string& bytes, const std::string& source) {
  std::string error;
  std::unique_ptr<SpmBackend> b(plugin().create(&bytes, &error));
  LETHE_CHECK(b != nullptr, source, ": not a SentencePiece model (", error, ")");
  return b;
}

std::string spm_train(const std::vector<std::string>& sentences,
                      const std::unordered_map<std::string, std::string>& args) {
  std::string model, error;
  LETHE_CHECK(plugin().train(&sentences, &args, &model, &error), "SentencePiece training failed: ", error);
  return model;
}

}  // namespace lethe::text
