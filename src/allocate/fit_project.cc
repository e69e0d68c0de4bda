// --fit's placements with llama.cpp's own projections (engine: build/deploy.h),
// and the fit's plan (include/cerebellum/allocate/plan_for.h).
#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/allocate/plan_for.h"
#include "cerebellum/allocate/sizes.h"
#include "cerebellum/common/error.h"

namespace cb {
namespace {

// Routed experts, as `-ot exps=CPU` places them.
constexpr const char* kExpertsRegex = "\\.ffn_[a-z_]*_exps\\.";

const auto& mem = fit_bytes_text;

DeploySettings base_settings(const FitOptions& o, int64_t n_ctx_tokens) {
  DeploySettings s;
  s.n_ctx_tokens = n_ctx_tokens;
  s.kv_type = o.kv_type;
  s.n_parallel = o.n_parallel;
  s.n_ubatch = o.n_ubatch;
  return s;
}

// The llama.cpp settings to try, ascending in GPU share.
std::vector<DeploySettings> candidate_settings(const FitOptions& o, const FitSpec& spec, const ModelInfo& model,
                                               bool gpu) {
  DeploySettings s = base_settings(o, spec.n_ctx_tokens);
  if (o.placement != "auto" && o.placement != "layers" && o.placement != "experts") {
    throw UsageError(fmt::format("--placement '{}': auto, layers or experts", o.placement));
  }
  if (!gpu) return {s};
  bool has_experts = false;
  for (const auto& t : model.tensors) has_experts = has_experts || t.name.find("_exps.") != std::string::npos;
  const bool both = spec.pool_bytes.count("gpu") && spec.pool_bytes.count("cpu");
  std::string placement = o.placement;
  if (placement == "auto") placement = has_experts && both ? "experts" : "layers";
  if (placement == "experts") {
    if (!has_experts) throw UsageError("--placement experts: the model has no routed experts (*_exps)");
    s.cpu_tensor_regex = kExpertsRegex;
    return {s};
  }
  if (!spec.pool_bytes.count("cpu")) return {s};  // all layers: the card is the bound
  std::vector<DeploySettings> out;
  for (int ngl = 0; ngl <= model.n_layers + 1; ++ngl) {
    s.n_gpu_layers = ngl;
    out.push_back(s);
  }
  return out;
}

std::map<std::string, int64_t> pool_bytes_at_source(const ModelInfo& model, const FitPlacement& pl) {
  std::map<std::string, int64_t> out;
  for (const auto& t : model.tensors) {
    for (const std::string pool : {"gpu", "cpu"}) {
      if (pl.holds(pool, t.name)) out[pool] += tensor_bytes_at(t, t.type, model.alignment_bytes);
    }
  }
  return out;
}

FitPlacement make_placement(const DeploySettings& s, const FitSpec& spec, int64_t margin_bytes,
                            const ModelInfo& model, const std::set<std::string>& traded, const DeployMemory& dm,
                            bool gpu, std::vector<std::string>* notes) {
  FitPlacement pl;
  pl.settings = s;
  pl.pool_of = place_tensors(model, s, gpu);
  pl.copy_in = tied_output_copies(model, pl.pool_of, s, gpu);
  const auto at_source = pool_bytes_at_source(model, pl);
  for (const std::string name : {"gpu", "cpu"}) {
    if (name == "gpu" && !gpu) continue;
    const PoolMemory* m = nullptr;
    for (const auto& pm : dm.pools) {
      if ((name == "cpu") == pm.is_host && !m) m = &pm;  // one GPU: the first device
    }
    FitPool pool{.name = name, .context_bytes = m ? m->context_bytes : 0, .compute_bytes = m ? m->compute_bytes : 0};
    const std::string key = spec.pool_bytes.count(name) ? name : (spec.pool_bytes.count("device") &&
                                                                  name == (gpu ? "gpu" : "cpu") ? "device" : "");
    if (!key.empty()) pool.capacity_bytes = spec.pool_bytes.at(key), pool.margin_bytes = margin_bytes;
    for (const auto& t : model.tensors) {
      if (!traded.count(t.name) && pl.holds(name, t.name)) {
        pool.fixed_bytes += tensor_bytes_at(t, t.type, model.alignment_bytes);
      }
    }
    // Our placement rule against llama.cpp's own count of the source's weights.
    const int64_t ours = at_source.count(name) ? at_source.at(name) : 0, theirs = m ? m->model_bytes : 0;
    if (notes && std::llabs(ours - theirs) > std::max<int64_t>(theirs / 100, 1 << 20)) {
      notes->push_back(fmt::format("{} at {}: our placement puts {} source bytes there, llama.cpp {}", name,
                                   deploy_args(s), ours, theirs));
    }
    pl.pools.push_back(pool);
  }
  return pl;
}

int64_t smallest_weights(const AllocationProblem& p, const FitPlacement& pl, const std::string& pool) {
  int64_t bytes = pl.find(pool)->fixed_bytes;
  for (const auto& c : p.tensors) {
    if (pl.holds(pool, c.name)) bytes += c.candidates.front().size_bytes;
  }
  return bytes;
}

// What would fit instead: the card at this context, the context at this card.
std::string misfit_advice(const ModelInfo& model, const AllocationProblem& p,
                          const FitPlacement& pl) {
  std::string advice;
  for (const FitPool& pool : pl.pools) {
    if (!pool.capacity_bytes) continue;
    const int64_t weights = smallest_weights(p, pl, pool.name);
    const int64_t need = weights + pool.context_bytes + pool.compute_bytes + pool.margin_bytes;
    if (need <= *pool.capacity_bytes) continue;
    // The largest context whose smallest plan fits, by bisection on llama.cpp's projection.
    int64_t lo = 0, hi = pl.settings.n_ctx_tokens;
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      DeploySettings s = pl.settings;
      s.n_ctx_tokens = mid;
      const DeployMemory dm = deployment_memory(model.path, s, DeployProbe::kProject);
      int64_t used = weights + pool.margin_bytes;
      for (const auto& pm : dm.pools) {
        if ((pool.name == "cpu") == pm.is_host) { used += pm.context_bytes + pm.compute_bytes; break; }
      }
      (used <= *pool.capacity_bytes ? lo : hi) = mid;
    }
    advice += fmt::format("{}{} needs at least {} at {} tokens (smallest weights {}, context {}, compute {}, "
                          "margin {}) of the {} given",
                          advice.empty() ? "" : "; ", pool.name, mem(need), pl.settings.n_ctx_tokens, mem(weights),
                          mem(pool.context_bytes), mem(pool.compute_bytes), mem(pool.margin_bytes),
                          mem(*pool.capacity_bytes));
    advice += lo > 0 ? fmt::format("; at {} it fits at most {} tokens of context", mem(*pool.capacity_bytes), lo)
                     : std::string("; no context fits it");
  }
  return advice;
}

// The file span from the first host tensor to the end of the last, in the
// built file's layout (the source's tensor order, padded sizes at the
// planned types).
int64_t host_span_bytes(const ModelInfo& model, const FitPlacement& pl, const std::map<std::string, std::string>& types) {
  int64_t offset = 0, first = -1, end = 0;
  for (const auto& t : model.tensors) {
    const auto it = types.find(t.name);
    const int64_t bytes = tensor_bytes_at(t, it == types.end() ? t.type : it->second, model.alignment_bytes);
    if (pl.pool_of.at(t.name) == "cpu") {
      if (first < 0) first = offset;
      end = offset + bytes;
    }
    offset += bytes;
  }
  return first < 0 ? 0 : end - first;
}

}  // namespace

