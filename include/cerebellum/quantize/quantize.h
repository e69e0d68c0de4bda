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
#include "cerebellum/bench/bench.h"
#include "cerebellum/build/quant_error.h"
#include "cerebellum/common/log.h"
#include "cerebellum/measure/measure.h"
#include "cerebellum/quantize/search.h"

namespace cb {

struct AllocationProblem;
struct ModelInfo;

// The gate: ours and the same-size stock mix against the full-precision
// reference on held-out text, each domain on its own.
struct GateOptions {
  // Held-out texts, one per domain (e.g. prose and code: issue 14); ours must
  // ship on every one. Empty = the first calibration text.
  // Empty = the last held_out_fraction of the first calibration text (cut at
  // a line; issue 13): measuring and searching read only the rest, so the
  // verdict is on text neither saw. A reused --journal keeps its whole text
  // and the gate reads it (a warning says so).
  std::vector<measure::MeasureText> eval_texts;
  double held_out_fraction = 0.25;
  int eval_chunks = 40;                   // chunks of each eval text (-1 = all)
  // A larger top-K reads absolute KLD closer to the full distribution's (the
  // gap by K: docs/evaluator.md); 8 KiB per token.
  int top_k = 1024;
  std::vector<std::string> curve_presets; // extra stock mixes evaluated for the card's curve
  bool force = false;                     // write even when the gate fails
  // Ours must also beat the rivals a user could pick at no more of our bytes
  // (rival_presets, and the weight-error-only plan when ours is measured):
  // "ships" means it beats all of them (issue 14). Off: only the baseline.
  bool rivals = true;
  // The task gate (`--bench TASKS`): ours and the baseline on these bench
  // tasks, per question; a significant regression (paired McNemar, p <
  // gate_alpha) does not ship. Empty tasks = no task gate.
  bench::BenchOptions bench;
};

// Precision where the plan's decisions are made (issue 13): after the sweep,
// the tensors whose chosen type lies within z standard errors of an
// alternative at the budget's price of a byte (allocate/marginal.h) have
// their measurements re-measured with twice the chunks (up to the sweep's
// max_chunks), and the plan is solved again. Rounds end when no marginal
// tensor can be measured further ("stable"), at max_rounds, or when the next
// round would take the extra chunks past max_extra_chunks_frac of the
// sweep's own. Not with --fit's two pools or a speed floor (their plans are
// not one budget's knapsack).
// Off by default: on cb-dense-12l it cost +51% of the sweep's chunks and did
// not move held-out KLD beyond noise (docs/allocate.md, "Refining the
// marginal units").
struct RefineOptions {
  int max_rounds = 0;                   // 0 = off; quantize --refine-rounds
  double z = 1.0;
  double max_extra_chunks_frac = 0.5;   // of the chunks the sweep's measurements hold
};

struct RefineRound {
  int n_marginal = 0;                   // marginal tensors in the plan solved before the round
  int n_remeasured = 0;                 // measurements re-measured in the round
  int64_t chunks = 0;                   // chunks the round evaluated
  int n_moved = 0;                      // tensors whose type the re-solved plan changed
  double predicted_delta_kld = 0;       // the re-solved plan's prediction vs the base
};

struct RefineReport {
  double price_kld_per_byte = 0;        // the budget's price of a byte (the first plan's)
  int64_t sweep_chunks = 0, extra_chunks = 0;
  std::vector<RefineRound> rounds;
  std::string stopped;                  // "stable" | "at the chunk cap" | "rounds" | "chunk budget" | "off"
  std::vector<std::string> marginal_left;  // tensors still marginal at the end
};

// The run is composed of the stages' own option structs, with their own
// defaults. Settings every stage shares are set once, in `measure` (ctx,
// n_threads, n_gpu_layers, max_device_bytes, reference_model) and in
// `allocate` (imatrix_path: the sweep's search, our build and the baseline
// use it too); run_quantize hands them on. Paths, resume, logger and progress
// of the stages are also set by run_quantize.
struct QuantizeOptions {
  std::string source;                     // full-precision GGUF
  std::string out;                        // the output GGUF
  std::string run_dir;                    // evidence; "" = <out without .gguf>.run
  std::string journal;                    // reuse/resume this journal; "" = run_dir/measurements.jsonl
  std::string recipe_from;                // skip measure/allocate: build this recipe and re-bench it
  measure::MeasureOptions measure = measure::end_to_end_sweep();
  AllocateOptions allocate{.budget = "Q4_K_M"};
  // Measured local search after the solver (max_evals 0 = off); its text is
  // the first calibration text, its chunks follow the sweep's. Its cost is
  // measured in docs/allocate.md.
  SearchOptions search;
  RefineOptions refine;
  GateOptions gate;
  // --fit: the contexts of the memory-by-context table measured on the built
  // file (fit.json's verified.by_context); stops at the first llama.cpp cannot create.
  std::vector<int64_t> fit_table_contexts{2048, 4096, 8192, 16384, 32768};
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
  double kld_p99 = 0, kld_p999 = 0;       // tails: 99th and 99.9th percentile per-token KLD
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
  int n_rounds = 0;                       // correction rounds measured (SearchOptions::correction_rounds)
  std::string start_from;                 // the plan the moves started from: "solver" | "round N" | "base"
};

// The gate on one held-out text.
struct GateDomain {
  std::string domain, eval_text;
  EvalRecord ours, baseline;
  std::vector<EvalRecord> rivals;         // in QuantizeResult::rivals' order
  double delta_kld = 0, delta_kld_se = 0; // ours - baseline, paired per token, nats
  double kld_reduction = 0;               // 1 - ours/baseline
  bool ships = false;                     // beats the baseline and every rival on this text
};

struct QuantizeResult {
  std::string out;                        // written output ("" when the gate refused)
  std::string run_dir;
  int64_t budget_bytes = 0;
  std::string baseline_preset;
  // Every eval text's gate; ours / baseline / rivals / delta_kld /
  // kld_reduction below are the first text's (the primary).
  std::vector<GateDomain> domains;
  EvalRecord ours, baseline;
  double delta_kld = 0, delta_kld_se = 0; // ours - baseline, paired per token, nats
  double kld_reduction = 0;               // 1 - ours/baseline
  // The plan's predicted ΔKLD vs the measurement base; none for the
  // weight-error-only plan (its damages are not nats).
  std::optional<double> predicted_delta_kld;
  std::optional<SearchSummary> search;    // when the local search ran
  std::optional<RefineReport> refine;     // when the sweep was refined (RefineOptions)
  // The rivals (GateOptions::rivals): stock presets and "weight-error only".
  std::vector<EvalRecord> rivals;
  // The task gate's verdict when it ran (GateOptions::bench): ships, and why not.
  std::optional<bench::GateVerdict> task_gate;
  bool ships = false;                     // ours beats the baseline and every rival on KLD on every
                                          // eval text (and passes the task gate)
  bool written = false;
  double elapsed_s = 0;
  std::optional<FitReport> fit;           // --fit: the deployment planned for
  std::optional<FitCheck> fit_check;      // and the built file measured in it
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

// The stock rivals of a file of `size_bytes`: per preset family ("k", "iq",
// "legacy"; StockMix::family), the largest preset whose file is no larger
// (the best of its family at our bytes), aliases once, `except` left out.
// Presets our build cannot make without an imatrix are skipped when
// imatrix_path is "". `sizes` receives every size computed.
// With `fit`, "within our bytes" is "fits the same deployment" (size_bytes unused).
std::vector<std::string> rival_presets(const ModelInfo& model, int64_t size_bytes, const std::string& imatrix_path,
                                       const std::string& except, std::map<std::string, int64_t>* sizes = nullptr,
                                       const FitReport* fit = nullptr);

nlohmann::json to_json(const QuantizeResult& r);

}  // namespace cb
