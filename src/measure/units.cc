// Unit planning (which tensors move together, in which order) and the
// adaptive stopping rule. Pure functions: no engine.
#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/pattern.h"
#include "cerebellum/common/quant_types.h"
#include "cerebellum/measure/measure.h"
#include "cerebellum/recipe/recipe.h"

namespace cb::measure {

PlanLevel parse_plan_level(const std::string& s) {
  if (s == "tensors" || s == "tensor") return PlanLevel::kTensors;
  if (s == "groups" || s == "group") return PlanLevel::kGroups;
  if (s == "layers" || s == "layer") return PlanLevel::kLayers;
  if (s == "auto") return PlanLevel::kAuto;
  throw UsageError(fmt::format("plan \"{}\" is not tensors|groups|layers|auto", s));
}

ShardSpec parse_shard(const std::string& s) {
  const size_t slash = s.find('/');
  ShardSpec r;
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    size_t used = 0;
    r.index = std::stoi(s.substr(0, slash), &used);
    if (used != slash) throw std::invalid_argument("index");
    r.count = std::stoi(s.substr(slash + 1), &used);
    if (used != s.size() - slash - 1) throw std::invalid_argument("count");
  } catch (const std::exception&) {
    throw UsageError(fmt::format("--shard \"{}\" is not K/N (e.g. 0/4: the first of four)", s));
  }
  if (r.count < 1 || r.index < 0 || r.index >= r.count) {
    throw UsageError(fmt::format("--shard {}: need 0 <= K < N", s));
  }
  return r;
}

std::vector<int64_t> unit_elements(const std::vector<PlannedUnit>& units, const ModelInfo& model) {
  std::map<std::string, int64_t> elements;
  for (const auto& t : model.tensors) elements[t.name] = t.n_elements;
  std::vector<int64_t> out(units.size(), 0);
  for (size_t i = 0; i < units.size(); ++i) {
    for (const auto& name : units[i].unit.tensors) out[i] += elements.count(name) ? elements.at(name) : 0;
  }
  return out;
}

std::vector<size_t> spread_heavy_units(const std::vector<int64_t>& weights) {
  if (weights.empty()) return {};
  const double mean = std::accumulate(weights.begin(), weights.end(), 0.0) / static_cast<double>(weights.size());
  std::deque<size_t> heavy, light;
  for (size_t i = 0; i < weights.size(); ++i) (static_cast<double>(weights[i]) > mean ? heavy : light).push_back(i);
  std::vector<size_t> order;
  double credit = 0;
  while (!heavy.empty() || !light.empty()) {
    credit += mean;
    std::deque<size_t>& from =
        heavy.empty() || (!light.empty() && static_cast<double>(weights[heavy.front()]) > credit) ? light : heavy;
    credit -= static_cast<double>(weights[from.front()]);
    order.push_back(from.front());
    from.pop_front();
  }
  return order;
}

std::vector<size_t> spread_heavy_units(const std::vector<PlannedUnit>& units, std::vector<size_t> order,
                                       const ModelInfo& model) {
  const std::vector<int64_t> elements = unit_elements(units, model);
  std::vector<int64_t> weights;
  for (size_t j : order) weights.push_back(elements[j]);
  std::vector<size_t> out;
  for (size_t k : spread_heavy_units(weights)) out.push_back(order[k]);
  return out;
}

namespace {

// Nanoseconds per weight to convert F16 to a type on one core, without an
// imatrix (`bash bench/convert_cost.sh`, stock llama-quantize on one thread
// of this 2-core EPYC: bench/results/convert_cost_2core.json). Only their
// ratios matter here. A type not listed costs as the dearest listed.
const std::map<std::string, double> kConvertNsPerWeight = {
    {"q2_K", 55.9}, {"q3_K", 12.7}, {"q4_K", 64.8}, {"q5_K", 54.2}, {"q6_K", 29.3}, {"q8_0", 4.9},
    {"q4_0", 2.3}, {"q4_1", 2.3}, {"q5_0", 3.2}, {"q5_1", 3.0}, {"iq4_nl", 176.9}, {"iq4_xs", 178.1},
    {"iq3_s", 340.4}
};

double convert_ns_per_weight(const std::string& type) {
  static const double dearest = std::max_element(kConvertNsPerWeight.begin(), kConvertNsPerWeight.end(),
                                                 [](const auto& a, const auto& b) { return a.second < b.second; })
                                    ->second;
  const auto it = kConvertNsPerWeight.find(type);
  return it == kConvertNsPerWeight.end() ? dearest : it->second;
}

}  // namespace

std::vector<int> assign_shards(const std::vector<PlannedUnit>& units, const ModelInfo& model, int count) {
  std::map<std::string, int64_t> elements;
  for (const auto& t : model.tensors) elements[t.name] = t.n_elements;
  std::vector<double> convert(units.size(), 0.0);
  double convert_total = 0;
  for (size_t i = 0; i < units.size(); ++i) {
    for (const auto& [name, type] : units[i].types) {
      convert[i] += static_cast<double>(elements.count(name) ? elements.at(name) : 0) * convert_ns_per_weight(type);
    }
    convert_total += convert[i];
  }
  std::vector<size_t> order(units.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return convert[a] > convert[b]; });
  // Two loads a shard: its evaluations (the same for every unit) and its
  // conversions. Which one bounds a shard depends on the machine (GPU speed
  // against CPU cores), so each is kept as even as the other, as a share of
  // its total: largest conversion first, each unit goes where the larger of
  // the shard's two shares stays smallest (ties: lowest shard).
  const size_t n = static_cast<size_t>(std::max(count, 1));
  const double n_units = static_cast<double>(std::max<size_t>(units.size(), 1));
  std::vector<double> evals(n, 0.0), converts(n, 0.0);
  std::vector<int> shard(units.size(), 0);
  for (size_t i : order) {
    size_t best = 0;
    double best_share = 0;
    for (size_t k = 0; k < n; ++k) {
      const double share = std::max((evals[k] + 1) / n_units,
                                    convert_total > 0 ? (converts[k] + convert[i]) / convert_total : 0.0);
      if (k == 0 || share < best_share) best = k, best_share = share;
    }
    shard[i] = static_cast<int>(best);
    evals[best] += 1;
    converts[best] += convert[i];
  }
  return shard;
}

