// --fit: deployment budgets per memory pool (include/cerebellum/allocate/fit.h).
// Pure: no engine calls; the projections come in with the placements.
#include "cerebellum/allocate/fit.h"

#include <algorithm>
#include <limits>
#include <regex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/allocate/sizes.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/strings.h"

namespace cb {
namespace {

int64_t parse_context_tokens(const std::string& text, const std::string& spec) {
  std::string t = ascii_lower(text);
  int64_t mult = 1;
  if (!t.empty() && t.back() == 'k') mult = 1024, t.pop_back();
  if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos || t.size() > 10) {
    throw UsageError(fmt::format("--fit '{}': the context after '@' must be tokens, e.g. 8192 or 8k", spec));
  }
  const int64_t n = std::stoll(t) * mult;
  if (n < 1 || n > (int64_t{1} << 31)) throw UsageError(fmt::format("--fit '{}': context out of range", spec));
  return n;
}

// The least-damage candidate (ties: the smaller; candidates are sorted by size).
int least_damage(const TensorCurve& c) {
  int best = 0;
  for (size_t k = 1; k < c.candidates.size(); ++k) {
    if (c.candidates[k].damage_kld < c.candidates[best].damage_kld) best = static_cast<int>(k);
  }
  return best;
}

struct PlacementResult {
  std::vector<int> choice;
  double cost = 0;
  std::string shortfall;  // why it does not fit ("" = fits)
};

// Each pool's knapsack with the choices in `fixed` (tensor index -> candidate)
// taken as given: their bytes count in every pool holding them.
PlacementResult solve_pools(const AllocationProblem& p, const FitPlacement& placement,
                            const std::map<size_t, int>& fixed) {
  PlacementResult r;
  r.choice.assign(p.tensors.size(), 0);
  for (const auto& [i, k] : fixed) r.choice[i] = k;
  for (const FitPool& pool : placement.pools) {
    std::vector<size_t> members;
    int64_t fixed_bytes = 0;
    for (size_t i = 0; i < p.tensors.size(); ++i) {
      const std::string& name = p.tensors[i].name;
      if (!placement.holds(pool.name, name)) continue;
      if (fixed.count(i)) fixed_bytes += p.tensors[i].candidates[fixed.at(i)].size_bytes;
      else members.push_back(i);
    }
    if (!pool.capacity_bytes) {
      for (size_t i : members) r.choice[i] = least_damage(p.tensors[i]);
      continue;
    }
    std::vector<KnapsackItem> items;
    int64_t min_bytes = fixed_bytes;
    for (size_t i : members) {
      KnapsackItem item;
      for (const auto& c : p.tensors[i].candidates) item.options.push_back({c.size_bytes, c.damage_kld});
      min_bytes += p.tensors[i].candidates.front().size_bytes;
      items.push_back(std::move(item));
    }
    const int64_t budget = pool.weight_budget_bytes();
    if (min_bytes > budget) {
      r.shortfall = fmt::format("{}: the smallest weights need {} bytes, {} are left after context {}, compute {}, "
                                "margin {} and fixed weights {}",
                                pool.name, min_bytes, budget, pool.context_bytes, pool.compute_bytes,
                                pool.margin_bytes, pool.fixed_bytes);
      return r;
    }
    const KnapsackResult k = solve_mckp(items, budget - fixed_bytes);
    for (size_t j = 0; j < members.size(); ++j) r.choice[members[j]] = k.choice[j];
  }
  for (size_t i = 0; i < p.tensors.size(); ++i) r.cost += p.tensors[i].candidates[r.choice[i]].damage_kld;
  return r;
}

// A tensor held by two pools (a tied output's token_embd) couples their
// knapsacks: each of its candidates is tried with both pools solved around it,
// which is exact (llama.cpp copies at most that one tensor).
PlacementResult solve_placement(const AllocationProblem& p, const FitPlacement& placement) {
  std::optional<size_t> shared;
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    if (placement.copy_in.count(p.tensors[i].name)) shared = i;
  }
  if (!shared) return solve_pools(p, placement, {});
  std::optional<PlacementResult> best;
  PlacementResult last_misfit;
  for (size_t k = 0; k < p.tensors[*shared].candidates.size(); ++k) {
    PlacementResult r = solve_pools(p, placement, {{*shared, static_cast<int>(k)}});
    if (!r.shortfall.empty()) last_misfit = std::move(r);
    else if (!best || r.cost < best->cost) best = std::move(r);
  }
  return best ? *best : last_misfit;
}

}  // namespace

