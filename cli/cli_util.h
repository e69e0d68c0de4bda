// Shared CLI helpers: stderr logger, terminal progress with ETA (JSON lines
// when stderr is not a TTY), JSON output.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cerebellum/allocate/fit.h"
#include "cerebellum/common/log.h"
#include "cerebellum/measure/measure.h"

namespace cb::cli {

// Global flags, set by main before a subcommand runs.
struct GlobalOptions {
  bool verbose = false;
  bool quiet = false;
};
GlobalOptions& global_options();

// Logger printing warnings (and info unless --quiet, debug with --verbose) to stderr.
Logger stderr_logger();

// Progress display: a single updating line with rate and ETA on a TTY,
// one JSON object per update (throttled) otherwise.
class ProgressPrinter {
 public:
  ProgressPrinter();
  void operator()(const Progress& p);
  void finish();
  ProgressFn fn();

 private:
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
  std::string stage_;
  bool dirty_ = false;
};

// Print JSON to stdout, pretty.
void print_json(const nlohmann::json& j);

// Repeated flag values, each a comma list: {"a,b", "c"} -> {"a", "b", "c"}.
std::vector<std::string> split_commas(const std::vector<std::string>& values);

// --text/--domain, --eval-text/--eval-domain: one domain per file, named by
// `names` (comma lists or repeats; as many as files) or else the file's stem.
// UsageError naming `flag` when the counts differ.
std::vector<measure::MeasureText> texts_with_domains(const std::vector<std::string>& paths,
                                                    const std::vector<std::string>& names, const char* flag);

// --fit and its companions (allocate, quantize): one set of flags.
void add_fit_options(CLI::App* cmd, FitOptions& fit);

// Format bytes as "27.47 MB (27,471,424 B)".
std::string human_bytes(int64_t bytes);

}  // namespace cb::cli
