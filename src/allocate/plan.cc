// From damage curves to a plan: the knapsack optimum, the base config, JSON and
// the stock tensor-type file.
#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/common/schemas.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/pattern.h"

namespace cb {
namespace {

using nlohmann::json;

json shrinkage_json(const ShrinkageReport& s) {
  if (s.n_points == 0) return nullptr;
  json groups = json::object();
  for (const auto& [group, r] : s.groups) {
    groups[group] = {{"slope", r.slope}, {"tau_rel", r.tau_rel}, {"n_points", r.n_points}, {"pooled", r.pooled}};
  }
  return {{"n_points", s.n_points}, {"mean_weight_on_data", s.mean_weight_on_data},
          {"mean_abs_shift_kld", s.mean_abs_shift_kld}, {"groups", groups}};
}

}  // namespace

Plan plan_from_choice(const AllocationProblem& p, const std::vector<int>& choice,
                      int64_t fixed_overhead_bytes) {
  Plan plan;
  plan.model_sha256 = p.model_sha256;
  plan.fixed_overhead_bytes = fixed_overhead_bytes;
  plan.size_bytes = fixed_overhead_bytes;
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const TensorCurve& c = p.tensors[i];
    const CandidateType& cand = c.candidates[choice[i]];
    plan.tensors.push_back({c.name, cand.type, c.base_type, cand.size_bytes, cand.damage_kld,
                            cand.measured, c.stock_quantizable});
    plan.size_bytes += cand.size_bytes;
    plan.predicted_delta_kld += cand.damage_kld;
  }
  return plan;
}

std::vector<int> choice_of(const AllocationProblem& p, const Plan& plan) {
  const auto types = plan.types();
  std::vector<int> choice;
  for (const auto& c : p.tensors) {
    const auto it = types.find(c.name);
    const std::string& want = it == types.end() ? c.base_type : it->second;
    int idx = -1;
    for (size_t k = 0; k < c.candidates.size(); ++k) {
      if (c.candidates[k].type == want) idx = static_cast<int>(k);
    }
    if (idx < 0) throw RecipeError(fmt::format("type {} is not a candidate of '{}'", want, c.name));
    choice.push_back(idx);
  }
  return choice;
}

std::map<std::string, std::string> Plan::types() const {
  std::map<std::string, std::string> out;
  for (const auto& t : tensors) out[t.name] = t.type;
  return out;
}

BudgetRange budget_range(const AllocationProblem& p, int64_t fixed_overhead_bytes) {
  BudgetRange r{fixed_overhead_bytes, fixed_overhead_bytes};
  for (const auto& c : p.tensors) {
    if (c.candidates.empty()) continue;
    const auto [lo, hi] = std::minmax_element(c.candidates.begin(), c.candidates.end(),
                                              [](const auto& a, const auto& b) { return a.size_bytes < b.size_bytes; });
    r.min_bytes += lo->size_bytes;
    r.max_bytes += hi->size_bytes;
  }
  return r;
}

void check_budget_in_range(int64_t budget_bytes, const BudgetRange& r) {
  const std::string range = fmt::format("feasible budgets are {} to {} bytes ({:.2f} to {:.2f} MB)", r.min_bytes,
                                        r.max_bytes, r.min_bytes / 1e6, r.max_bytes / 1e6);
  if (budget_bytes < r.min_bytes) {
    throw BudgetError(fmt::format("budget of {} bytes is infeasible under these constraints: the smallest "
                                  "feasible file is {} bytes (every tensor at its smallest type); {}",
                                  budget_bytes, r.min_bytes, range));
  }
  if (budget_bytes > r.max_bytes) {
    throw BudgetError(fmt::format("budget of {} bytes is above the largest file these constraints allow "
                                  "(every tensor at its largest type, nothing to trade off): {}", budget_bytes,
                                  range));
  }
}

std::vector<KnapsackItem> knapsack_items(const AllocationProblem& p) {
  std::vector<KnapsackItem> items;
  for (const auto& c : p.tensors) {
    KnapsackItem item;
    for (const auto& cand : c.candidates) item.options.push_back({cand.size_bytes, cand.damage_kld});
    items.push_back(std::move(item));
  }
  return items;
}

Plan allocate_plan(const AllocationProblem& p, int64_t budget_bytes, int64_t fixed_overhead_bytes,
                   const SolverOptions& solver) {
  const std::vector<KnapsackItem> items = knapsack_items(p);
  KnapsackResult res;
  try {
    res = solve_mckp(items, budget_bytes - fixed_overhead_bytes, solver);
  } catch (const BudgetError&) {
    int64_t min_bytes = fixed_overhead_bytes;
    for (const auto& item : items) min_bytes += item.options.front().size_bytes;  // sorted by size
    throw BudgetError(fmt::format("budget of {} bytes is infeasible under these constraints: the "
                                  "smallest feasible file is {} bytes", budget_bytes, min_bytes));
  }
  Plan plan = plan_from_choice(p, res.choice, fixed_overhead_bytes);
  plan.method = "mckp";
  plan.budget_bytes = budget_bytes;
  plan.solver = res;
  return plan;
}

