#include "cerebellum/bench/stats.h"

#include <gtest/gtest.h>

#include "cerebellum/bench/bench.h"

namespace cb::bench {
namespace {

TEST(BenchStats, WilsonMatchesLlamaPerplexity) {
  // llama-perplexity --hellaswag printed 33/100 as [24.5631%, 42.6947%].
  const Interval ci = wilson_interval(33, 100);
  EXPECT_NEAR(ci.lo, 0.245631, 1e-6);
  EXPECT_NEAR(ci.hi, 0.426947, 1e-6);
  EXPECT_DOUBLE_EQ(wilson_interval(0, 0).hi, 1.0);
}

TEST(BenchStats, McNemarExact) {
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(0, 0), 1.0);
  EXPECT_NEAR(mcnemar_exact_p(0, 6), 2.0 / 64, 1e-12);
  EXPECT_NEAR(mcnemar_exact_p(10, 2), 2.0 * 79 / 4096, 1e-12);
  EXPECT_NEAR(mcnemar_exact_p(2, 10), mcnemar_exact_p(10, 2), 1e-15);
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(5, 5), 1.0);
  // Large n stays finite and tiny for a lopsided split.
  EXPECT_LT(mcnemar_exact_p(4000, 4400), 0.01);
  EXPECT_GT(mcnemar_exact_p(4000, 4100), 0.05);
}

std::vector<std::pair<std::string, bool>> answers(int n, int n_right, int offset = 0) {
  std::vector<std::pair<std::string, bool>> v;
  for (int i = 0; i < n; ++i) v.emplace_back(std::to_string(i), (i + offset) % n < n_right);
  return v;
}

TEST(BenchGate, SignificantRegressionDoesNotShip) {
  // Baseline right on 0..79, model right on 0..59: 20 discordant, all against.
  const auto v = ship_gate_from_correct({"arc-easy"}, {answers(100, 60)}, {answers(100, 80)});
  ASSERT_EQ(v.tasks.size(), 1u);
  EXPECT_EQ(v.tasks[0].baseline_only, 20);
  EXPECT_EQ(v.tasks[0].model_only, 0);
  EXPECT_TRUE(v.tasks[0].regression);
  EXPECT_FALSE(v.ships);
  EXPECT_NE(v.reason.find("arc-easy"), std::string::npos);
}

TEST(BenchGate, ImprovementOrNoiseShips) {
  EXPECT_TRUE(ship_gate_from_correct({"t"}, {answers(100, 80)}, {answers(100, 60)}).ships);
  // 3 discordant pairs against the model: not significant.
  EXPECT_TRUE(ship_gate_from_correct({"t"}, {answers(100, 57)}, {answers(100, 60)}).ships);
  // Unpaired ids are ignored.
  auto model = answers(10, 0);
  for (auto& [id, r] : model) id = "other-" + id;
  const auto v = ship_gate_from_correct({"t"}, {model}, {answers(10, 10)});
  EXPECT_EQ(v.tasks[0].n_paired, 0);
  EXPECT_TRUE(v.ships);
}

}  // namespace
}  // namespace cb::bench
