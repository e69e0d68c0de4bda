// card: the model card of a run directory (docs/card.md). Reads what
// `cerebellum quantize` wrote (run.json, measurements.jsonl, plan.json,
// tensor_types.txt, eval.json, bench/summary.json, commands.txt), measures the
// build's speed and memory on this machine, draws two SVG figures and writes
// CARD.md plus a reproducibility bundle (DIR/bundle/ with a sha256 MANIFEST).
// Optional inputs that are absent are listed in the card as "not run".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cerebellum/card/machine.h"
#include "cerebellum/common/log.h"
#include "cerebellum/common/schemas.h"

namespace cb::card {


// run.json (cerebellum.run/1): what was built from what, how.
struct RunInfo {
  std::string source_path, source_sha256;
  std::string output_path;          // relative paths are relative to the run dir
  std::string output_sha256;
  int64_t output_size_bytes = 0;
  std::string budget;               // as given, e.g. "8.0MB" or "3.5bpw"
  int64_t budget_bytes = 0;         // resolved; 0 = unknown
  std::string llama_cpp_version;    // e.g. "de3ff815"
  std::vector<std::string> flags;   // e.g. "use_extra_bufts=false", "--objective general"
};

nlohmann::json to_json(const RunInfo& r);
// Throws InputError naming `where` (bad JSON / missing fields) or MismatchError
// (another schema version).
RunInfo run_info_from_json(const nlohmann::json& j, const std::string& where);

// One model of eval.json (cerebellum.runeval/1): our build or a stock mix.
struct EvalEntry {
  std::string name;                 // "cerebellum", "Q4_K_M", ...
  std::string kind = "stock";       // "build" | "stock" | "weight_error_only" | "reference"
  int64_t size_bytes = 0;
  std::optional<double> ppl, ppl_se, kld_mean, kld_se;
  std::optional<double> kld_p999, top1;  // the tail and top-1 agreement, when recorded
};

// Reads eval.json: {"schema":..., "models":[...]} or a bare list of entries.
std::vector<EvalEntry> read_eval(const std::string& path);

// One held-out text of eval.json's "domains" (quantize with several --eval-text).
struct EvalDomain {
  std::string domain, eval_text;
  std::vector<EvalEntry> models;
};
std::vector<EvalDomain> read_eval_domains(const std::string& path);  // empty when eval.json has no "domains"

struct CardOptions {
  bool measure_speed = true;        // load the build and time pp / tg
  SpeedOptions speed;               // pp 512, tg 128, threads
  // With measure_speed: also build the stock mix of the same size (the one
  // quantize's gate compared with: under --fit, the largest that fits the
  // same deployment; else eval.json's stock mix nearest in size) from the
  // source into a temporary file and time it interleaved with the build.
  bool speed_vs_stock = true;
  // Contexts of the memory table, each created by llama.cpp with the build
  // loaded (the run's --fit settings when it had them).
  std::vector<int> memory_ctx{2048, 8192, 16384, 32768};
  bool write_bundle = true;         // DIR/bundle/ with MANIFEST
};

// The same-size stock mix timed next to the build.
struct StockSpeed {
  std::string preset;                // e.g. "Q4_K_M"; "" = no stock mix to compare with
  int64_t size_bytes = 0;            // its file, as built
  std::optional<SpeedResult> speed;  // empty when it could not be timed (`note` says why)
  std::string note;
};

struct CardResult {
  std::string card_path;
  std::vector<std::string> svg_paths;       // figures written
  std::vector<std::string> not_run;         // optional inputs that were absent
  std::string bundle_dir;                   // "" if not written
  std::optional<SpeedResult> speed;
  std::optional<StockSpeed> stock_speed;    // with speed_vs_stock
  MemoryReport memory;
  std::string markdown;                     // the card's text
};

// Renders the card of run directory `run_dir` into `card_path` (figures next
// to it, in "<card stem>_files/"). InputError if the run dir has no model
// (model.gguf nor run.json's output_path) or a present file is malformed.
CardResult render_card(const std::string& run_dir, const std::string& card_path,
                       const CardOptions& options, const Logger& logger = {},
                       const ProgressFn& progress = {});

}  // namespace cb::card
