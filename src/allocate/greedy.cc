// The original project's allocator (osmosis/cerebellum.py, ablation_aware_allocate),
// rebuilt on our data so it can be compared at equal budgets. The rule, faithfully:
//  1. classify tensors with an ablation: Δ < −thr "demote", Δ > thr "sacred", else neutral;
//  2. demote each "demote" tensor one tier (q8_0 > q6_K > q5_K > q4_K > q3_K > q2_K);
//  3. layer score = mean Δ of the layer's tested tensors, interpolated linearly
//     over untested layers; untested tensors in layers scoring < −thr demote one tier;
//  4. promotion budget = bytes saved + (budget − base size); in passes, every
//     tensor one tier below its ceiling is a candidate with benefit Δ·n_elements
//     (sacred) or layer score·n_elements (others, if > 0), sorted by
//     benefit / bytes; take each that still fits; stop when a pass takes none.
// Differences from the original, all to make the comparison fair: exact sizes
// instead of dry-run MiB, thr from the measurement's own z·se (or a fixed value),
// and only types the constraints allow.
#include <algorithm>
#include <cmath>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/common/quant_types.h"

namespace cb {
namespace {

// The original project's tiers: the k-quant ladder.
int tier_of(const std::string& type) {
  const auto& ladder = k_ladder();
  const auto it = std::find(ladder.begin(), ladder.end(), type);
  return it == ladder.end() ? -1 : static_cast<int>(it - ladder.begin());
}

// Index of `type` in the tensor's candidates, -1 if not allowed.
int cand_index(const TensorCurve& c, const std::string& type) {
  for (size_t k = 0; k < c.candidates.size(); ++k) {
    if (c.candidates[k].type == type) return static_cast<int>(k);
  }
  return -1;
}

int step_tier(const TensorCurve& c, int current, int dir) {
  const int t = tier_of(c.candidates[current].type);
  if (t < 0 || t + dir < 0 || t + dir >= static_cast<int>(k_ladder().size())) return -1;
  return cand_index(c, k_ladder()[t + dir]);
}

std::map<int, double> layer_scores(const AllocationProblem& p) {
  std::map<int, std::vector<double>> by_layer;
  int n_layers = 0;
  for (const auto& c : p.tensors) {
    n_layers = std::max(n_layers, c.layer + 1);
    if (c.layer >= 0 && c.ablate_delta_kld) by_layer[c.layer].push_back(*c.ablate_delta_kld);
  }
  std::map<int, double> known, out;
  for (const auto& [l, v] : by_layer) {
    double s = 0;
    for (double d : v) s += d;
    known[l] = s / v.size();
  }
  for (int l = 0; l < n_layers; ++l) {
    auto hi = known.lower_bound(l);
    if (hi != known.end() && hi->first == l) {
      out[l] = hi->second;
    } else if (known.empty()) {
      out[l] = 0;
    } else if (hi == known.begin()) {
      out[l] = hi->second;
    } else if (hi == known.end()) {
      out[l] = std::prev(hi)->second;
    } else {
      auto lo = std::prev(hi);
      const double f = double(l - lo->first) / (hi->first - lo->first);
      out[l] = lo->second + f * (hi->second - lo->second);
    }
  }
  return out;
}

// The greedy's state: the current candidate per tensor and its rules.
struct Greedy {
  const AllocationProblem& p;
  const GreedyOptions& opt;
  std::map<int, double> scores = layer_scores(p);
  std::vector<int> cur;

  double threshold(const TensorCurve& c) const {
    return opt.noise_threshold_kld > 0 ? opt.noise_threshold_kld : opt.noise_z * c.ablate_delta_se_kld;
  }
  int64_t size_at(size_t i, int k) const { return p.tensors[i].candidates[k].size_bytes; }

  // Phases 1 and 2: one tier down for tensors (or layers) whose ablation
  // helped beyond noise; returns the bytes saved.
  int64_t demote() {
    int64_t saved = 0;
    for (size_t i = 0; i < p.tensors.size(); ++i) {
      const TensorCurve& c = p.tensors[i];
      bool down_ok = false;
      if (c.ablate_delta_kld) {
        down_ok = *c.ablate_delta_kld < -threshold(c);
      } else if (c.layer >= 0) {
        down_ok = scores.at(c.layer) < -(opt.noise_threshold_kld > 0 ? opt.noise_threshold_kld : 0.0);
      }
      const int down = down_ok ? step_tier(c, cur[i], -1) : -1;
      if (down >= 0 && size_at(i, down) < size_at(i, cur[i])) {
        saved += size_at(i, cur[i]) - size_at(i, down);
        cur[i] = down;
      }
    }
    return saved;
  }

  // One promotion pass: one tier up, best benefit per byte first, within the
  // budget; returns how many were taken.
  int promote_pass(int64_t budget, int64_t& spent) {
    struct Cand {
      size_t i;
      int to;
      double eff;
    };
    std::vector<Cand> cands;
    for (size_t i = 0; i < p.tensors.size(); ++i) {
      const TensorCurve& c = p.tensors[i];
      const int up = step_tier(c, cur[i], +1);
      const int64_t cost = up < 0 ? 0 : size_at(i, up) - size_at(i, cur[i]);
      if (cost <= 0) continue;
      const bool measured_hurt = c.ablate_delta_kld && *c.ablate_delta_kld > threshold(c);
      const double per_weight = measured_hurt ? *c.ablate_delta_kld : (c.layer >= 0 ? scores.at(c.layer) : 0.0);
      if (!measured_hurt && per_weight <= 0) continue;
      cands.push_back({i, up, per_weight * c.n_elements / cost});
    }
    std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) { return a.eff > b.eff; });
    int taken = 0;
    for (const auto& c : cands) {
      const int64_t cost = size_at(c.i, c.to) - size_at(c.i, cur[c.i]);
      if (spent + cost > budget) continue;
      spent += cost;
      cur[c.i] = c.to;
      ++taken;
    }
    return taken;
  }
};

}  // namespace

Plan greedy_original_plan(const AllocationProblem& p, int64_t budget_bytes,
                          int64_t fixed_overhead_bytes, const GreedyOptions& opt) {
  const Plan base = base_plan(p, fixed_overhead_bytes);
  Greedy g{p, opt};
  for (const auto& c : p.tensors) g.cur.push_back(cand_index(c, c.base_type));
  const int64_t promo_budget = g.demote() + (budget_bytes - base.size_bytes);
  int64_t spent = 0;
  while (g.promote_pass(promo_budget, spent) > 0) {  // phase 3: promotion passes
  }
  Plan plan = plan_from_choice(p, g.cur, fixed_overhead_bytes);
  plan.method = "greedy_original";
  plan.budget_bytes = budget_bytes;
  return plan;
}

}  // namespace cb
