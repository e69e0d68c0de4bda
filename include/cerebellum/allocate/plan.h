// Plans: the exact knapsack optimum, the base configuration, the original
// project's greedy rule, and their files (plan.json, tensor_types.txt).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cerebellum/allocate/damage.h"
#include "cerebellum/allocate/solver.h"

namespace cb {


// The smallest and largest file a plan of `problem` can be.
struct BudgetRange {
  int64_t min_bytes = 0, max_bytes = 0;
};
BudgetRange budget_range(const AllocationProblem& problem, int64_t fixed_overhead_bytes);
// BudgetError naming the feasible range when `budget_bytes` is below it (no
// plan fits) or above it (nothing to trade: every tensor at its largest type).
void check_budget_in_range(int64_t budget_bytes, const BudgetRange& range);

struct TensorPlan {
  std::string name, type, base_type;
  int64_t size_bytes = 0;
  double predicted_delta_kld = 0;
  bool measured = false;
  bool stock_quantizable = false;
};

struct Plan {
  std::string method;  // "mckp" | "mckp+search" | "greedy_original" | "base"
  std::string model_sha256;
  int64_t budget_bytes = 0, size_bytes = 0, fixed_overhead_bytes = 0;
  double predicted_delta_kld = 0;
  std::vector<TensorPlan> tensors;
  KnapsackResult solver;  // for "mckp"
  std::map<std::string, std::string> types() const;
};

// The problem as the solver sees it: per tensor, its candidates' (bytes, damage).
std::vector<KnapsackItem> knapsack_items(const AllocationProblem& problem);

// The optimum of the additive model under budget_bytes (file bytes). BudgetError
// (with the smallest feasible file size) when nothing fits.
Plan allocate_plan(const AllocationProblem& problem, int64_t budget_bytes,
                   int64_t fixed_overhead_bytes, const SolverOptions& solver = {});

// A priced, scored plan from a choice: candidate index per tensor of `problem`
// (method left empty for the caller to name).
Plan plan_from_choice(const AllocationProblem& problem, const std::vector<int>& choice,
                      int64_t fixed_overhead_bytes);

// The candidate index per tensor of `plan`'s types; RecipeError when a type is
// not a candidate of its tensor.
std::vector<int> choice_of(const AllocationProblem& problem, const Plan& plan);

// The base configuration itself, priced and scored (damage 0 by definition).
Plan base_plan(const AllocationProblem& problem, int64_t fixed_overhead_bytes);

struct GreedyOptions {
  // Classification threshold on the tensor's ablation Δ (nats). The original used
  // a fixed 0.02 PPL; 0 here means "z·se of that measurement" (DamageOptions).
  double noise_threshold_kld = 0;
  double noise_z = 2.0;
};

// The original project's rule (osmosis/cerebellum.py ablation_aware_allocate),
// reimplemented on our measurements and exact sizes; docs/allocate.md spells it out.
// Scored with the same damage model as allocate_plan so the two compare.
Plan greedy_original_plan(const AllocationProblem& problem, int64_t budget_bytes,
                          int64_t fixed_overhead_bytes, const GreedyOptions& options = {});

// The damage curves (per tensor: scale, candidates with size, predicted damage,
// measured flag), for inspection and held-out checks (`allocate --write-curves`).
nlohmann::json curves_to_json(const AllocationProblem& problem);

// plan.json body. `extra` (e.g. baselines to compare) is merged at top level.
nlohmann::json plan_to_json(const Plan& plan, const AllocationProblem& problem);
nlohmann::json plan_to_json(const Plan& plan, const AllocationProblem& problem, const nlohmann::json& extra);

// tensor_types.txt: one anchored, escaped regex per stock-quantizable tensor
// ("^blk\.0\.attn_q\.weight$=q4_K"), because llama-quantize matches the left side
// with regex_search and the first match wins ("output.weight" would also hit
// "blk.0.attn_output.weight"). Tensors stock refuses are left out (plan.json only).
// Leave header_comment empty for stock: its parser rejects '#' lines.
std::string tensor_types_text(const Plan& plan, const std::string& header_comment = "");

}  // namespace cb
