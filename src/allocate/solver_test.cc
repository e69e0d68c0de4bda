#include "cerebellum/allocate/solver.h"

#include <limits>
#include <random>

#include <gtest/gtest.h>

#include "cerebellum/common/error.h"

namespace cb {
namespace {

// Exhaustive optimum (cost, then size) for small instances.
KnapsackResult brute_force(const std::vector<KnapsackItem>& items, int64_t cap) {
  KnapsackResult best;
  best.cost = std::numeric_limits<double>::infinity();
  std::vector<int> idx(items.size(), 0);
  for (;;) {
    int64_t size = 0;
    double cost = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      size += items[i].options[idx[i]].size_bytes;
      cost += items[i].options[idx[i]].cost;
    }
    if (size <= cap && (cost < best.cost - 1e-12 ||
                        (std::abs(cost - best.cost) <= 1e-12 && size < best.size_bytes))) {
      best.cost = cost;
      best.size_bytes = size;
      best.choice = idx;
    }
    size_t k = 0;
    while (k < items.size() && ++idx[k] == static_cast<int>(items[k].options.size())) idx[k++] = 0;
    if (k == items.size()) break;
  }
  return best;
}

std::vector<KnapsackItem> random_instance(std::mt19937& rng, int64_t unit) {
  std::uniform_int_distribution<int> n_items(1, 6), n_opts(1, 4), blocks(1, 40);
  std::uniform_real_distribution<double> cost(-0.02, 0.5);
  std::vector<KnapsackItem> items(n_items(rng));
  for (auto& it : items) {
    const int n = n_opts(rng);
    for (int o = 0; o < n; ++o) it.options.push_back({blocks(rng) * unit, cost(rng)});
  }
  return items;
}

TEST(Solver, MatchesBruteForceOnRandomInstances) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 400; ++trial) {
    const auto items = random_instance(rng, 32);
    int64_t min_total = 0, max_total = 0;
    for (const auto& it : items) {
      int64_t lo = INT64_MAX, hi = 0;
      for (const auto& o : it.options) lo = std::min(lo, o.size_bytes), hi = std::max(hi, o.size_bytes);
      min_total += lo;
      max_total += hi;
    }
    std::uniform_int_distribution<int64_t> cap_d(min_total, max_total + 64);
    const int64_t cap = cap_d(rng);
    const KnapsackResult got = solve_mckp(items, cap);
    const KnapsackResult want = brute_force(items, cap);
    ASSERT_NEAR(got.cost, want.cost, 1e-9) << "trial " << trial;
    EXPECT_LE(got.size_bytes, cap);
    EXPECT_TRUE(got.exact);
    EXPECT_LE(got.lower_bound, got.cost + 1e-9);
  }
}

TEST(Solver, UnalignedSizesStayFeasibleAndNearOptimal) {
  std::mt19937 rng(99);
  for (int trial = 0; trial < 200; ++trial) {
    const auto items = random_instance(rng, 7);  // not multiples of the 32-byte granularity
    int64_t min_total = 0;
    for (const auto& it : items) {
      int64_t lo = INT64_MAX;
      for (const auto& o : it.options) lo = std::min(lo, o.size_bytes);
      min_total += lo;
    }
    const int64_t cap = min_total + 100;
    const KnapsackResult got = solve_mckp(items, cap);
    EXPECT_LE(got.size_bytes, cap);
    EXPECT_GE(got.cost, brute_force(items, cap).cost - 1e-9);
    EXPECT_LE(got.lower_bound, got.cost + 1e-9);
  }
}

TEST(Solver, CoarsenedGranularityIsMarkedInexactButFeasible) {
  std::mt19937 rng(7);
  const auto items = random_instance(rng, 32);
  SolverOptions opt;
  opt.max_cells = 4;  // forces coarsening
  const KnapsackResult got = solve_mckp(items, 1 << 20, opt);
  EXPECT_GT(got.granularity_bytes, 32);
  EXPECT_LE(got.size_bytes, 1 << 20);
}

TEST(Solver, InfeasibleBudgetNamesSmallestSize) {
  std::vector<KnapsackItem> items{{{{64, 0.0}, {32, 1.0}}}, {{{96, 0.0}}}};
  try {
    solve_mckp(items, 100);
    FAIL() << "expected BudgetError";
  } catch (const BudgetError& e) {
    EXPECT_NE(std::string(e.what()).find("128 bytes"), std::string::npos) << e.what();
  }
}

TEST(Solver, TiesPreferSmallerSizeDeterministically) {
  // Two options with equal cost: the smaller one wins, every time.
  std::vector<KnapsackItem> items{{{{64, 0.1}, {32, 0.1}}}, {{{32, 0.0}, {64, 0.0}}}};
  for (int i = 0; i < 3; ++i) {
    const KnapsackResult r = solve_mckp(items, 1000);
    EXPECT_EQ(r.choice, (std::vector<int>{1, 0}));
    EXPECT_EQ(r.size_bytes, 64);
  }
}

}  // namespace
}  // namespace cb
