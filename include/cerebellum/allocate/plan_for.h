// The allocation entry point: a journal, the model and a budget spec in, the
// plan out. `cerebellum allocate` and `quantize` both call plan_for; the
// budget reaches the solver in three hops (plan_for -> allocate_plan ->
// solve_mckp, docs/architecture.md).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/allocate/fit.h"
#include "cerebellum/allocate/speed.h"
#include "cerebellum/build/quant_error.h"
#include "cerebellum/common/log.h"

namespace cb {

struct AllocateOptions {
  // File bytes ("7.4MB", "7400000", "7MiB"), bits per weight ("3.5bpw") or a
  // stock preset name ("Q4_K_M": that preset's exact file size for this model).
  std::string budget;
  // A deployment instead of file bytes (`--fit 16GiB@8192`, issue 17); when
  // set, `budget` is ignored.
  FitOptions fit;
  // `--min-decode-speed`: the plan must decode at least this fast (tokens/s)
  // by this machine's speed table (measured on uniform mixes, cached; see
  // allocate/speed.h). 0 = no speed limit.
  double min_decode_tokens_per_s = 0;
  // Where that table is measured: layers offloaded to the GPU (999 = all, as
  // the model will run); 0 = the CPU. quantize takes its --gpu-layers.
  int speed_gpu_layers = 0;
  std::string objective = "general";  // general | DOMAIN | d1:w1,d2:w2
  // Noisy measurements: bayes (shrunk towards the quantization-error model
  // by their uncertainties) | clamp | shrink | keep (DamageOptions).
  std::string noise = "bayes";
  double noise_z = 1.0;               // DamageOptions::noise_z (clamp, shrink)
  std::string constraints;            // cerebellum.constraints/1 file; "" = defaults
  std::string quant_error = "auto";   // auto | none | a cerebellum.qerror/1 table
  std::string imatrix_path;           // the build's imatrix: its metadata bytes and coverage
  int n_threads = 0;                  // for the quantization-error table; 0 = every CPU this run may use
  bool greedy_baseline = true;        // also price the original project's greedy plan
  // The weight-error-only plan: no measurements, damage from the
  // quantization-error table alone (DamageOptions::weight_error_only); pass
  // the journal weight_error_journal() makes.
  bool weight_error_only = false;
  Logger logger;
  ProgressFn progress;
};

struct Allocation {
  AllocationProblem problem;
  std::optional<QuantErrorReport> quant_error;  // the table the damage model used
  int64_t budget_bytes = 0;
  int64_t overhead_bytes = 0;  // file bytes that are not tensor data
  Plan plan;                   // the solver's optimum
  // Comparison plans at the same budget: "base" (the measured base config)
  // and "greedy_original"; absent when constraints exclude the base config.
  std::map<std::string, Plan> baselines;
  std::string baselines_skipped;  // why, when they are absent
  std::optional<FitReport> fit;   // --fit: the deployment the plan fits
  std::optional<SpeedPlan> speed; // --min-decode-speed: the solve and its table
  SpeedTable speed_table;
};

// UsageError for a negative --min-decode-speed or one with two bounded --fit
// pools (not supported); plan_for calls it, quantize before its sweep.
void check_speed_floor_options(const AllocateOptions& o);

// Resolves the budget (before any slow work), prices the candidates, builds
// the damage curves and solves. BudgetError outside the feasible range.
Allocation plan_for(const Journal& journal, const ModelInfo& model, const AllocateOptions& options);

// What a weight-error-only plan is allocated on: a journal with a header only
// (the model's sha256, the base mix's types and name), no measurements.
// `base`: a stock preset name or a recipe file, as measure's --base.
Journal weight_error_journal(const ModelInfo& model, const std::string& base);

// A plan in brief: size, predicted ΔKLD, whether it is within the budget, types.
nlohmann::json plan_summary_json(const Plan& plan, int64_t budget_bytes);

// plan.json's "baselines": each plan's size, predicted ΔKLD, whether it is
// within the budget and its types; or {"skipped": why}.
nlohmann::json baselines_json(const Allocation& allocation);

// The placements a --fit spec allows on this engine (one, or every -ngl
// count when both pools are bounded and layers are placed), each with
// llama.cpp's projected context and compute bytes for `model` (a no_alloc
// load; these do not depend on the weights' types). `problem` says which
// tensors are traded; the rest are fixed weights of their pool.
std::vector<FitPlacement> fit_placements(const FitOptions& options, const ModelInfo& model,
                                         const AllocationProblem& problem, std::vector<std::string>* notes,
                                         const Logger& logger = {});

// solve_fit over fit_placements; on BudgetError the message says the
// smallest card at this context and the largest context at this card.
FitReport fit_plan(const FitOptions& options, const ModelInfo& model, const AllocationProblem& problem,
                   int64_t fixed_overhead_bytes, const Logger& logger = {});

// Whether per-tensor `types` (absent: the model's own) keep every bounded
// pool of the fit's placement within its weight budget: which stock mixes
// fit the same deployment.
bool fits_deployment(const FitReport& fit, const ModelInfo& model, const std::map<std::string, std::string>& types);

// A built file checked against its fit: loaded by llama.cpp at the fit's
// settings with a context created (real allocations), each pool's breakdown
// read back. `fits`: every bounded pool's measured total is within its
// capacity less the margin, as the projection promised.
struct FitCheck {
  struct Pool {
    std::string name;
    int64_t capacity_bytes = 0;  // 0: not bounded
    int64_t margin_bytes = 0, projected_bytes = 0;
    int64_t model_bytes = 0, context_bytes = 0, compute_bytes = 0;
    int64_t measured_bytes() const { return model_bytes + context_bytes + compute_bytes; }
    bool fits() const { return capacity_bytes == 0 || measured_bytes() + margin_bytes <= capacity_bytes; }
  };
  std::vector<Pool> pools;
  // Measured per context length (the card's memory-by-context table): tokens
  // -> pool -> model + context + compute bytes.
  std::map<int64_t, std::map<std::string, int64_t>> by_context;
  bool fits() const;
};
FitCheck verify_fit(const std::string& gguf_path, const FitReport& fit, const std::vector<int64_t>& table_contexts,
                    const Logger& logger = {});
nlohmann::json fit_check_json(const FitCheck& check);

// A file-byte budget close to the fit's, for what needs one before anything
// is measured (the sweep's centre): the bounded pools' weight budgets plus
// the other tensors at their base type plus the overhead.
int64_t fit_file_budget_estimate(const FitReport& unmeasured_fit, const AllocationProblem& problem,
                                 int64_t fixed_overhead_bytes);

// The budget grammar (AllocateOptions::budget) to file bytes for `model`.
int64_t budget_bytes_for(const std::string& spec, const ModelInfo& model, const std::string& imatrix_path = "");

// Header/metadata bytes of the output file of `model` built by `build`: the
// exact dry-run size of the base assignment minus our padded tensor bytes
// (constant for a given source and imatrix).
int64_t calibrate_fixed_overhead(const ModelInfo& model, const AllocationProblem& problem,
                                 const std::string& imatrix_path = "");

// The quantization-error table for allocating `journal` on `source`:
//   "auto"  computes it (types: the constraints' allowed types ∪ the journal's
//           base and measured types; imatrix-weighted when imatrix_path is set),
//   "none"  returns nullopt (the damage model uses the bpw proxy),
//   else    reads a cerebellum.qerror/1 file (InputError if unreadable).
std::optional<QuantErrorReport> resolve_quant_error(const std::string& spec, const ModelInfo& source,
                                                    const Journal& journal, const Constraints& constraints,
                                                    const std::string& imatrix_path, int n_threads,
                                                    const Logger& logger, const ProgressFn& progress);

// Names of the tensors an imatrix file has entries for ("" = none).
std::set<std::string> imatrix_tensor_names(const std::string& imatrix_path);

}  // namespace cb