FitSpec parse_fit_spec(const std::string& spec) {
  const auto at = spec.rfind('@');
  if (at == std::string::npos || at == 0) {
    throw UsageError(fmt::format("--fit '{}': expected SIZE@CONTEXT (16GiB@8192) or gpu=SIZE,cpu=SIZE@CONTEXT",
                                 spec));
  }
  FitSpec f;
  f.n_ctx_tokens = parse_context_tokens(spec.substr(at + 1), spec);
  const std::string pools = spec.substr(0, at);
  if (pools.find('=') == std::string::npos) {
    f.pool_bytes["device"] = parse_budget_bytes(pools, 0);
    return f;
  }
  for (const auto& part : split_commas(pools)) {
    const auto eq = part.find('=');
    const std::string name = ascii_lower(part.substr(0, eq));
    if (eq == std::string::npos || (name != "gpu" && name != "cpu")) {
      throw UsageError(fmt::format("--fit '{}': pools are gpu=SIZE and cpu=SIZE, got '{}'", spec, part));
    }
    if (f.pool_bytes.count(name)) throw UsageError(fmt::format("--fit '{}': {} given twice", spec, name));
    f.pool_bytes[name] = parse_budget_bytes(part.substr(eq + 1), 0);
  }
  return f;
}

int64_t FitPool::weight_budget_bytes() const {
  if (!capacity_bytes) return std::numeric_limits<int64_t>::max();
  return *capacity_bytes - context_bytes - compute_bytes - margin_bytes - fixed_bytes;
}

const FitPool* FitPlacement::find(const std::string& pool) const {
  for (const auto& p : pools) {
    if (p.name == pool) return &p;
  }
  return nullptr;
}

bool FitPlacement::holds(const std::string& pool, const std::string& tensor) const {
  const auto home = pool_of.find(tensor);
  const auto copy = copy_in.find(tensor);
  return (home != pool_of.end() && home->second == pool) || (copy != copy_in.end() && copy->second == pool);
}

namespace {

// llama.cpp's device rule at the pin, in one place: the input layer on the
// host, blk.N on the GPU when N >= n_layer + 1 - ngl, the output layer (layer
// -1) on the GPU when ngl >= 1; a -ot pattern keeps a name on the host.
struct LayerRule {
  int n_layer = 0, first_gpu_layer = 0;
  std::optional<std::regex> host_re;
  bool have_gpu = false;
  LayerRule(const ModelInfo& model, const DeploySettings& s, bool gpu) : n_layer(model.n_layers), have_gpu(gpu) {
    const int ngl = s.n_gpu_layers < 0 ? n_layer + 1 : s.n_gpu_layers;
    first_gpu_layer = std::max(n_layer + 1 - ngl, 0);
    if (!s.cpu_tensor_regex.empty()) host_re.emplace(s.cpu_tensor_regex);
  }
  const char* pool(const std::string& name, int layer, bool input_layer) const {
    bool gpu = have_gpu && !input_layer && (layer >= 0 ? layer : n_layer) >= first_gpu_layer;
    if (host_re && std::regex_search(name, *host_re)) gpu = false;
    return gpu ? "gpu" : "cpu";
  }
};

}  // namespace

std::map<std::string, std::string> tied_output_copies(const ModelInfo& model,
                                                      const std::map<std::string, std::string>& pool_of,
                                                      const DeploySettings& s, bool have_gpu) {
  const std::string embd = "token_embd.weight";
  if (pool_of.count("output.weight") || !pool_of.count(embd)) return {};
  // The duplicate is the output layer's tensor under token_embd's name.
  const std::string out_pool = LayerRule(model, s, have_gpu).pool(embd, -1, false);
  if (out_pool == pool_of.at(embd)) return {};
  return {{embd, out_pool}};
}

std::map<std::string, std::string> place_tensors(const ModelInfo& model, const DeploySettings& s, bool have_gpu) {
  const LayerRule rule(model, s, have_gpu);
  std::map<std::string, std::string> out;
  for (const auto& t : model.tensors) out[t.name] = rule.pool(t.name, t.layer, t.name.rfind("token_embd.", 0) == 0);
  return out;
}

