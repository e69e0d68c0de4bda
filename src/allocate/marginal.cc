#include "cerebellum/allocate/marginal.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "cerebellum/allocate/solver.h"

namespace cb {
namespace {

// Where the Lagrangian's choice is this plan's: between the dual's price (the
// lowest at which the choice fits, where the last tensor taken down is
// indifferent) and the next price at which some tensor would move down.
// The middle of that interval, so the tensor at the edge is not marginal by
// construction (twice the price when no tensor would move).
double plan_price(const std::vector<KnapsackItem>& items, int64_t capacity_bytes) {
  const double low = mckp_dual(items, capacity_bytes).price;
  if (!(low > 0)) return 0.0;
  double next = std::numeric_limits<double>::infinity();
  for (const KnapsackItem& item : items) {
    const KnapsackOption* at = &item.options.front();
    for (const KnapsackOption& o : item.options) {
      const double v = o.cost + low * static_cast<double>(o.size_bytes);
      if (v < at->cost + low * static_cast<double>(at->size_bytes)) at = &o;
    }
    for (const KnapsackOption& o : item.options) {
      if (o.size_bytes >= at->size_bytes) continue;
      const double switch_price = (o.cost - at->cost) / static_cast<double>(at->size_bytes - o.size_bytes);
      if (switch_price > low) next = std::min(next, switch_price);
    }
  }
  return std::isfinite(next) ? 0.5 * (low + next) : 2 * low;
}

}  // namespace

MarginalReport marginal_tensors(const AllocationProblem& p, const Plan& plan, double z) {
  assert(z > 0);
  const std::vector<int> choice = choice_of(p, plan);
  MarginalReport r;
  r.price_kld_per_byte = plan_price(knapsack_items(p), plan.budget_bytes - plan.fixed_overhead_bytes);
  const double lambda = r.price_kld_per_byte;
  std::vector<std::pair<double, MarginalTensor>> found;  // (gap/se, tensor)
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const TensorCurve& t = p.tensors[i];
    const CandidateType& c = t.candidates[choice[i]];
    const double lc = c.damage_kld + lambda * static_cast<double>(c.size_bytes);
    double best_ratio = z;
    MarginalTensor m;
    for (const CandidateType& o : t.candidates) {
      if (&o == &c) continue;
      const double se = std::hypot(c.damage_se_kld, o.damage_se_kld);
      if (!(se > 0)) continue;
      const double gap = o.damage_kld + lambda * static_cast<double>(o.size_bytes) - lc;
      if (gap / se < best_ratio) best_ratio = gap / se, m = {t.name, c.type, o.type, gap, se};
    }
    if (!m.tensor.empty()) found.emplace_back(best_ratio, m);
  }
  std::stable_sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [ratio, m] : found) r.tensors.push_back(std::move(m));
  return r;
}

nlohmann::json to_json(const MarginalReport& r) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const MarginalTensor& m : r.tensors) {
    tensors.push_back({{"tensor", m.tensor}, {"chosen", m.chosen}, {"rival", m.rival}, {"gap_kld", m.gap_kld},
                       {"se_kld", m.se_kld}});
  }
  return {{"price_kld_per_byte", r.price_kld_per_byte}, {"tensors", tensors}};
}

}  // namespace cb
