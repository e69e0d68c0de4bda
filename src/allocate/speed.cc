// Decode speed as a constraint (include/cerebellum/allocate/speed.h).
#include "cerebellum/allocate/speed.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/error.h"

namespace cb {
namespace {

// Seconds per token each candidate adds: its element share of the traded
// weights times 1/tg of its type's uniform mix. Untraded tensors add 0.
std::vector<std::vector<double>> option_seconds(const AllocationProblem& p, const SpeedTable& table) {
  int64_t traded_elements = 0;
  for (const auto& c : p.tensors) traded_elements += c.candidates.size() > 1 ? c.n_elements : 0;
  std::vector<std::vector<double>> out;
  for (const auto& c : p.tensors) {
    std::vector<double> secs(c.candidates.size(), 0.0);
    if (c.candidates.size() > 1 && traded_elements > 0) {
      for (size_t k = 0; k < c.candidates.size(); ++k) {
        const auto it = table.tg_tokens_per_s.find(c.candidates[k].type);
        if (it == table.tg_tokens_per_s.end() || !(it->second > 0)) {
          throw RecipeError(fmt::format("the speed table has no decode speed for {} ('{}')", c.candidates[k].type,
                                        c.name));
        }
        secs[k] = static_cast<double>(c.n_elements) / static_cast<double>(traded_elements) / it->second;
      }
    }
    out.push_back(std::move(secs));
  }
  return out;
}

struct Solved {
  std::vector<int> choice;
  double damage = 0, seconds = 0, bound = 0;  // bound: the relaxed optimum (a lower bound on it)
};

// The byte knapsack on damage + λ·seconds (λ = inf: seconds alone).
Solved solve_at(const AllocationProblem& p, const std::vector<std::vector<double>>& secs, int64_t capacity,
                double lambda) {
  const bool speed_only = std::isinf(lambda);
  std::vector<KnapsackItem> items;
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    KnapsackItem item;
    for (size_t k = 0; k < p.tensors[i].candidates.size(); ++k) {
      const auto& c = p.tensors[i].candidates[k];
      item.options.push_back({c.size_bytes, speed_only ? secs[i][k] : c.damage_kld + lambda * secs[i][k]});
    }
    items.push_back(std::move(item));
  }
  const KnapsackResult k = solve_mckp(items, capacity);
  Solved s{k.choice};
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    s.damage += p.tensors[i].candidates[k.choice[i]].damage_kld;
    s.seconds += secs[i][k.choice[i]];
  }
  s.bound = k.exact ? k.cost : k.lower_bound;
  return s;
}

// Repair: the relaxation jumps whole groups at one λ (ties), so from the
// feasible plan take back the infeasible side's choices, best damage saved
// per second added first, while both limits hold.
void repair(const AllocationProblem& p, const std::vector<std::vector<double>>& secs, int64_t capacity,
            double limit_s, const Solved& infeasible, Solved& best) {
  int64_t bytes = 0;
  for (size_t i = 0; i < p.tensors.size(); ++i) bytes += p.tensors[i].candidates[best.choice[i]].size_bytes;
  std::vector<size_t> order;
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const auto& c = p.tensors[i].candidates;
    if (c[infeasible.choice[i]].damage_kld < c[best.choice[i]].damage_kld) order.push_back(i);
  }
  auto ratio = [&](size_t i) {
    const auto& c = p.tensors[i].candidates;
    const double saved = c[best.choice[i]].damage_kld - c[infeasible.choice[i]].damage_kld;
    return saved / std::max(secs[i][infeasible.choice[i]] - secs[i][best.choice[i]], 1e-300);
  };
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ratio(a) > ratio(b); });
  for (size_t i : order) {
    const auto& c = p.tensors[i].candidates;
    const int from = best.choice[i], to = infeasible.choice[i];
    const double seconds = best.seconds - secs[i][from] + secs[i][to];
    const int64_t b = bytes - c[from].size_bytes + c[to].size_bytes;
    if (seconds > limit_s || b > capacity) continue;
    best.choice[i] = to, best.seconds = seconds, bytes = b;
    best.damage += c[to].damage_kld - c[from].damage_kld;
  }
}

}  // namespace