EvalMode parse_eval_mode(const std::string& s) {
  if (s == "resident") return EvalMode::kResident;
  if (s == "simulated") return EvalMode::kSimulated;
  if (s == "exact") return EvalMode::kExact;
  throw UsageError(fmt::format("mode \"{}\" is not resident|simulated|exact", s));
}

std::string to_string(PlanLevel p) {
  switch (p) {
    case PlanLevel::kTensors: return "tensors";
    case PlanLevel::kGroups: return "groups";
    case PlanLevel::kLayers: return "layers";
    case PlanLevel::kAuto: return "auto";
  }
  return "?";
}

std::string to_string(EvalMode m) {
  switch (m) {
    case EvalMode::kResident: return "resident";
    case EvalMode::kSimulated: return "simulated";
    case EvalMode::kExact: return "exact";
  }
  return "?";
}

ChunkStats chunk_stats(const std::vector<double>& values) {
  ChunkStats s;
  s.n = static_cast<int>(values.size());
  if (s.n == 0) return s;
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / s.n;
  if (s.n < 2) return s;
  double ss = 0;
  for (double v : values) ss += (v - s.mean) * (v - s.mean);
  s.se = std::sqrt(ss / (s.n - 1) / s.n);
  return s;
}

std::string stop_reason(const std::vector<double>& block_deltas, int n_chunks,
                        const StopRule& rule) {
  if (block_deltas.size() < 2 || n_chunks < rule.min_chunks) return "";
  const ChunkStats s = chunk_stats(block_deltas);
  if (s.se <= rule.rel_tol * std::abs(s.mean) + rule.abs_tol_nats) return "tight";
  if (rule.sep_z > 0 && std::abs(s.mean) >= rule.sep_z * s.se) return "separated";
  return "";
}

namespace {

// Relative quantization MSE falls ~4x per bit: the ordering proxy.
double mse_proxy(const std::string& type) {
  return std::pow(4.0, -type_by_name(type).bits_per_weight());
}

// The type `t` takes when asked for `type`: itself if its rows fit, stock's
// fallback otherwise; nullopt when nothing fits.
std::optional<std::string> fitted_type(const TensorInfo& t, const std::string& type) {
  const TypeInfo& want = type_by_name(type);
  if (row_fits(want, t.row_elems())) return want.name;
  try {
    const std::string fb = fallback_type(want.name, t.row_elems());
    if (row_fits(type_by_name(fb), t.row_elems())) return type_by_name(fb).name;
  } catch (const RecipeError&) {
  }
  return std::nullopt;
}

std::string group_key(const TensorInfo& t) { return t.role.empty() ? t.name : t.role; }

}  // namespace

std::vector<PlannedUnit> plan_units(const ModelInfo& model,
                                    const std::map<std::string, std::string>& base_types,
                                    const std::vector<std::string>& swappable, PlanLevel level,
                                    const std::string& type, const std::string& direction,
                                    const std::string& tensor_regex) {
  const std::set<std::string> can_swap(swappable.begin(), swappable.end());
  std::optional<Pattern> re;
  if (!tensor_regex.empty()) re.emplace(tensor_regex, "--tensors");
  const double want_bpw = type_by_name(type).bits_per_weight();
  std::map<std::string, PlannedUnit> units;  // id -> unit
  for (const TensorInfo& t : model.tensors) {
    if (t.shape.size() < 2 || !can_swap.count(t.name)) continue;
    if (re && !re->search(t.name)) continue;
    auto b = base_types.find(t.name);
    const std::string base = type_by_name(b == base_types.end() ? t.type : b->second).name;
    const std::optional<std::string> got = fitted_type(t, type);
    if (!got || *got == base) continue;
    const double got_bpw = type_by_name(*got).bits_per_weight();
    const double base_bpw = type_by_name(base).bits_per_weight();
    // An ablation lowers bits, a promotion raises them; a fallback that goes
    // the other way would measure something else.
    if (direction == "ablate" ? got_bpw >= base_bpw : got_bpw <= base_bpw) continue;
    (void)want_bpw;
    std::string id = t.name, lvl = "tensor";
    if (level == PlanLevel::kGroups || level == PlanLevel::kAuto) {
      id = group_key(t), lvl = "group";
    } else if (level == PlanLevel::kLayers && t.layer >= 0) {
      id = fmt::format("blk.{}", t.layer), lvl = "layer";
    }
    PlannedUnit& u = units[id];
    u.unit.id = id;
    u.unit.level = lvl;
    u.unit.tensors.push_back(t.name);
    u.direction = direction;
    u.target = type_by_name(type).name;
    u.types[t.name] = *got;
    u.expected_damage += static_cast<double>(t.n_elements) *
                         std::abs(mse_proxy(*got) - mse_proxy(base));
  }
  std::vector<PlannedUnit> out;
  for (auto& [id, u] : units) out.push_back(std::move(u));
  std::stable_sort(out.begin(), out.end(), [](const PlannedUnit& a, const PlannedUnit& b) {
    return a.expected_damage > b.expected_damage;
  });
  return out;
}

}  // namespace cb::measure