std::vector<FitPlacement> fit_placements(const FitOptions& o, const ModelInfo& model,
                                         const AllocationProblem& problem, std::vector<std::string>* notes,
                                         const Logger& logger) {
  const FitSpec spec = parse_fit_spec(o.spec);
  const int n_gpus = gpu_device_count();
  const bool gpu = n_gpus > 0;
  // llama.cpp splits layers over every GPU it sees; the pools here are one
  // GPU and the host, so several GPUs would make the projection wrong.
  if (n_gpus > 1) {
    throw UsageError(fmt::format("--fit '{}': this engine sees {} GPUs and --fit plans for one; choose it with "
                                 "CUDA_VISIBLE_DEVICES=N (llama.cpp would split the layers over all of them)",
                                 o.spec, n_gpus));
  }
  if (!gpu && spec.pool_bytes.count("gpu")) {
    throw UsageError(fmt::format("--fit '{}': this engine has no GPU device; SIZE@CONTEXT fits host memory", o.spec));
  }
  int64_t margin_bytes = 0;
  try {
    margin_bytes = o.margin == "0" ? 0 : parse_budget_bytes(o.margin, 0);
  } catch (const UsageError& e) {
    throw UsageError(fmt::format("--margin: {}", e.what()));
  }
  std::set<std::string> traded;
  for (const auto& c : problem.tensors) traded.insert(c.name);
  std::vector<FitPlacement> out;
  for (const DeploySettings& s : candidate_settings(o, spec, model, gpu)) {
    const DeployMemory dm = deployment_memory(model.path, s, DeployProbe::kProject);  // llama.cpp's chatter dropped
    if (out.empty() && dm.n_ctx_train > 0 && spec.n_ctx_tokens > dm.n_ctx_train) {
      logger.warn(fmt::format("--fit: {} tokens of context is more than the model was trained on ({})",
                              spec.n_ctx_tokens, dm.n_ctx_train));
    }
    out.push_back(make_placement(s, spec, margin_bytes, model, traded, dm, gpu, notes));
  }
  return out;
}

