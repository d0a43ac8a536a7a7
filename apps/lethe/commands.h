// Subcommands of the `lethe` CLI. Each file registers one subcommand; main.cpp owns the global
// options and the single error handler.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace lethe::cli {

struct GlobalOptions {
  int threads = 0;             // 0: all available cores
  std::string device = "cpu";  // cpu | cuda | cuda:N
  bool device_given = false;   // --device was on the command line
};

void add_doctor(CLI::App& app, const GlobalOptions& global);
void add_info(CLI::App& app, const GlobalOptions& global);
void add_generate(CLI::App& app, const GlobalOptions& global);
void add_convert(CLI::App& app, const GlobalOptions& global);
void add_tokenize(CLI::App& app, const GlobalOptions& global);
void add_chat_template(CLI::App& app, const GlobalOptions& global);
void add_train(CLI::App& app, const GlobalOptions& global);
void add_eval(CLI::App& app, const GlobalOptions& global);
void add_world(CLI::App& app, const GlobalOptions& global);
void add_demo(CLI::App& app, const GlobalOptions& global);

}  // namespace lethe::cli
