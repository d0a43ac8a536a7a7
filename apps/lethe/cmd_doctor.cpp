// lethe doctor: what this process runs on, and the settings that change speed 2-16x.
#include <nlohmann/json.hpp>

#include <iostream>

#include "commands.h"
#include "lethe/core/runtime.h"
#include "lethe/model/load.h"
#include "lethe/model/rope.h"

namespace lethe::cli {

void add_doctor(CLI::App& app, const GlobalOptions&) {
  auto* cmd = app.add_subcommand("doctor", "Report versions, BLAS, threads, CPU features, CUDA");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print the report as JSON");
  cmd->callback([json] {
    RuntimeReport r = runtime_report();
    // What this build loads: families (model_type), rope_scaling types, checkpoint dtypes.
    const std::vector<std::string> families = model::supported_model_types();
    const std::vector<std::string>& ropes = model::rope_scaling_types();
    const std::vector<std::string> dtypes = {"F32", "BF16", "F16", "F64"};
    auto joined = [](const std::vector<std::string>& v) {
      std::string s;
      for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
      return s;
    };
    if (*json) {
      nlohmann::json j = {{"lethe_version", r.lethe_version},
                          {"torch_version", r.torch_version},
                          {"blas_library", r.blas_library},
                          {"blas_description", r.blas_description},
                          {"reference_blas", r.reference_blas},
                          {"openblas_coretype", r.openblas_coretype},
                          {"threads", r.threads},
                          {"cores", r.cores},
                          {"cpu_model", r.cpu_model},
                          {"cpu_features", r.cpu_features},
                          {"cuda_available", r.cuda_available},
                          {"cuda_devices", r.cuda_devices},
                          {"model_types", families},
                          {"rope_scaling_types", ropes},
                          {"checkpoint_dtypes", dtypes}};
      std::cout << j.dump(2) << "\n";
    } else {
      std::string features;
      for (const auto& f : r.cpu_features) features += (features.empty() ? "" : " ") + f;
      std::cout << "lethe      " << r.lethe_version << "\n"
                << "libtorch   " << r.torch_version << "\n"
                << "BLAS       " << (r.blas_library.empty() ? "(none mapped)" : r.blas_library)
                << "\n";
      if (!r.blas_description.empty()) std::cout << "           " << r.blas_description << "\n";
      std::cout << "OPENBLAS_CORETYPE "
                << (r.openblas_coretype.empty() ? "(unset: auto-detected kernels)"
                                                : r.openblas_coretype)
                << "\n"
                << "threads    " << r.threads << " of " << r.cores << " cores\n"
                << "CPU        " << r.cpu_model << "\n"
                << "features   " << (features.empty() ? "(none detected)" : features) << "\n"
                << "CUDA       "
                << (r.cuda_available ? std::to_string(r.cuda_devices) + " device(s)"
                                     : std::string("not available in this libtorch"))
                << "\n"
                << "families   " << joined(families) << "\n"
                << "rope       " << joined(ropes) << "\n"
                << "weights    " << joined(dtypes) << " checkpoints load; computed in fp32\n";
    }
    if (r.reference_blas) {
      std::cerr << "\nWARNING: libtorch is using the reference BLAS (" << r.blas_library
                << "), about 16x slower than OpenBLAS.\n"
                << "         Install libopenblas0-openmp (scripts/install-deps.sh does) and make "
                   "it the libblas.so.3 alternative.\n";
    }
  });
}

}  // namespace lethe::cli
