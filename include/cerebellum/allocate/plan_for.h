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
#include "cerebellum/build/quant_error.h"
#include "cerebellum/common/log.h"

namespace cb {

struct AllocateOptions {
  // File bytes ("7.4MB", "7400000", "7MiB"), bits per weight ("3.5bpw") or a
  // stock preset name ("Q4_K_M": that preset's exact file size for this model).
  std::string budget;
  std::string objective = "general";  // general | DOMAIN | d1:w1,d2:w2
  // Noisy measurements: bayes (shrunk towards the quantization-error model
  // by their uncertainties) | clamp | shrink | keep (DamageOptions).
  std::string noise = "bayes";
  double noise_z = 1.0;               // DamageOptions::noise_z (clamp, shrink)
  std::string constraints;            // cerebellum.constraints/1 file; "" = defaults
  std::string quant_error = "auto";   // auto | none | a cerebellum.qerror/1 table
  std::string imatrix_path;           // the build's imatrix: its metadata bytes and coverage
  int n_threads = 0;                  // for the quantization-error table; 0 = all cores
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
};

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
