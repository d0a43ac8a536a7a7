// Subcommands of the `lethe` CLI. Each file registers one subcommand; main.cpp owns the global
// options and the single error handler.
#pragma once

#include <CLI/CLI.hpp>
#include <sstream>
#include <string>
#include <vector>

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
void add_probe(CLI::App& app, const GlobalOptions& global);
void add_restor(CLI::App& app, const GlobalOptions& global);
void add_audit(CLI::App& app, const GlobalOptions& global);

// "a,b,,c" -> {"a", "b", "c"}: the comma-separated lists of options (--metrics, --probes).
inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace lethe::cli
