// Decode speed as a constraint (issue 17, `--min-decode-speed`): equal bytes
// are not equal speed (an i-quant mix can decode slower than k-quants of the
// same size). Pure: the table comes in measured (card/machine.h,
// measure_speed_table).
//
// The model: on this machine the uniform mix of type t (every quantizable
// tensor at t) decodes at tg(t) tokens/s; a plan's seconds per token are the
// element-weighted mean of its traded tensors' 1/tg(type), i.e. the linear
// interpolation between uniform mixes (what is not traded runs in every mix).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cerebellum/allocate/plan.h"

namespace cb {

struct SpeedTable {
  std::map<std::string, double> tg_tokens_per_s;  // type -> decode tokens/s of its uniform mix
  int n_threads = 0;
  std::string machine;                            // CPU model and backend, as measured
  std::string model_sha256;
};
nlohmann::json to_json(const SpeedTable& t);
SpeedTable speed_table_from_json(const nlohmann::json& j, const std::string& where);

// Predicted decode tokens/s of `choice` (candidate index per tensor of `problem`).
// RecipeError when a traded tensor's type has no entry in the table.
double predicted_tokens_per_s(const AllocationProblem& problem, const std::vector<int>& choice,
                              const SpeedTable& table);

struct SpeedPlan {
  Plan plan;                        // method "mckp+speed"
  double predicted_tokens_per_s = 0;
  double unconstrained_tokens_per_s = 0;  // the byte-only optimum's
  double lambda = 0;                // nats per (second per token) at the accepted plan
  double lower_bound_kld = 0;       // Lagrangian bound: no plan within both limits predicts less damage
  int n_solves = 0;
};

// The least-damage plan within budget_bytes that decodes at ≥ min_tokens_per_s
// by the table: Lagrangian relaxation of the speed limit (damage + λ·time),
// each λ an exact byte knapsack, bisection on λ to the smallest that meets
// the limit; the gap to the bound is reported. BudgetError when even the
// fastest plan within the bytes is slower (naming its speed).
SpeedPlan allocate_plan_min_speed(const AllocationProblem& problem, int64_t budget_bytes,
                                  int64_t fixed_overhead_bytes, const SpeedTable& table, double min_tokens_per_s);

nlohmann::json speed_plan_json(const SpeedPlan& s, const SpeedTable& table, double min_tokens_per_s);

}  // namespace cb