Plan base_plan(const AllocationProblem& p, int64_t fixed_overhead_bytes) {
  std::vector<int> choice;
  for (const auto& c : p.tensors) {
    int idx = -1;
    for (size_t k = 0; k < c.candidates.size(); ++k) {
      if (c.candidates[k].type == c.base_type) idx = static_cast<int>(k);
    }
    if (idx < 0) {
      throw RecipeError(fmt::format("constraints exclude the base type {} of '{}'", c.base_type, c.name));
    }
    choice.push_back(idx);
  }
  Plan plan = plan_from_choice(p, choice, fixed_overhead_bytes);
  plan.method = "base";
  plan.budget_bytes = plan.size_bytes;
  return plan;
}

json plan_to_json(const Plan& plan, const AllocationProblem& p) { return plan_to_json(plan, p, json::object()); }

json plan_to_json(const Plan& plan, const AllocationProblem& p, const json& extra) {
  json tensors = json::array();
  for (const auto& t : plan.tensors) {
    tensors.push_back({{"name", t.name}, {"type", t.type}, {"base_type", t.base_type},
                       {"size_bytes", t.size_bytes}, {"predicted_delta_kld", t.predicted_delta_kld},
                       {"measured", t.measured}, {"stock_quantizable", t.stock_quantizable}});
  }
  const ModelErrorReport& e = p.model_error;
  json j{{"schema", kPlanSchema},
         {"method", plan.method},
         {"model_sha256", plan.model_sha256},
         {"base", p.base_name},
         {"budget_bytes", plan.budget_bytes},
         {"size_bytes", plan.size_bytes},
         {"fixed_overhead_bytes", plan.fixed_overhead_bytes},
         {"predicted_delta_kld", plan.predicted_delta_kld},
         {"types", plan.types()},
         {"objective", p.objective},
         {"constraints", to_json(p.constraints)},
         {"tensors", tensors},
         {"model_error",
          {{"mse_source", e.mse_source}, {"n_points", e.n_points},
           {"n_tensors_measured", e.n_tensors_measured}, {"n_tensors_imputed", e.n_tensors_imputed},
           {"noise_policy", e.noise_policy}, {"shrinkage", shrinkage_json(e.shrinkage)},
           {"n_noise_clamped", e.n_noise_clamped}, {"n_probes_ignored", e.n_probes_ignored},
           {"mean_abs_measured_kld", e.mean_abs_measured_kld},
           {"loto", {{"n", e.n_loto}, {"mae_kld", e.loto_mae_kld}, {"rmse_kld", e.loto_rmse_kld}}},
           {"loo_tensor",
            {{"n", e.n_loo_tensor}, {"mae_kld", e.loo_tensor_mae_kld},
             {"rmse_kld", e.loo_tensor_rmse_kld}}}}}};
  if (plan.method.rfind("mckp", 0) == 0) {
    j["solver"] = {{"method", "dp-multiple-choice-knapsack"},
                   {"exact", plan.solver.exact},
                   {"granularity_bytes", plan.solver.granularity_bytes},
                   {"lower_bound_delta_kld", plan.solver.lower_bound}};
  }
  for (const auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

json curves_to_json(const AllocationProblem& p) {
  json tensors = json::array();
  for (const auto& c : p.tensors) {
    json cands = json::array();
    for (const auto& k : c.candidates) {
      cands.push_back({{"type", k.type}, {"size_bytes", k.size_bytes}, {"damage_kld", k.damage_kld},
                       {"measured", k.measured}});
    }
    tensors.push_back({{"name", c.name}, {"role", c.role}, {"layer", c.layer}, {"base_type", c.base_type},
                       {"scale", c.scale}, {"scale_from", c.scale_from}, {"candidates", cands}});
  }
  return {{"schema", kCurvesSchema}, {"base", p.base_name}, {"mse_source", p.model_error.mse_source},
          {"tensors", tensors}};
}

std::string tensor_types_text(const Plan& plan, const std::string& header_comment) {
  std::string out;
  if (!header_comment.empty()) out += "# " + header_comment + "\n";
  for (const auto& t : plan.tensors) {
    if (!t.stock_quantizable) continue;  // stock would ignore it; plan.json carries it
    out += fmt::format("^{}$={}\n", escape_pattern(t.name), t.type);
  }
  return out;
}

}  // namespace cb
