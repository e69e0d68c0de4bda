// plan_for: budget spec, journal and model to a plan (include/cerebellum/allocate/plan_for.h).
#include "cerebellum/allocate/plan_for.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/build/build.h"
#include "cerebellum/card/machine.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/imatrix/imatrix.h"
#include "cerebellum/measure/measure.h"
#include "cerebellum/recipe/recipe.h"
#include "common/parallel.h"

namespace cb {
namespace {

void add_baselines(const AllocationProblem& p, bool greedy, Allocation& a) {
  try {  // both start from the base config, which constraints may exclude
    a.baselines["base"] = base_plan(p, a.overhead_bytes);
    if (greedy) a.baselines["greedy_original"] = greedy_original_plan(p, a.budget_bytes, a.overhead_bytes);
  } catch (const RecipeError& e) {
    a.baselines.clear();
    a.baselines_skipped = e.what();
  }
}

// The fit's plan; with one bounded pool the other pools' tensors are pinned
// to their planned type, so that a file budget is the same constraint for
// what runs after the solver (the measured search).
void apply_fit(const AllocateOptions& o, const ModelInfo& model, Allocation& a) {
  a.fit = fit_plan(o.fit, model, a.problem, a.overhead_bytes, o.logger);
  a.plan = a.fit->solution.plan;
  a.budget_bytes = a.plan.size_bytes;
  if (!a.fit->file_budget_equivalent) return;
  const FitPlacement& pl = a.fit->placement;
  const auto types = a.plan.types();
  for (auto& c : a.problem.tensors) {
    if (pl.find(pl.pool_of.at(c.name))->capacity_bytes) continue;
    std::erase_if(c.candidates, [&](const CandidateType& k) { return k.type != types.at(c.name); });
  }
  for (const FitPool& pool : pl.pools) {
    if (pool.capacity_bytes) {
      a.budget_bytes += pool.weight_budget_bytes() + pool.fixed_bytes - a.fit->solution.weight_bytes.at(pool.name);
    }
  }
  a.plan.budget_bytes = a.budget_bytes;
}

// --min-decode-speed: the table for every type a traded tensor may take
// (measured once per machine and model, cached), then the Lagrangian solve.
void apply_speed_floor(const AllocateOptions& o, const ModelInfo& model, Allocation& a) {
  std::set<std::string> types;
  for (const auto& c : a.problem.tensors) {
    if (c.candidates.size() > 1) {
      for (const auto& k : c.candidates) types.insert(k.type);
    }
  }
  card::SpeedOptions so;
  so.n_threads = thread_count(o.n_threads);
  so.pp_tokens = 16;
  so.tg_tokens = 64;
  so.repetitions = 3;
  so.n_gpu_layers = o.speed_gpu_layers;
  const std::string sha = a.problem.model_sha256.empty() ? sha256_file(model.path) : a.problem.model_sha256;
  a.speed_table = card::measure_speed_table(model, {types.begin(), types.end()}, so, o.imatrix_path,
                                            card::default_speed_cache_path(sha, so.n_threads, so.n_gpu_layers), o.logger);
  a.speed_table.model_sha256 = sha;
  // Types the table could not measure are not candidates under a speed floor.
  for (auto& c : a.problem.tensors) {
    if (c.candidates.size() < 2) continue;
    std::erase_if(c.candidates, [&](const CandidateType& k) {
      return k.type != c.base_type && !a.speed_table.tg_tokens_per_s.count(k.type);
    });
  }
  a.speed = allocate_plan_min_speed(a.problem, a.budget_bytes, a.overhead_bytes, a.speed_table,
                                    o.min_decode_tokens_per_s);
  a.plan = a.speed->plan;
}

}  // namespace

int64_t budget_bytes_for(const std::string& spec, const ModelInfo& model, const std::string& imatrix_path) {
  const auto names = stock_preset_names();
  if (std::find(names.begin(), names.end(), spec) != names.end()) {
    return stock_preset_size_bytes(model.path, spec, imatrix_path);
  }
  return parse_budget_bytes(spec, model.n_elements);
}

void check_speed_floor_options(const AllocateOptions& o) {
  if (o.min_decode_tokens_per_s < 0) throw UsageError("--min-decode-speed must be a positive tokens/s");
  if (o.min_decode_tokens_per_s > 0 && !o.fit.spec.empty() && parse_fit_spec(o.fit.spec).pool_bytes.size() > 1) {
    throw UsageError(fmt::format("--min-decode-speed with two bounded pools (--fit {}) is not supported: the speed "
                                 "solve takes one budget; give the GPU's size alone (--fit SIZE@CTX) or drop the floor",
                                 o.fit.spec));
  }
}

Allocation plan_for(const Journal& journal, const ModelInfo& model, const AllocateOptions& o) {
  Allocation a;
  const bool fit = !o.fit.spec.empty();
  // A typo fails before the slow work.
  if (fit) parse_fit_spec(o.fit.spec);
  else a.budget_bytes = budget_bytes_for(o.budget, model, o.imatrix_path);
  check_speed_floor_options(o);
  parse_noise_policy(o.noise);
  const Constraints constraints = load_constraints(o.constraints);
  a.quant_error = resolve_quant_error(o.quant_error, model, journal, constraints, o.imatrix_path, o.n_threads,
                                      o.logger, o.progress);
  DamageOptions dopt;
  dopt.noise = parse_noise_policy(o.noise);
  dopt.noise_z = o.noise_z;
  dopt.imatrix_tensors = imatrix_tensor_names(o.imatrix_path);
  dopt.weight_error_only = o.weight_error_only;
  const auto objective = o.weight_error_only ? std::map<std::string, double>{}
                                             : parse_objective(o.objective, journal.domains());
  a.problem = build_problem(model, journal, objective, constraints, a.quant_error ? &a.quant_error->table : nullptr,
                            dopt);
  a.overhead_bytes = calibrate_fixed_overhead(model, a.problem, o.imatrix_path);
  if (fit) {
    apply_fit(o, model, a);
    // One bounded pool: the other pool's tensors are pinned and the fit is a
    // file budget (apply_fit), which the speed solve takes as it is.
    if (o.min_decode_tokens_per_s > 0) apply_speed_floor(o, model, a);
  } else {
    check_budget_in_range(a.budget_bytes, budget_range(a.problem, a.overhead_bytes));
    if (o.min_decode_tokens_per_s > 0) apply_speed_floor(o, model, a);
    else a.plan = allocate_plan(a.problem, a.budget_bytes, a.overhead_bytes);
  }
  add_baselines(a.problem, o.greedy_baseline && !o.weight_error_only, a);
  return a;
}

Journal weight_error_journal(const ModelInfo& model, const std::string& base) {
  Journal j;
  j.header.model_sha256 = sha256_file(model.path);
  j.header.base_types = measure::resolve_base(base, model, &j.header.base_name);
  return j;
}

nlohmann::json plan_summary_json(const Plan& plan, int64_t budget_bytes) {
  return {{"size_bytes", plan.size_bytes}, {"predicted_delta_kld", plan.predicted_delta_kld},
          {"within_budget", plan.size_bytes <= budget_bytes}, {"types", plan.types()}};
}

nlohmann::json baselines_json(const Allocation& a) {
  if (a.baselines.empty()) return {{"skipped", a.baselines_skipped}};
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, plan] : a.baselines) j[name] = plan_summary_json(plan, a.budget_bytes);
  return j;
}

