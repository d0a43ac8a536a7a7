#include "lethe/core/runtime.h"

#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include "lethe/core/error.h"
#include "lethe/core/version.h"

namespace lethe {

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

void set_threads(int n) { at::set_num_threads(n <= 0 ? available_cores() : n); }

int threads() { return at::get_num_threads(); }

void tune_allocator() {
  constexpr int kOneGiB = 1 << 30;
  mallopt(M_MMAP_THRESHOLD, kOneGiB);
  mallopt(M_TRIM_THRESHOLD, kOneGiB);
}

void configure_runtime(int n) {
  tune_allocator();
  install_caching_cpu_allocator();
  set_threads(n);
}

c10::Device parse_device(const std::string& name) {
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(name);
  } catch (const std::exception&) {
    fail("unknown device '", name, "' (use cpu, cuda or cuda:N)");
  }
  LETHE_CHECK(device.is_cpu() || device.is_cuda(), "unsupported device '", name,
              "' (use cpu, cuda or cuda:N)");
  if (device.is_cuda()) {
    LETHE_CHECK(torch::cuda::is_available(), "device '", name,
                "' requested but this libtorch has no usable CUDA (Debian's libtorch-dev is "
                "CPU-only; build against a CUDA libtorch to use a GPU)");
    const int count = static_cast<int>(torch::cuda::device_count());
    LETHE_CHECK(!device.has_index() || device.index() < count, "device '", name,
                "' does not exist (", count, " CUDA devices)");
  }
  return device;
}

namespace {

std::string blas_from_maps() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  std::set<std::string> seen;
  std::string found;
  while (std::getline(maps, line)) {
    auto pos = line.find('/');
    if (pos == std::string::npos) continue;
    std::string path = line.substr(pos);
    std::string file = std::filesystem::path(path).filename().string();
    const bool is_blas = file.find("blas") != std::string::npos ||
                         file.find("mkl_rt") != std::string::npos ||
                         file.find("libmkl") != std::string::npos;
    if (!is_blas || !seen.insert(path).second) continue;
    std::error_code ec;
    auto real = std::filesystem::canonical(path, ec);
    found += (found.empty() ? "" : ", ") + (ec ? path : real.string());
  }
  return found;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto pos = line.find(':');
      if (pos != std::string::npos) return line.substr(pos + 2);
    }
  }
  return "unknown";
}

std::vector<std::string> cpu_features() {
  std::vector<std::string> out;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx")) out.push_back("avx");
  if (__builtin_cpu_supports("avx2")) out.push_back("avx2");
  if (__builtin_cpu_supports("fma")) out.push_back("fma");
  if (__builtin_cpu_supports("avx512f")) out.push_back("avx512f");
  if (__builtin_cpu_supports("avx512bw")) out.push_back("avx512bw");
  if (__builtin_cpu_supports("avx512vl")) out.push_back("avx512vl");
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      std::istringstream ss(line.substr(line.find(':') + 1));
      std::string f;
      while (ss >> f) {
        if (f == "avx512_bf16" || f == "amx_bf16" || f == "avx_vnni" || f == "avx512_vnni")
          out.push_back(f);
      }
      break;
    }
  }
#endif
  return out;
}

}  // namespace

RuntimeReport runtime_report() {
  RuntimeReport r;
  r.lethe_version = version();
  r.torch_version = TORCH_VERSION;
  r.blas_library = blas_from_maps();
  using ConfigFn = char* (*)();
  if (auto cfg = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    r.blas_description = cfg();
    if (auto core = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"))) {
      r.blas_description += ", core " + std::string(core());
    }
  }
  const bool openblas = !r.blas_description.empty() ||
                        r.blas_library.find("openblas") != std::string::npos;
  const bool mkl = r.blas_library.find("mkl") != std::string::npos;
  r.reference_blas = !openblas && !mkl && !r.blas_library.empty();
  if (const char* ct = std::getenv("OPENBLAS_CORETYPE")) r.openblas_coretype = ct;
  r.threads = at::get_num_threads();
  r.cores = available_cores();
  r.cpu_model = cpu_model();
  r.cpu_features = cpu_features();
  r.cuda_available = torch::cuda::is_available();
  r.cuda_devices = r.cuda_available ? static_cast<int>(torch::cuda::device_count()) : 0;
  return r;
}

}  // namespace lethe
