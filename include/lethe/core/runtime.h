// Process-wide runtime settings and the facts `lethe doctor` reports.
//
// Two settings change speed by 2-16x on the machines lethe targets (docs/performance.md):
// libtorch's intra-op thread count (1 by default when OMP_NUM_THREADS is unset) and glibc's
// habit of returning large freed blocks to the kernel, after which every large temporary pays
// for first-touch page faults again. Programs call configure_runtime() once at start-up.
#pragma once

#include <c10/core/Device.h>

#include <string>
#include <vector>

namespace lethe {

// Cores this process may run on (sched_getaffinity), at least 1.
int available_cores();
// Sets libtorch's intra-op thread count; n <= 0 means available_cores().
void set_threads(int n);
int threads();
// Raises glibc's mmap and trim thresholds to 1 GiB so large tensors are reused from warm
// memory instead of being unmapped and faulted in again (performance.md fact 4).
void tune_allocator();
// Makes libtorch's CPU allocator keep blocks of 1 MiB and more for reuse instead of returning
// them to glibc, whose heap then grows and faults fresh pages in on every step (see
// src/lethe/core/cpu_allocator.cpp). Idempotent; affects tensors allocated afterwards.
void install_caching_cpu_allocator();
// tune_allocator() + install_caching_cpu_allocator() + set_threads(threads).
void configure_runtime(int threads);

// "cpu", "cuda" or "cuda:N". Throws lethe::Error when the device is unknown or this libtorch
// cannot use it (Debian's libtorch is CPU-only).
c10::Device parse_device(const std::string& name);

struct RuntimeReport {
  std::string lethe_version;
  std::string torch_version;
  std::string blas_library;      // resolved path of the BLAS mapped into this process
  std::string blas_description;  // OpenBLAS config / core, when OpenBLAS
  bool reference_blas = false;   // the netlib reference BLAS: ~16x slower
  std::string openblas_coretype;  // $OPENBLAS_CORETYPE, empty if unset
  int threads = 0;
  int cores = 0;
  std::string cpu_model;
  std::vector<std::string> cpu_features;  // of avx, avx2, fma, avx512f, avx512bw, avx512_bf16, ...
  bool cuda_available = false;
  int cuda_devices = 0;
};

RuntimeReport runtime_report();

}  // namespace lethe