int64_t calibrate_fixed_overhead(const ModelInfo& model, const AllocationProblem& problem,
                                 const std::string& imatrix_path) {
  std::map<std::string, std::string> base;
  int64_t tensor_bytes = 0;
  for (const auto& c : problem.tensors) base[c.name] = c.base_type;
  for (const auto& t : model.tensors) {
    const auto it = base.find(t.name);
    tensor_bytes += tensor_bytes_at(t, it == base.end() ? t.type : it->second, model.alignment_bytes);
  }
  return predict_output_size_bytes(model.path, base, imatrix_path) - tensor_bytes;
}

std::optional<QuantErrorReport> resolve_quant_error(const std::string& spec, const ModelInfo& source,
                                                    const Journal& journal, const Constraints& constraints,
                                                    const std::string& imatrix_path, int n_threads,
                                                    const Logger& logger, const ProgressFn& progress) {
  if (spec == "none") return std::nullopt;
  if (spec != "auto") {
    const auto j = nlohmann::json::parse(read_file(spec), nullptr, false);
    if (j.is_discarded()) throw InputError(spec + ": not JSON (expected a cerebellum.qerror/1 table)");
    QuantErrorReport r;
    r.table = quant_error_from_json(j, spec);
    r.source = spec;
    if (j.is_object()) r.source_sha256 = j.value("source_sha256", "");
    if (!r.source_sha256.empty() && !journal.header.model_sha256.empty() &&
        r.source_sha256 != journal.header.model_sha256) {
      throw MismatchError(fmt::format("{} prices model {}, the journal measured {}", spec, r.source_sha256,
                                      journal.header.model_sha256));
    }
    return r;
  }
  QuantErrorOptions q;
  q.types = constraints.allowed_types;
  for (const auto& [tensor, type] : journal.header.base_types) q.types.push_back(type);
  for (const auto& m : journal.measurements) {
    for (const auto& [tensor, type] : m.types) q.types.push_back(type);
  }
  std::sort(q.types.begin(), q.types.end());
  q.types.erase(std::unique(q.types.begin(), q.types.end()), q.types.end());
  q.imatrix_path = imatrix_path;
  q.n_threads = n_threads;
  q.source_model = &source;
  return compute_quant_error_table(source.path, q, logger, progress);
}

std::set<std::string> imatrix_tensor_names(const std::string& imatrix_path) {
  std::set<std::string> out;
  if (imatrix_path.empty()) return out;
  for (const auto& [name, entry] : load_imatrix(imatrix_path)->entries) out.insert(name);
  return out;
}

}  // namespace cb