FitReport fit_plan(const FitOptions& o, const ModelInfo& model, const AllocationProblem& problem,
                   int64_t fixed_overhead_bytes, const Logger& logger) {
  FitReport r;
  r.spec = parse_fit_spec(o.spec);
  const auto placements = fit_placements(o, model, problem, &r.notes, logger);
  for (const auto& n : r.notes) logger.warn("--fit: " + n);
  r.n_placements = static_cast<int>(placements.size());
  try {
    r.solution = solve_fit(problem, placements, fixed_overhead_bytes);
  } catch (const BudgetError& e) {
    const std::string advice = misfit_advice(model, problem, placements.back());
    throw BudgetError(advice.empty() ? std::string(e.what())
                                     : fmt::format("--fit {} does not fit: {}", o.spec, advice));
  }
  r.placement = placements[r.solution.placement_index];
  r.host_mapped_bytes = host_span_bytes(model, r.placement, r.solution.plan.types());
  int n_bounded = 0;
  for (const auto& pool : r.placement.pools) n_bounded += pool.capacity_bytes ? 1 : 0;
  r.file_budget_equivalent = n_bounded == 1;
  return r;
}

int64_t fit_file_budget_estimate(const FitReport& f, const AllocationProblem& p, int64_t fixed_overhead_bytes) {
  int64_t bytes = fixed_overhead_bytes;
  for (const FitPool& pool : f.placement.pools) {
    if (pool.capacity_bytes) bytes += pool.weight_budget_bytes() + pool.fixed_bytes;
    else bytes += pool.fixed_bytes;
  }
  for (const auto& c : p.tensors) {
    const bool bounded = std::any_of(f.placement.pools.begin(), f.placement.pools.end(), [&](const FitPool& pool) {
      return pool.capacity_bytes && f.placement.holds(pool.name, c.name);
    });
    if (bounded) continue;  // within a bounded pool's weight budget above
    for (const auto& cand : c.candidates) {
      if (cand.type == c.base_type) bytes += cand.size_bytes;
    }
  }
  return bytes;
}

bool fits_deployment(const FitReport& fit, const ModelInfo& model, const std::map<std::string, std::string>& types) {
  std::map<std::string, int64_t> bytes;
  for (const auto& t : model.tensors) {
    const auto it = types.find(t.name);
    for (const FitPool& pool : fit.placement.pools) {
      if (fit.placement.holds(pool.name, t.name)) {
        bytes[pool.name] += tensor_bytes_at(t, it == types.end() ? t.type : it->second, model.alignment_bytes);
      }
    }
  }
  for (const FitPool& pool : fit.placement.pools) {
    if (pool.capacity_bytes && bytes[pool.name] > pool.weight_budget_bytes() + pool.fixed_bytes) return false;
  }
  return true;
}

bool FitCheck::fits() const {
  return std::all_of(pools.begin(), pools.end(), [](const Pool& p) { return p.fits(); });
}

FitCheck verify_fit(const std::string& gguf_path, const FitReport& fit, const std::vector<int64_t>& table_contexts,
                    const Logger& logger) {
  std::vector<int64_t> contexts = {fit.spec.n_ctx_tokens};
  contexts.insert(contexts.end(), table_contexts.begin(), table_contexts.end());
  const auto measured = deployment_memory_by_context(gguf_path, fit.placement.settings, contexts, DeployProbe::kLoad,
                                                     logger);
  FitCheck c;
  for (const FitPool& pool : fit.placement.pools) {
    FitCheck::Pool p{.name = pool.name, .capacity_bytes = pool.capacity_bytes.value_or(0),
                     .margin_bytes = pool.capacity_bytes ? pool.margin_bytes : 0};
    p.projected_bytes = fit.projected_model_bytes(pool) + pool.context_bytes + pool.compute_bytes;
    for (const auto& pm : measured.front().pools) {
      if ((pool.name == "cpu") != pm.is_host) continue;
      p.model_bytes += pm.model_bytes, p.context_bytes += pm.context_bytes, p.compute_bytes += pm.compute_bytes;
      if (pool.name == "gpu") break;  // one GPU: the first device
    }
    c.pools.push_back(p);
  }
  for (size_t k = 1; k < measured.size(); ++k) {
    for (const auto& pm : measured[k].pools) c.by_context[contexts[k]][pm.is_host ? "cpu" : pm.name] += pm.total();
  }
  return c;
}

nlohmann::json fit_check_json(const FitCheck& c) {
  nlohmann::json pools = nlohmann::json::array();
  for (const auto& p : c.pools) {
    pools.push_back({{"pool", p.name}, {"capacity_bytes", p.capacity_bytes}, {"margin_bytes", p.margin_bytes},
                     {"projected_bytes", p.projected_bytes}, {"measured_bytes", p.measured_bytes()},
                     {"model_bytes", p.model_bytes}, {"context_bytes", p.context_bytes},
                     {"compute_bytes", p.compute_bytes}, {"fits", p.fits()}});
  }
  nlohmann::json table = nlohmann::json::array();
  for (const auto& [n_ctx, pools_at] : c.by_context) table.push_back({{"context_tokens", n_ctx}, {"bytes", pools_at}});
  return {{"fits", c.fits()}, {"pools", pools}, {"by_context", table}};
}

}  // namespace cb
