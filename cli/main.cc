// cerebellum: measure-driven mixed-precision quantization for llama.cpp.
// A thin driver: each subcommand lives in its own cli/<name>.cc; errors are
// mapped to exit codes here (see docs/errors.md).
#include <algorithm>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
std::vector<CommandEntry>& command_registry() {
  static std::vector<CommandEntry> registry;
  return registry;
}
}  // namespace cb::cli

int main(int argc, char** argv) {
  using namespace cb;
  CLI::App app{"cerebellum: measure tensor sensitivity, spend a byte budget where it matters, "
               "write a GGUF that stock llama.cpp runs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("cerebellum ") + CB_VERSION);
  app.add_flag("-v,--verbose", cli::global_options().verbose, "show engine and debug output");
  app.add_flag("-q,--quiet", cli::global_options().quiet, "only warnings and errors");
  auto& registry = cli::command_registry();
  std::sort(registry.begin(), registry.end(),
            [](const auto& a, const auto& b) { return a.order < b.order; });
  for (auto& entry : registry) entry.setup(app);
  install_interrupt_cleanup();  // Ctrl-C, kill, a closed terminal: no *.tmp.<pid> left
  set_io_logger(cli::stderr_logger());
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : static_cast<int>(ExitCode::kUsage);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: internal: %s\n", e.what());
    return static_cast<int>(ExitCode::kInternal);
  }
  return 0;
}
