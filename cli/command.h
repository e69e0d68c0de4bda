// Subcommand registry: each cli/<name>.cc registers itself with
// CB_REGISTER_COMMAND; main() adds them all to the CLI11 app.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace cb::cli {

using CommandSetup = std::function<void(CLI::App& app)>;

struct CommandEntry {
  std::string name;
  int order;  // position in --help: pipeline order
  CommandSetup setup;
};

std::vector<CommandEntry>& command_registry();

struct CommandRegistrar {
  CommandRegistrar(std::string name, int order, CommandSetup setup) {
    command_registry().push_back({std::move(name), order, std::move(setup)});
  }
};

#define CB_REGISTER_COMMAND(name, order, fn) \
  static ::cb::cli::CommandRegistrar cb_registrar_##fn(name, order, fn)

}  // namespace cb::cli
