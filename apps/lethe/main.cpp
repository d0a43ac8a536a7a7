// lethe: make a language model forget, prove it, hand back a deployable model.
#include <c10/util/Exception.h>

#include <cstdio>
#include <exception>

#include "commands.h"
#include "lethe/core/error.h"
#include "lethe/core/log.h"
#include "lethe/core/runtime.h"

int main(int argc, char** argv) {
  CLI::App app{"lethe " LETHE_VERSION
               " — make a language model forget specific data, prove it, export it"};
  app.set_version_flag("--version", "lethe " LETHE_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  lethe::cli::GlobalOptions global;
  app.add_option("--threads", global.threads, "Intra-op threads (default: all available cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--device", global.device, "cpu, cuda or cuda:N (default: cpu)");
  bool quiet = false, verbose = false;
  app.add_flag("-q,--quiet", quiet, "Only print errors and results");
  app.add_flag("-v,--verbose", verbose, "Print debug messages");
  app.parse_complete_callback([&] {
    if (quiet) lethe::set_log_level(lethe::LogLevel::kWarn);
    if (verbose) lethe::set_log_level(lethe::LogLevel::kDebug);
    lethe::configure_runtime(global.threads);
    (void)lethe::parse_device(global.device);  // reject a bad --device before any work
  });

  lethe::cli::add_doctor(app, global);
  lethe::cli::add_info(app, global);
  lethe::cli::add_generate(app, global);
  lethe::cli::add_convert(app, global);
  lethe::cli::add_tokenize(app, global);
  lethe::cli::add_train(app, global);
  lethe::cli::add_eval(app, global);
  lethe::cli::add_world(app, global);
  lethe::cli::add_demo(app, global);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const lethe::Error& e) {
    std::fprintf(stderr, "lethe: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "lethe: error (libtorch): %s\n", e.what_without_backtrace());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lethe: error: %s\n", e.what());
    return 2;
  }
  return 0;
}