double predicted_tokens_per_s(const AllocationProblem& p, const std::vector<int>& choice, const SpeedTable& table) {
  const auto secs = option_seconds(p, table);
  double s = 0;
  for (size_t i = 0; i < p.tensors.size(); ++i) s += secs[i][choice[i]];
  return s > 0 ? 1.0 / s : 0;
}

SpeedPlan allocate_plan_min_speed(const AllocationProblem& p, int64_t budget_bytes, int64_t fixed_overhead_bytes,
                                  const SpeedTable& table, double min_tokens_per_s) {
  if (!(min_tokens_per_s > 0)) throw UsageError("--min-decode-speed must be a positive tokens/s");
  const auto secs = option_seconds(p, table);
  const int64_t capacity = budget_bytes - fixed_overhead_bytes;
  const double limit_s = 1.0 / min_tokens_per_s;
  SpeedPlan out;
  Solved best = solve_at(p, secs, capacity, 0.0);
  out.unconstrained_tokens_per_s = best.seconds > 0 ? 1.0 / best.seconds : 0;
  out.n_solves = 1;
  out.lower_bound_kld = best.bound;
  if (best.seconds > limit_s) {
    const Solved fastest = solve_at(p, secs, capacity, std::numeric_limits<double>::infinity());
    ++out.n_solves;
    if (fastest.seconds > limit_s) {
      throw BudgetError(fmt::format("--min-decode-speed {:.1f}: the fastest plan within {} bytes decodes at {:.1f} "
                                    "tokens/s by this machine's table", min_tokens_per_s, budget_bytes,
                                    1.0 / fastest.seconds));
    }
    double lo = 0, hi = 1e-6;  // λ in nats per (second per token)
    Solved infeasible = best;
    for (best = solve_at(p, secs, capacity, hi); best.seconds > limit_s; best = solve_at(p, secs, capacity, hi)) {
      infeasible = best, lo = hi, hi *= 8, ++out.n_solves;
    }
    for (int it = 0; it < 40 && hi - lo > 1e-9 * hi; ++it, ++out.n_solves) {
      const double mid = 0.5 * (lo + hi);
      const Solved s = solve_at(p, secs, capacity, mid);
      out.lower_bound_kld = std::max(out.lower_bound_kld, s.bound - mid * limit_s);
      if (s.seconds <= limit_s) best = s, hi = mid;
      else infeasible = s, lo = mid;
    }
    out.lambda = hi;
    out.lower_bound_kld = std::max(out.lower_bound_kld, best.bound - hi * limit_s);
    repair(p, secs, capacity, limit_s, infeasible, best);
  }
  out.plan = plan_from_choice(p, best.choice, fixed_overhead_bytes);
  out.plan.method = "mckp+speed";
  out.plan.budget_bytes = budget_bytes;
  out.predicted_tokens_per_s = 1.0 / best.seconds;
  return out;
}

nlohmann::json to_json(const SpeedTable& t) {
  return {{"tg_tokens_per_s", t.tg_tokens_per_s}, {"n_threads", t.n_threads}, {"machine", t.machine},
          {"model_sha256", t.model_sha256}};
}

SpeedTable speed_table_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("tg_tokens_per_s") || !j["tg_tokens_per_s"].is_object()) {
    throw InputError(where + ": not a speed table (expected tg_tokens_per_s)");
  }
  SpeedTable t;
  for (const auto& [type, v] : j["tg_tokens_per_s"].items()) {
    if (!v.is_number() || !(v.get<double>() > 0)) throw InputError(fmt::format("{}: {}: bad tokens/s", where, type));
    t.tg_tokens_per_s[type] = v.get<double>();
  }
  t.n_threads = j.value("n_threads", 0);
  t.machine = j.value("machine", "");
  t.model_sha256 = j.value("model_sha256", "");
  return t;
}

nlohmann::json speed_plan_json(const SpeedPlan& s, const SpeedTable& table, double min_tokens_per_s) {
  return {{"min_tokens_per_s", min_tokens_per_s}, {"predicted_tokens_per_s", s.predicted_tokens_per_s},
          {"unconstrained_predicted_tokens_per_s", s.unconstrained_tokens_per_s}, {"lambda", s.lambda},
          {"lower_bound_delta_kld", s.lower_bound_kld},
          {"gap_delta_kld", s.plan.predicted_delta_kld - s.lower_bound_kld}, {"n_solves", s.n_solves},
          {"table", to_json(table)}};
}

}  // namespace cb
