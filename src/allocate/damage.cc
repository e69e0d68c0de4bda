// Damage curves: measured points where the journal has them, the quantization
// error model elsewhere. The model: damage_i(t) = s_i · (x_i(t) − x_i(base_i)),
// x = relative quantization MSE of tensor i at type t (from the engine's table,
// or the proxy 2^(−2·bpw) when no table is given), s_i fitted through the origin
// on tensor i's measured points (role median, then global median, when none).
#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/measure/original.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/pattern.h"
#include "cerebellum/common/quant_types.h"
#include "cerebellum/recipe/recipe.h"
#include "allocate/shrink.h"

namespace cb {
namespace {

struct Point {
  double delta = 0, se = 0;
  bool from_group = false;
};

// (tensor, type) -> combined point over the objective's domains.
using Points = std::map<std::string, std::map<std::string, Point>>;

struct DomainAcc {
  double sum = 0, se2 = 0;
  int n = 0;
  bool group = false;
};

double bpw_of(const std::string& type) { return type_by_name(type).bits_per_weight(); }

double proxy_mse(const std::string& type) {
  return std::pow(2.0, -2.0 * bpw_of(type));  // uniform-quantizer noise per weight
}

// x(type) − x(base) of one tensor: from the table when it prices both types
// (never one from the table and one from the proxy), else the proxy.
double delta_mse(const QuantErrorTable* table, const std::string& tensor, const std::string& type,
                 const std::string& base) {
  if (table) {
    const auto x = table->find(tensor, type), x0 = table->find(tensor, base);
    if (x && x0) return *x - *x0;
  }
  return proxy_mse(type) - proxy_mse(base);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Splits a group measurement over its tensors in proportion to the bytes each
// one changed (the model has no better prior for who did the damage).
void add_measurement(const ModelInfo& model, const std::map<std::string, std::string>& base,
                     const JournalMeasurement& m,
                     std::map<std::string, std::map<std::string, std::map<std::string, DomainAcc>>>& acc) {
  std::vector<std::pair<std::string, double>> shares;
  double total = 0;
  for (const auto& [tensor, type] : m.types) {
    const TensorInfo* t = model.find(tensor);
    if (!t) {
      throw MismatchError(fmt::format("journal measures tensor '{}', which the model does not have",
                                      tensor));
    }
    auto b = base.find(tensor);
    const std::string base_type = b == base.end() ? t->type : b->second;
    const double w = std::abs(static_cast<double>(tensor_bytes_at(*t, type, 1) -
                                                  tensor_bytes_at(*t, base_type, 1)));
    shares.emplace_back(tensor, w);
    total += w;
  }
  for (const auto& [tensor, w] : shares) {
    const double f = shares.size() == 1 ? 1.0 : (total > 0 ? w / total : 1.0 / shares.size());
    DomainAcc& a = acc[tensor][type_by_name(m.types.at(tensor)).name][m.domain];
    a.sum += f * m.delta_kld;
    a.se2 += f * f * m.delta_kld_se * m.delta_kld_se;
    a.n += 1;
    a.group = a.group || shares.size() > 1;
  }
}

Points combine_points(const ModelInfo& model, const Journal& journal,
                      const std::map<std::string, double>& objective) {
  std::map<std::string, std::map<std::string, std::map<std::string, DomainAcc>>> acc;
  for (const auto& m : journal.measurements) {
    if (objective.count(m.domain) && objective.at(m.domain) > 0) {
      add_measurement(model, journal.header.base_types, m, acc);
    }
  }
  Points points;
  for (const auto& [tensor, by_type] : acc) {
    for (const auto& [type, by_domain] : by_type) {
      double wsum = 0, delta = 0, se2 = 0;
      bool group = false;
      for (const auto& [domain, a] : by_domain) {
        const double w = objective.at(domain);
        wsum += w;
        delta += w * a.sum / a.n;  // repeated runs: their mean
        se2 += w * w * a.se2 / (a.n * a.n);
        group = group || a.group;
      }
      // Renormalise over the domains this point has (a missing domain is unknown, not 0).
      points[tensor][type] = Point{delta / wsum, std::sqrt(se2) / wsum, group};
    }
  }
  return points;
}

double apply_noise(double delta, double se, const DamageOptions& opt, int* n_clamped) {
  const double band = opt.noise_z * se;
  // kBayes's points were shrunk before (shrink_points): kept as they are here.
  if (opt.noise == NoisePolicy::kKeep || opt.noise == NoisePolicy::kBayes || std::abs(delta) >= band) {
    if (opt.noise == NoisePolicy::kShrink) return delta - std::copysign(band, delta);
    return delta;
  }
  ++*n_clamped;
  return 0.0;
}

// Every point replaced by its posterior mean under its role's prior
// (allocate/shrink.h); what that did goes into the report.
template <typename Dx>
void shrink_points(const ModelInfo& model, const Dx& dx, Points& pts, ModelErrorReport& rep) {
  std::vector<shrink::Point> flat;
  for (const auto& [tensor, by_type] : pts) {
    const TensorInfo& t = *model.find(tensor);
    // One prior per role. Priors per role and direction (promotions apart)
    // did worse on held-out text: cb-dense-12l at the Q4_K_M size 0.739x
    // stock KLD vs 0.693x (bench/predictions_hold.py, docs/allocate.md).
    for (const auto& [type, pt] : by_type) flat.push_back({t.role, dx(t, type), pt.delta, pt.se});
  }
  const auto priors = shrink::fit_priors(flat);
  double weight_sum = 0, shift_sum = 0;
  size_t k = 0;
  for (auto& [tensor, by_type] : pts) {
    for (auto& [type, pt] : by_type) {
      const shrink::Point& p = flat[k++];
      const shrink::Posterior post = shrink::posterior(priors.at(p.group), p);
      weight_sum += post.weight_on_data, shift_sum += std::abs(post.mean - pt.delta);
      pt.delta = post.mean;
      pt.se *= std::sqrt(post.weight_on_data);  // the posterior's sd (normal prior and noise)
    }
  }
  ShrinkageReport& s = rep.shrinkage;
  s.n_points = static_cast<int>(flat.size());
  s.mean_weight_on_data = flat.empty() ? 1.0 : weight_sum / flat.size();
  s.mean_abs_shift_kld = flat.empty() ? 0.0 : shift_sum / flat.size();
  for (const auto& [group, g] : priors) s.groups[group] = {g.slope, g.tau_rel, g.n_points, g.pooled};
}

struct CandidateContext {
  const QuantErrorTable* table = nullptr;
  const std::set<std::string>& imatrix_tensors;
};

bool full_match(const std::string& re, const std::string& s) {
  if (re.empty()) return true;
  // Compiled once per pattern: the rules run for every tensor × candidate type.
  thread_local std::map<std::string, Pattern> compiled;
  auto it = compiled.find(re);
  if (it == compiled.end()) it = compiled.emplace(re, Pattern(re, "constraint")).first;
  return it->second.full_match(s);
}

// Whether `type` may be a candidate of tensor `t` before the rules: the build
// can write it (imatrix), and the damage model can price it (table or ladder).
bool priceable(const TensorInfo& t, const std::string& type, const CandidateContext& ctx) {
  if (type_needs_imatrix(type, t.name) && !ctx.imatrix_tensors.count(t.name)) return false;
  if (ctx.table) return true;
  const auto& ladder = k_ladder();
  return std::find(ladder.begin(), ladder.end(), type) != ladder.end();
}

// Candidate types as data-driven filters: allowed set ∪ base, rows fit, rules.
std::vector<std::string> candidate_types(const TensorInfo& t, const std::string& base_type,
                                         const Constraints& c, const std::set<std::string>& measured,
                                         const CandidateContext& ctx) {
  const std::string source = type_by_name(t.type).name;
  const auto role_listed = [&](const std::vector<std::string>& roles) {
    return std::find(roles.begin(), roles.end(), t.role) != roles.end();
  };
  for (const auto& re : c.never_quantize) {
    if (full_match(re, t.name)) return {source};
  }
  if (!t.stock_quantizable && !c.allow_stock_refused) return {source};
  std::set<std::string> types;
  for (const auto& name : c.allowed_types) {
    if (measured.count(name) || priceable(t, name, ctx)) types.insert(type_by_name(name).name);
  }
  types.insert(base_type);
  if (role_listed(c.keep_source_unless_measured_roles)) {
    types = measured;
    types.insert(source);
  }
  std::vector<std::string> out;
  for (const auto& name : types) {
    const TypeInfo& ti = type_by_name(name);
    if (!row_fits(ti, t.row_elems())) continue;
    bool ok = true;
    for (const auto& r : c.rules) {
      if (!full_match(r.name_regex, t.name) || !full_match(r.role_regex, t.role)) continue;
      if (!r.min_type.empty() && ti.bits_per_weight() < bpw_of(r.min_type)) ok = false;
      if (!r.max_type.empty() && ti.bits_per_weight() > bpw_of(r.max_type)) ok = false;
      if (!r.types.empty() && std::find(r.types.begin(), r.types.end(), ti.name) == r.types.end()) ok = false;
    }
    if (ok) out.push_back(ti.name);
  }
  if (out.empty()) {
    throw RecipeError(fmt::format("constraints leave tensor '{}' (role {}, rows of {}) no type",
                                  t.name, t.role, t.row_elems()));
  }
  return out;
}

// Least-squares scale through the origin; nullopt when the points carry no signal.
std::optional<double> fit_scale(const std::vector<std::pair<double, double>>& xd) {
  double sxx = 0, sxd = 0;
  for (const auto& [x, d] : xd) sxx += x * x, sxd += x * d;
  if (!(sxx > 0)) return std::nullopt;
  return std::max(0.0, sxd / sxx);  // extrapolation never predicts that fewer bits help
}

struct Fitted {
  std::map<std::string, std::vector<std::pair<double, double>>> xd;  // tensor -> (Δx, Δ)
  std::map<std::string, double> scale;                               // measured tensors
  std::map<std::string, std::vector<double>> role_scales;            // role -> its tensors' scales
  std::vector<double> all_scales;
};

void report_errors(const Fitted& f, const std::map<std::string, std::string>& role_of,
                   ModelErrorReport& rep);

}  // namespace

std::optional<double> QuantErrorTable::find(const std::string& tensor, const std::string& type) const {
  auto it = rel_mse.find(tensor);
  if (it == rel_mse.end()) return std::nullopt;
  auto jt = it->second.find(type);
  if (jt == it->second.end()) return std::nullopt;
  return jt->second;
}

QuantErrorTable quant_error_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw InputError(where + ": a quantization-error table must be a JSON object");
  if (j.contains("schema") && j["schema"] != kQuantErrorSchema) {
    throw MismatchError(fmt::format("{}: schema {} is not {}", where, j["schema"].dump(), kQuantErrorSchema));
  }
  const nlohmann::json& body = j.contains("rel_mse") ? j["rel_mse"] : j;
  if (!body.is_object()) throw InputError(where + ": \"rel_mse\" must be an object");
  QuantErrorTable t;
  t.weighting = j.value("weighting", "uniform");
  for (const auto& [tensor, by_type] : body.items()) {
    if (!by_type.is_object()) throw InputError(fmt::format("{}: {} must map types to values", where, tensor));
    for (const auto& [type, v] : by_type.items()) {
      const double x = v.is_number() ? v.get<double>() : -1.0;
      if (!std::isfinite(x) || x < 0) {
        throw RecipeError(fmt::format("{}: {} {}: relative MSE must be a finite number >= 0, got {}", where,
                                      tensor, type, v.dump()));
      }
      t.rel_mse[tensor][type_by_name(type).name] = x;
    }
  }
  return t;
}

namespace {
constexpr std::pair<NoisePolicy, const char*> kNoiseNames[] = {
    {NoisePolicy::kBayes, "bayes"}, {NoisePolicy::kClamp, "clamp"},
    {NoisePolicy::kShrink, "shrink"}, {NoisePolicy::kKeep, "keep"}};
}  // namespace

NoisePolicy parse_noise_policy(const std::string& name) {
  for (const auto& [p, n] : kNoiseNames) {
    if (name == n) return p;
  }
  throw UsageError(fmt::format("unknown noise policy '{}' (bayes, clamp, shrink or keep)", name));
}

std::string noise_policy_name(NoisePolicy p) {
  for (const auto& [q, n] : kNoiseNames) {
    if (p == q) return n;
  }
  return "?";
}

namespace {

// The noise policy applied to every point (in place), and each measured
// tensor's scale fitted through the origin on its points.
template <typename Dx>
Fitted fit_scales(const ModelInfo& model, const Dx& dx, Points& pts, const DamageOptions& opt,
                  ModelErrorReport& rep) {
  Fitted fit;
  double abs_sum = 0;
  for (auto& [tensor, by_type] : pts) {
    const TensorInfo& t = *model.find(tensor);
    for (auto& [type, pt] : by_type) {
      pt.delta = apply_noise(pt.delta, pt.se, opt, &rep.n_noise_clamped);
      fit.xd[tensor].emplace_back(dx(t, type), pt.delta);
      abs_sum += std::abs(pt.delta);
      ++rep.n_points;
    }
    if (auto sc = fit_scale(fit.xd[tensor])) {
      fit.scale[tensor] = *sc;
      fit.role_scales[t.role].push_back(*sc);
      fit.all_scales.push_back(*sc);
    }
  }
  rep.n_tensors_measured = static_cast<int>(pts.size());
  rep.mean_abs_measured_kld = rep.n_points ? abs_sum / rep.n_points : 0;
  return fit;
}

// The problem's header and report fields, before any curve.
AllocationProblem problem_shell(const ModelInfo& model, const Journal& journal,
                                const std::map<std::string, double>& objective, const Constraints& constraints,
                                const QuantErrorTable* qerr, const DamageOptions& opt) {
  // Imported original-project results carry PPL only (ΔKLD is a 0
  // placeholder): allocating on them would read every tensor as harmless.
  if (measure::is_imported(journal)) {
    throw InputError("the journal was imported from the original project's ablation_results.json and "
                     "has no ΔKLD; re-measure with `cerebellum measure` before allocating");
  }
  AllocationProblem p;
  p.model_sha256 = journal.header.model_sha256;
  p.base_name = journal.header.base_name;
  p.alignment_bytes = model.alignment_bytes;
  p.n_elements = model.n_elements;
  p.objective = objective;
  p.constraints = constraints;
  p.model_error.mse_source = qerr ? "table:" + qerr->weighting : "bpw-proxy";
  p.model_error.noise_policy = noise_policy_name(opt.noise);
  p.model_error.n_probes_ignored = static_cast<int>(journal.probes.size());
  return p;
}

std::set<std::string> types_of(const std::map<std::string, Point>* measured) {
  std::set<std::string> out;
  if (measured) {
    for (const auto& [type, pt] : *measured) out.insert(type);
  }
  return out;
}

// The scale's own measured fit, else its role's median, else the global one.
void set_scale(TensorCurve& c, const Fitted& fit, bool weight_error_only) {
  if (weight_error_only) {
    c.scale = static_cast<double>(c.n_elements), c.scale_from = "weight_error";
  } else if (auto sit = fit.scale.find(c.name); sit != fit.scale.end()) {
    c.scale = sit->second, c.scale_from = "measured";
  } else if (auto rit = fit.role_scales.find(c.role); rit != fit.role_scales.end()) {
    c.scale = median(rit->second), c.scale_from = "role:" + c.role;
  } else if (!fit.all_scales.empty()) {
    c.scale = median(fit.all_scales), c.scale_from = "global";
  } else {
    c.scale_from = "none";
  }
}

// The tensor's own single-tensor ablation, raw, for the greedy baseline.
void set_ablation(TensorCurve& c, const Points& raw) {
  auto rit = raw.find(c.name);
  if (rit == raw.end()) return;
  for (const auto& [type, pt] : rit->second) {
    if (!pt.from_group && bpw_of(type) < bpw_of(c.base_type) &&
        (!c.ablate_delta_kld || bpw_of(type) < bpw_of(c.ablate_type))) {
      c.ablate_delta_kld = pt.delta, c.ablate_delta_se_kld = pt.se, c.ablate_type = type;
    }
  }
}

// Standard error of the least-squares slope through the origin over the
// tensor's points (Σx²se²)^½ / Σx²: what a type priced by the scale inherits.
template <typename Dx>
double scale_se_of(const std::map<std::string, Point>& measured, const TensorInfo& t, const Dx& dx) {
  double sxx = 0, v = 0;
  for (const auto& [type, pt] : measured) {
    const double x = dx(t, type);
    sxx += x * x, v += x * x * pt.se * pt.se;
  }
  return sxx > 0 ? std::sqrt(v) / sxx : 0.0;
}

}  // namespace

AllocationProblem build_problem(const ModelInfo& model, const Journal& journal,
                                const std::map<std::string, double>& objective,
                                const Constraints& constraints, const QuantErrorTable* qerr,
                                const DamageOptions& opt) {
  AllocationProblem p = problem_shell(model, journal, objective, constraints, qerr, opt);
  ModelErrorReport& rep = p.model_error;

  const Points raw = combine_points(model, journal, objective);
  const auto base_of = [&](const TensorInfo& t) {
    auto it = journal.header.base_types.find(t.name);
    return type_by_name(it == journal.header.base_types.end() ? t.type : it->second).name;
  };
  const auto dx = [&](const TensorInfo& t, const std::string& type) {
    return delta_mse(qerr, t.name, type, base_of(t));
  };
  const CandidateContext ctx{qerr, opt.imatrix_tensors};

  // Noise-treated points and per-tensor scales.
  Points pts = raw;
  if (opt.noise == NoisePolicy::kBayes) shrink_points(model, dx, pts, rep);
  const Fitted fit = fit_scales(model, dx, pts, opt, rep);

  std::map<std::string, std::string> role_of;
  for (const auto& t : model.tensors) {
    TensorCurve c;
    c.name = t.name;
    c.role = t.role;
    c.layer = t.layer;
    c.n_elements = t.n_elements;
    c.source_type = type_by_name(t.type).name;
    c.base_type = base_of(t);
    c.stock_quantizable = t.stock_quantizable;
    role_of[t.name] = t.role;
    const auto pit = pts.find(t.name);
    const std::map<std::string, Point>* measured = pit == pts.end() || opt.weight_error_only ? nullptr : &pit->second;
    set_scale(c, fit, opt.weight_error_only);
    if (c.scale_from != "measured" && c.scale_from != "none" && !opt.weight_error_only) ++rep.n_tensors_imputed;
    set_ablation(c, raw);
    const double scale_se = measured && c.scale_from == "measured" ? scale_se_of(*measured, t, dx) : 0.0;
    for (const auto& type : candidate_types(t, c.base_type, constraints, types_of(measured), ctx)) {
      CandidateType cand;
      cand.type = type;
      cand.size_bytes = tensor_bytes_at(t, type, model.alignment_bytes);
      if (measured && measured->count(type)) {
        const Point& pt = measured->at(type);
        cand.damage_kld = pt.delta, cand.damage_se_kld = pt.se, cand.measured = true;
      } else if (type != c.base_type) {
        cand.damage_kld = c.scale * dx(t, type);
        cand.damage_se_kld = scale_se * std::abs(dx(t, type));
      }
      c.candidates.push_back(cand);
    }
    std::sort(c.candidates.begin(), c.candidates.end(), [](const auto& a, const auto& b) {
      return a.size_bytes != b.size_bytes ? a.size_bytes < b.size_bytes : a.type < b.type;
    });
    p.tensors.push_back(std::move(c));
  }
  report_errors(fit, role_of, rep);
  return p;
}

AllocationProblem unmeasured_problem(const ModelInfo& model, const std::map<std::string, std::string>& base_types,
                                     const Constraints& constraints, const std::set<std::string>& imatrix_tensors) {
  const QuantErrorTable any_type_priced;
  const CandidateContext ctx{&any_type_priced, imatrix_tensors};
  AllocationProblem p;
  p.alignment_bytes = model.alignment_bytes;
  p.n_elements = model.n_elements;
  p.constraints = constraints;
  for (const auto& t : model.tensors) {
    TensorCurve c;
    c.name = t.name, c.role = t.role, c.layer = t.layer, c.n_elements = t.n_elements;
    c.source_type = type_by_name(t.type).name;
    const auto b = base_types.find(t.name);
    c.base_type = b == base_types.end() ? c.source_type : type_by_name(b->second).name;
    c.stock_quantizable = t.stock_quantizable;
    for (const auto& type : candidate_types(t, c.base_type, constraints, {}, ctx)) {
      c.candidates.push_back({.type = type, .size_bytes = tensor_bytes_at(t, type, model.alignment_bytes)});
    }
    std::sort(c.candidates.begin(), c.candidates.end(),
              [](const auto& a, const auto& b) { return a.size_bytes < b.size_bytes; });
    p.tensors.push_back(std::move(c));
  }
  return p;
}

namespace {

void report_errors(const Fitted& f, const std::map<std::string, std::string>& role_of,
                   ModelErrorReport& rep) {
  // Leave-one-type-out: refit the tensor's scale without the point, predict it.
  double se = 0, ae = 0;
  for (const auto& [tensor, xd] : f.xd) {
    if (xd.size() < 2) continue;
    for (size_t k = 0; k < xd.size(); ++k) {
      auto rest = xd;
      rest.erase(rest.begin() + static_cast<long>(k));
      const double pred = fit_scale(rest).value_or(0.0) * xd[k].first;
      const double err = pred - xd[k].second;
      se += err * err, ae += std::abs(err), ++rep.n_loto;
    }
  }
  if (rep.n_loto) rep.loto_mae_kld = ae / rep.n_loto, rep.loto_rmse_kld = std::sqrt(se / rep.n_loto);
  // Leave-one-tensor-out: predict a measured tensor from its role's other tensors.
  se = ae = 0;
  for (const auto& [tensor, xd] : f.xd) {
    std::vector<double> others;
    for (const auto& [other, s] : f.scale) {
      if (other != tensor && role_of.at(other) == role_of.at(tensor)) others.push_back(s);
    }
    if (others.empty()) continue;
    const double s = median(others);
    for (const auto& [x, d] : xd) {
      const double err = s * x - d;
      se += err * err, ae += std::abs(err), ++rep.n_loo_tensor;
    }
  }
  if (rep.n_loo_tensor) {
    rep.loo_tensor_mae_kld = ae / rep.n_loo_tensor;
    rep.loo_tensor_rmse_kld = std::sqrt(se / rep.n_loo_tensor);
  }
}

}  // namespace
}  // namespace cb
