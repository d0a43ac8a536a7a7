// lethe: make a language model forget, prove it, hand back a deployable model.
#include <c10/util/Exception.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <new>
#include <string>

#include "commands.h"
#include "lethe/core/error.h"
#include "lethe/core/log.h"
#include "lethe/core/runtime.h"
#include "lethe/core/version.h"
#include "lethe/model/load.h"

namespace {
// Library messages are one line; libtorch's may carry more (a trace, a hint).
std::string first_line(const char* what) {
  std::string s = what;
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{std::string("lethe ") + lethe::version() +
               " — make a language model forget specific data, prove it, export it"};
  app.set_version_flag("--version", std::string("lethe ") + lethe::version());
  app.require_subcommand(1);
  app.fallthrough();
  lethe::cli::GlobalOptions global;
  app.add_option("--threads", global.threads, "Intra-op threads (default: all available cores)")
      ->check(CLI::NonNegativeNumber);
  auto* device_opt = app.add_option("--device", global.device, "cpu, cuda or cuda:N (default: cpu)");
  bool quiet = false, verbose = false, allow_nonfinite = false;
  app.add_flag("--allow-nonfinite", allow_nonfinite, "Load weights that hold NaN or Inf (refused by default)");
  app.add_flag("-q,--quiet", quiet, "Only print errors and results");
  app.add_flag("-v,--verbose", verbose, "Print debug messages");
  app.parse_complete_callback([&] {
    if (quiet) lethe::set_log_level(lethe::LogLevel::kWarn);
    if (verbose) lethe::set_log_level(lethe::LogLevel::kDebug);
    lethe::configure_runtime(global.threads);
    lethe::model::set_allow_nonfinite(allow_nonfinite);
    (void)lethe::parse_device(global.device);  // reject a bad --device before any work
    global.device_given = device_opt->count() > 0;
  });

  lethe::cli::add_doctor(app, global);
  lethe::cli::add_info(app, global);
  lethe::cli::add_generate(app, global);
  lethe::cli::add_convert(app, global);
  lethe::cli::add_tokenize(app, global);
  lethe::cli::add_chat_template(app, global);
  lethe::cli::add_train(app, global);
  lethe::cli::add_eval(app, global);
  lethe::cli::add_world(app, global);
  lethe::cli::add_demo(app, global);
  lethe::cli::add_probe(app, global);
  lethe::cli::add_restor(app, global);
  lethe::cli::add_audit(app, global);

  // The exit-code contract (README): 0 success, 1 an error lethe reports, 2 a usage error.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help and --version are successes
  } catch (const lethe::Error& e) {
    std::fprintf(stderr, "lethe: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "lethe: error: libtorch: %s\n", first_line(e.what_without_backtrace()).c_str());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "lethe: error: out of memory (a size in the model's config.json or the options may be too large)\n");
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    std::fprintf(stderr, "lethe: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lethe: error: %s\n", first_line(e.what()).c_str());
    return 1;
  }
  return 0;
}