FitSolution solve_fit(const AllocationProblem& p, const std::vector<FitPlacement>& placements,
                      int64_t fixed_overhead_bytes) {
  FitSolution best;
  std::optional<double> best_cost;
  std::string last_shortfall;
  for (size_t k = 0; k < placements.size(); ++k) {
    const PlacementResult r = solve_placement(p, placements[k]);
    if (!r.shortfall.empty()) {
      ++best.n_infeasible;
      last_shortfall = r.shortfall;
      continue;
    }
    if (best_cost && r.cost > *best_cost) continue;  // ties: the later placement (more on the GPU)
    best_cost = r.cost;
    best.plan = plan_from_choice(p, r.choice, fixed_overhead_bytes);
    best.placement_index = k;
  }
  if (!best_cost) throw BudgetError(fmt::format("--fit: nothing fits: {}", last_shortfall));
  best.plan.method = "fit";
  const FitPlacement& chosen = placements[best.placement_index];
  for (const auto& pool : chosen.pools) best.weight_bytes[pool.name] = pool.fixed_bytes;
  for (const auto& t : best.plan.tensors) {
    best.weight_bytes[chosen.pool_of.at(t.name)] += t.size_bytes;
    if (chosen.copy_in.count(t.name)) best.weight_bytes[chosen.copy_in.at(t.name)] += t.size_bytes;
  }
  return best;
}

int64_t FitSolution::weights_in(const std::string& pool) const {
  const auto w = weight_bytes.find(pool);
  return w == weight_bytes.end() ? 0 : w->second;
}

int64_t FitReport::projected_model_bytes(const FitPool& pool) const {
  const int64_t weights = solution.weights_in(pool.name);
  return pool.name == "cpu" ? std::max(weights, host_mapped_bytes) : weights;
}

nlohmann::json fit_json(const FitReport& fit) {
  const FitPlacement& placement = fit.placement;
  nlohmann::json pools = nlohmann::json::array();
  for (const auto& pool : placement.pools) {
    const int64_t weights = fit.solution.weights_in(pool.name);
    nlohmann::json j = {{"pool", pool.name}, {"context_bytes", pool.context_bytes},
                        {"compute_bytes", pool.compute_bytes}, {"weight_bytes", weights},
                        {"projected_model_bytes", fit.projected_model_bytes(pool)},
                        {"projected_total_bytes",
                         fit.projected_model_bytes(pool) + pool.context_bytes + pool.compute_bytes}};
    if (pool.capacity_bytes) {
      const int64_t budget = pool.weight_budget_bytes() + pool.fixed_bytes;
      j["capacity_bytes"] = *pool.capacity_bytes;
      j["margin_bytes"] = pool.margin_bytes;
      j["weight_budget_bytes"] = budget;
      j["weight_budget_used"] = static_cast<double>(weights) / static_cast<double>(budget);
    }
    pools.push_back(j);
  }
  const DeploySettings& s = placement.settings;
  return {{"context_tokens", fit.spec.n_ctx_tokens}, {"kv_type", s.kv_type}, {"parallel", s.n_parallel},
          {"ubatch", s.n_ubatch}, {"n_gpu_layers", s.n_gpu_layers}, {"cpu_tensor_regex", s.cpu_tensor_regex},
          {"pools", pools}, {"n_placements", fit.n_placements},
          {"n_infeasible_placements", fit.solution.n_infeasible},
          {"file_budget_equivalent", fit.file_budget_equivalent}, {"notes", fit.notes},
          {"llama_args", deploy_args(s)}};
}

std::string fit_bytes_text(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  return b >= (1 << 30) ? fmt::format("{:.2f} GiB", b / (1 << 30)) : fmt::format("{:.1f} MiB", b / (1 << 20));
}

std::string describe_fit(const FitReport& fit) {
  const auto& gib = fit_bytes_text;
  std::string out;
  for (const auto& pool : fit.placement.pools) {
    const int64_t weights = fit.solution.weights_in(pool.name);
    out += fmt::format("fit {}: weights {} + context {} + compute {}", pool.name, gib(weights),
                       gib(pool.context_bytes), gib(pool.compute_bytes));
    if (pool.capacity_bytes) {
      const int64_t budget = pool.weight_budget_bytes() + pool.fixed_bytes;
      out += fmt::format(" + margin {} of {} (weight budget {}, {:.1f}% used)\n",
                         gib(pool.margin_bytes), gib(*pool.capacity_bytes), gib(budget),
                         100.0 * static_cast<double>(weights) / static_cast<double>(budget));
    } else {
      out += " (not bounded)\n";
    }
  }
  return out + fmt::format("fit: run it with {}", deploy_args(fit.placement.settings));
}

}  // namespace cb
