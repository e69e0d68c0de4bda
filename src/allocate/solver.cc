// Multiple-choice knapsack by dynamic programming over the bytes above the
// all-smallest assignment. Only that margin needs a DP axis, so a 7 MB budget on
// a 13 M-parameter model is ~10^5 cells per item at 32-byte granularity.
#include "cerebellum/allocate/solver.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "cerebellum/common/error.h"

namespace cb {
namespace {

struct Reduced {
  std::vector<int64_t> min_size_bytes;  // per item
  int64_t min_total_bytes = 0;
};

Reduced reduce(const std::vector<KnapsackItem>& items) {
  Reduced r;
  for (const auto& item : items) {
    if (item.options.empty()) throw Error("solve_mckp: an item has no options");
    int64_t m = std::numeric_limits<int64_t>::max();
    for (const auto& o : item.options) m = std::min(m, o.size_bytes);
    r.min_size_bytes.push_back(m);
    r.min_total_bytes += m;
  }
  return r;
}

// Picks the granularity: the requested one unless the table would be too big.
int64_t pick_granularity(size_t n_items, int64_t slack_bytes, const SolverOptions& opt) {
  int64_t g = std::max<int64_t>(1, opt.granularity_bytes);
  const auto cells = [&](int64_t gg) { return static_cast<double>(n_items) * (slack_bytes / gg + 1); };
  while (cells(g) > static_cast<double>(opt.max_cells)) g *= 2;
  return g;
}

struct Cell {
  double cost;
  int64_t units;
};

bool better(const Cell& a, const Cell& b) {
  return a.cost < b.cost || (a.cost == b.cost && a.units < b.units);
}

// After a rounded DP: spend the bytes rounding left over, one best single swap
// at a time (each strictly lowers the cost, so this terminates).
void fix_up(const std::vector<KnapsackItem>& items, int64_t capacity_bytes, KnapsackResult& res) {
  for (;;) {
    double best_gain = 0;
    int best_i = -1, best_o = -1;
    for (size_t i = 0; i < items.size(); ++i) {
      const auto& cur = items[i].options[res.choice[i]];
      for (size_t o = 0; o < items[i].options.size(); ++o) {
        const auto& alt = items[i].options[o];
        const double gain = cur.cost - alt.cost;
        if (gain > best_gain && res.size_bytes - cur.size_bytes + alt.size_bytes <= capacity_bytes) {
          best_gain = gain;
          best_i = static_cast<int>(i);
          best_o = static_cast<int>(o);
        }
      }
    }
    if (best_i < 0) return;
    const auto& cur = items[best_i].options[res.choice[best_i]];
    const auto& alt = items[best_i].options[best_o];
    res.size_bytes += alt.size_bytes - cur.size_bytes;
    res.cost += alt.cost - cur.cost;
    res.choice[best_i] = best_o;
  }
}

}  // namespace

LagrangeDual mckp_dual(const std::vector<KnapsackItem>& items, int64_t capacity_bytes) {
  // For a given λ: every item takes the option minimising cost + λ·size.
  const auto eval = [&](double lambda, double* size_sum) {
    double value = 0;
    *size_sum = 0;
    for (const auto& item : items) {
      double best = std::numeric_limits<double>::infinity();
      double best_size = 0;
      for (const auto& o : item.options) {
        const double v = o.cost + lambda * static_cast<double>(o.size_bytes);
        if (v < best || (v == best && o.size_bytes < best_size)) {
          best = v;
          best_size = static_cast<double>(o.size_bytes);
        }
      }
      value += best;
      *size_sum += best_size;
    }
    return value - lambda * static_cast<double>(capacity_bytes);
  };
  double size_sum = 0;
  double best = eval(0, &size_sum);
  if (size_sum <= static_cast<double>(capacity_bytes)) return {0.0, best};  // unconstrained optimum fits
  double lo = 0, hi = 1e-12;
  for (int i = 0; i < 200 && (eval(hi, &size_sum), size_sum > capacity_bytes); ++i) hi *= 2;
  for (int i = 0; i < 100; ++i) {  // the dual is concave: bisect on its slope
    const double mid = 0.5 * (lo + hi);
    best = std::max(best, eval(mid, &size_sum));
    (size_sum > capacity_bytes ? lo : hi) = mid;
  }
  return {hi, std::max(best, eval(hi, &size_sum))};
}

double mckp_lower_bound(const std::vector<KnapsackItem>& items, int64_t capacity_bytes) {
  return mckp_dual(items, capacity_bytes).bound;
}

KnapsackResult solve_mckp(const std::vector<KnapsackItem>& items, int64_t capacity_bytes,
                          const SolverOptions& opt) {
  const Reduced red = reduce(items);
  if (red.min_total_bytes > capacity_bytes) {
    throw BudgetError(fmt::format("budget infeasible: the smallest allowed assignment needs {} "
                                  "bytes, {} over the {} available",
                                  red.min_total_bytes, red.min_total_bytes - capacity_bytes,
                                  capacity_bytes));
  }
  const int64_t slack_bytes = capacity_bytes - red.min_total_bytes;
  KnapsackResult res;
  res.granularity_bytes = pick_granularity(items.size(), slack_bytes, opt);
  const int64_t g = res.granularity_bytes;
  const auto W = static_cast<size_t>(slack_bytes / g);
  res.exact = true;

  std::vector<Cell> dp(W + 1, Cell{0, 0}), next(W + 1);
  std::vector<std::vector<uint16_t>> pick(items.size(), std::vector<uint16_t>(W + 1, 0));
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& opts = items[i].options;
    std::vector<int64_t> units(opts.size());
    for (size_t o = 0; o < opts.size(); ++o) {
      const int64_t extra = opts[o].size_bytes - red.min_size_bytes[i];
      units[o] = (extra + g - 1) / g;  // round up: stays feasible
      if (extra % g != 0) res.exact = false;
    }
    for (size_t c = 0; c <= W; ++c) {
      Cell best{std::numeric_limits<double>::infinity(), 0};
      uint16_t best_o = 0;
      for (size_t o = 0; o < opts.size(); ++o) {
        if (units[o] > static_cast<int64_t>(c)) continue;
        const Cell& prev = dp[c - units[o]];
        const Cell cand{prev.cost + opts[o].cost, prev.units + units[o]};
        if (better(cand, best)) {
          best = cand;
          best_o = static_cast<uint16_t>(o);
        }
      }
      next[c] = best;
      pick[i][c] = best_o;
    }
    dp.swap(next);
  }
  res.choice.assign(items.size(), 0);
  size_t c = W;
  for (size_t i = items.size(); i-- > 0;) {
    const int o = pick[i][c];
    res.choice[i] = o;
    const int64_t extra = items[i].options[o].size_bytes - red.min_size_bytes[i];
    c -= static_cast<size_t>((extra + g - 1) / g);
  }
  for (size_t i = 0; i < items.size(); ++i) {
    res.size_bytes += items[i].options[res.choice[i]].size_bytes;
    res.cost += items[i].options[res.choice[i]].cost;
  }
  if (!res.exact) fix_up(items, capacity_bytes, res);
  res.lower_bound = mckp_lower_bound(items, capacity_bytes);
  return res;
}

}  // namespace cb
