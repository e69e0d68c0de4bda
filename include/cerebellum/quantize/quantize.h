// quantize: the pipeline end to end. measure (or reuse a journal) ->
// allocate under the byte budget -> build -> evaluate against the stock mix
// closest in size at <= the same bytes -> ship gate. Everything lands in a run
// directory (the evidence; `cerebellum card --run DIR` renders it).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cerebellum/allocate/plan_for.h"
#include "cerebellum/build/quant_error.h"
#include "cerebellum/common/log.h"
#include "cerebellum/measure/measure.h"

namespace cb {

struct AllocationProblem;
struct ModelInfo;

struct QuantizeOptions {
  std::string source;                     // full-precision GGUF
  std::string budget = "Q4_K_M";          // a stock preset name (its file size for this model),
                                          // or bytes "7.4MB" / "7400000" / "3.5bpw"
  std::vector<measure::MeasureText> texts;  // calibration text(s), one per domain
  std::string eval_text;                  // held-out text for the gate; "" = first calibration text
  std::string out;                        // the output GGUF
  std::string run_dir;                    // evidence; "" = <out without .gguf>.run
  std::string journal;                    // reuse/resume this journal; "" = run_dir/measurements.jsonl
  std::string objective = "general";      // allocate --objective
  double noise_z = 1.0;                   // allocate --noise-z (DamageOptions)
  std::string constraints;                // allocate --constraints JSON ("" = defaults)
  std::string quant_error = "auto";       // allocate --quant-error: auto | none | TABLE.json
  // Measured local search after the solver (include/cerebellum/quantize/search.h),
  // on the first calibration text: moves measured (0 = off), chunks per move.
  // Its cost is measured in docs/allocate.md.
  int search_evals = 32;
  int search_chunks = 8;
  double search_seconds = 0;              // 0 = no time limit
  std::string imatrix_path;               // used by build (ours and the baseline alike)
  std::string recipe_from;                // skip measure/allocate: build this recipe and re-bench it
  // Measurement settings (see measure::MeasureOptions for meanings).
  std::string measure_base = "Q4_K_M";
  std::vector<std::string> targets = {"q2_K", "q3_K"};
  std::vector<std::string> promote = {"q5_K", "q6_K", "q8_0"};
  measure::PlanLevel plan = measure::PlanLevel::kTensors;
  int ctx = 512;
  measure::StopRule stop;                 // adaptive stopping of each measurement
  int eval_chunks = 40;                   // chunks of eval_text for the gate (-1 = all)
  int top_k = 32;                         // reference log-probs per token for measuring
  // For the gate: a larger top-K reads absolute KLD closer to the full
  // distribution's (the gap by K: docs/evaluator.md); 8 KiB per token.
  int eval_top_k = 1024;
  // Extra stock mixes evaluated for the card's KLD/PPL-vs-size curve.
  std::vector<std::string> curve_presets;
  int n_threads = 0;                      // 0 = all cores
  int n_gpu_layers = 0;                   // layers offloaded in every evaluation (999 = all)
  int64_t max_device_bytes = 0;           // cap per loaded model (fewer layers offloaded); 0 = none
  int64_t max_host_bytes = 0;             // refuse the sweep up front above this projection; 0 = none
  std::string reference_model;            // reference instead of the source (e.g. a Q8_0); "" = source
  bool force = false;                     // write even when the gate fails
  std::string command_line;               // recorded in commands.txt
  Logger logger;
  ProgressFn progress;
};

struct EvalRecord {
  std::string name;                       // "cerebellum", "stock Q4_K_M", "greedy_original"
  std::string path;
  int64_t size_bytes = 0;
  double ppl = 0, ppl_se = 0;
  double kld_mean = 0, kld_se = 0;
  double top1 = 0;
};

// The search's predicted vs measured ΔKLD (vs the measurement base, on its
// calibration chunks) before and after, and what it cost.
struct SearchSummary {
  int n_evals = 0, n_accepted = 0;
  double elapsed_s = 0;
  double predicted_before = 0, measured_before = 0, measured_before_se = 0;
  double predicted_after = 0, measured_after = 0, measured_after_se = 0;
  double kld_before = 0, kld_after = 0;   // mean KLD vs F16 on the search chunks
};

struct QuantizeResult {
  std::string out;                        // written output ("" when the gate refused)
  std::string run_dir;
  int64_t budget_bytes = 0;
  std::string baseline_preset;
  EvalRecord ours, baseline;
  double delta_kld = 0, delta_kld_se = 0; // ours - baseline, paired per token, nats
  double kld_reduction = 0;               // 1 - ours/baseline
  double predicted_delta_kld = 0;         // the plan's predicted ΔKLD vs the measurement base
  std::optional<SearchSummary> search;    // when the local search ran
  bool ships = false;                     // ours beats the baseline on KLD
  bool written = false;
  double elapsed_s = 0;
};

// Runs the pipeline. Throws (like the stages) on bad input; a failed gate is
// not an exception: ships == false and, without force, nothing is written to
// `out` (the CLI maps that to GateError's exit code).
QuantizeResult run_quantize(const QuantizeOptions& options);

// The stock preset whose file is the smallest at >= size_bytes ("" if none).
// Presets that need an imatrix are considered only when one is given.
std::string closest_stock_preset(const std::string& source, int64_t size_bytes,
                                 const std::string& imatrix_path,
                                 std::map<std::string, int64_t>* preset_sizes = nullptr);

nlohmann::json to_json(const QuantizeResult& r);

}  // namespace cb
