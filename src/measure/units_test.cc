#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "cerebellum/common/error.h"
#include "cerebellum/inspect/inspect.h"
#include "cerebellum/measure/measure.h"
#include "cerebellum/recipe/recipe.h"
#include "test_paths.h"

namespace cb::measure {
namespace {

// Shards cover every unit exactly once, each gets a fair share of both
// costs (evaluations: units; conversions: q2_K's ~2x q6_K's per weight), and
// the assignment depends only on the units (every process agrees).
TEST(MeasureShard, EveryUnitOnceBalancedAndDeterministic) {
  const ModelInfo model = inspect_model(test::model("cb-dense-12l-F16.gguf"));
  std::string name;
  const auto base = resolve_base("Q4_K_M", model, &name);
  std::vector<std::string> all;
  std::map<std::string, int64_t> elements;
  for (const auto& t : model.tensors) all.push_back(t.name), elements[t.name] = t.n_elements;
  auto units = plan_units(model, base, all, PlanLevel::kTensors, "q2_K", "ablate");
  for (auto& u : plan_units(model, base, all, PlanLevel::kTensors, "q6_K", "promote")) units.push_back(u);
  ASSERT_GT(units.size(), 120u);
  // q2_K's and q6_K's weights, by the measured ratio (bench/results/convert_cost_2core.json).
  const auto cost = [&](const PlannedUnit& u) {
    double c = 0;
    for (const auto& [t, type] : u.types) {
      c += static_cast<double>(elements.at(t)) * (type == "q2_K" ? (55.9 / 29.3) : 1.0);
    }
    return c;
  };
  double total = 0, largest = 0;
  for (const auto& u : units) total += cost(u), largest = std::max(largest, cost(u));
  for (int n : {1, 2, 3, 4, 7}) {
    const std::vector<int> a = assign_shards(units, model, n);
    ASSERT_EQ(a.size(), units.size());
    EXPECT_EQ(a, assign_shards(units, model, n));
    std::vector<int> per(n, 0);
    std::vector<double> conv(n, 0.0);
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_GE(a[i], 0);
      ASSERT_LT(a[i], n);
      ++per[a[i]];
      conv[a[i]] += cost(units[i]);
    }
    // Each shard's larger share of the two totals is its fair share, give
    // or take the largest unit's share of either (the greedy places units
    // one at a time): the slowest shard is never more than one unit behind.
    const double slack = std::max(1.0 / static_cast<double>(units.size()), largest / total);
    for (int k = 0; k < n; ++k) {
      const double share = std::max(static_cast<double>(per[k]) / static_cast<double>(units.size()), conv[k] / total);
      EXPECT_LE(share, 1.0 / n + slack) << n << " shards, shard " << k;
    }
  }
  EXPECT_EQ(parse_shard("1/4").index, 1);
  EXPECT_EQ(parse_shard("1/4").count, 4);
  for (const char* bad : {"4/4", "-1/2", "1", "a/b", "1/0", "1/2x"}) {
    EXPECT_THROW(parse_shard(bad), UsageError) << bad;
  }
}

TEST(MeasureStop, ChunkStatsUsesPerChunkSpread) {
  const ChunkStats s = chunk_stats({1.0, 2.0, 3.0, 4.0});
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.se, std::sqrt(1.6666666666666667 / 4), 1e-12);
  EXPECT_EQ(chunk_stats({5.0}).se, 0.0);
}

TEST(MeasureStop, RespectsMinChunksAndTolerances) {
  StopRule r{.min_chunks = 4, .max_chunks = 40, .rel_tol = 0.05, .abs_tol_nats = 1e-4, .sep_z = 8};
  EXPECT_EQ(stop_reason({0.1, 0.1, 0.1}, 3, r), "");                 // below min_chunks
  EXPECT_EQ(stop_reason({0.1, 0.1, 0.1, 0.1}, 4, r), "tight");       // se = 0
  EXPECT_EQ(stop_reason({1e-5, -1e-5, 2e-5, 0}, 4, r), "tight");     // negligible: abs_tol
  EXPECT_EQ(stop_reason({0.8, 1.2, 1.0, 1.0}, 4, r), "separated");   // se ~0.08, |Δ|/se ~12
  EXPECT_EQ(stop_reason({0.0, 0.2, -0.1, 0.1}, 4, r), "");           // noisy, near zero
  r.sep_z = 0;
  EXPECT_EQ(stop_reason({0.8, 1.2, 1.0, 1.0}, 4, r), "");
  // Blocks: min_chunks counts chunks, not samples; one sample has no SE.
  r.min_chunks = 2;
  EXPECT_EQ(stop_reason({0.1, 0.1, 0.1, 0.1}, 1, r), "");
  EXPECT_EQ(stop_reason({0.1, 0.1, 0.1, 0.1}, 2, r), "tight");
  r.min_chunks = 1;
  EXPECT_EQ(stop_reason({0.1}, 1, r), "");
}

TEST(MeasurePlan, LevelsOrderAndFallbacks) {
  const ModelInfo m = inspect_model(test::model("cb-dense-12l-F16.gguf"));
  const auto base = resolve_recipe(Recipe{.base = "Q4_K_M"}, m).types();
  std::vector<std::string> swappable;
  for (const auto& t : m.tensors) swappable.push_back(t.name);
  const auto tensors = plan_units(m, base, swappable, PlanLevel::kTensors, "q2_K", "ablate");
  ASSERT_GT(tensors.size(), 70u);
  for (size_t i = 1; i < tensors.size(); ++i) {
    EXPECT_GE(tensors[i - 1].expected_damage, tensors[i].expected_damage);
  }
  for (const auto& u : tensors) {
    EXPECT_EQ(u.unit.tensors.size(), 1u);
    EXPECT_EQ(u.types.at(u.unit.id), "q2_K");
    EXPECT_EQ(u.unit.id.find("norm"), std::string::npos) << "1-D tensors are not units";
  }
  const auto groups = plan_units(m, base, swappable, PlanLevel::kGroups, "q2_K", "ablate");
  const auto layers = plan_units(m, base, swappable, PlanLevel::kLayers, "q2_K", "ablate");
  size_t n_group_tensors = 0;
  for (const auto& g : groups) n_group_tensors += g.unit.tensors.size();
  EXPECT_EQ(n_group_tensors, tensors.size());
  EXPECT_LT(groups.size(), 12u);
  EXPECT_EQ(layers.size(), 12u + 2u);  // 12 blocks + token_embd + output
  // Promotion from Q4_K_M to q6_K skips tensors already at q6_K or above.
  const auto up = plan_units(m, base, swappable, PlanLevel::kTensors, "q6_K", "promote");
  for (const auto& u : up) EXPECT_NE(base.at(u.unit.id), "q6_K");
  EXPECT_LT(up.size(), tensors.size());
  const auto only_v = plan_units(m, base, swappable, PlanLevel::kTensors, "q2_K", "ablate",
                                 "attn_v");
  EXPECT_EQ(only_v.size(), 12u);
}

TEST(MeasurePlan, StoriesFallsBackOrSkips) {
  const ModelInfo m = inspect_model(test::model("stories260K.gguf"));
  const auto base = resolve_recipe(Recipe{.base = "Q4_K_M"}, m).types();
  std::vector<std::string> swappable;
  for (const auto& t : m.tensors) swappable.push_back(t.name);
  const auto units = plan_units(m, base, swappable, PlanLevel::kTensors, "q2_K", "ablate");
  ASSERT_FALSE(units.empty());
  for (const auto& u : units) {
    const std::string& ty = u.types.begin()->second;
    EXPECT_NE(ty, "q2_K") << u.unit.id << ": rows of 64/172 cannot take q2_K";
    EXPECT_NE(ty, base.at(u.unit.id));
  }
}

TEST(MeasurePlan, ParsesNames) {
  EXPECT_EQ(parse_plan_level("auto"), PlanLevel::kAuto);
  EXPECT_THROW(parse_plan_level("rows"), UsageError);
  EXPECT_EQ(parse_eval_mode("exact"), EvalMode::kExact);
  EXPECT_THROW(parse_eval_mode("fast"), UsageError);
}

}  // namespace
}  // namespace cb::measure

namespace cb::measure {
namespace {

TEST(SweepAround, TheLadderRungsAroundTheBasesMainType) {
  using V = std::vector<std::string>;
  const auto q4 = sweep_around("Q4_K_M");
  ASSERT_TRUE(q4);
  EXPECT_EQ(q4->targets, (V{"q2_K", "q3_K"}));  // the main job's sweep, as before
  EXPECT_EQ(q4->promote, (V{"q5_K", "q6_K", "q8_0"}));
  EXPECT_EQ(sweep_around("q5_k_m")->targets, (V{"q3_K", "q4_K"}));
  EXPECT_EQ(sweep_around("Q5_K_M")->promote, (V{"q6_K", "q8_0"}));
  EXPECT_EQ(sweep_around("Q2_K")->targets, V{});
  EXPECT_EQ(sweep_around("Q2_K")->promote, (V{"q3_K", "q4_K", "q5_K"}));
  EXPECT_EQ(sweep_around("Q8_0")->targets, (V{"q5_K", "q6_K"}));
  EXPECT_EQ(sweep_around("Q8_0")->promote, V{});
  EXPECT_EQ(sweep_around("Q4_K")->promote, q4->promote);  // an alias is its mix
  EXPECT_FALSE(sweep_around("IQ4_XS"));                  // not a k-quant mix
  EXPECT_FALSE(sweep_around("my-recipe.txt"));
}

TEST(MeasureOrder, HeavyUnitsAreSpreadAmongTheLightOnes) {
  // Four heavy units first (an 8B's ffn tensors beside its attention ones).
  const std::vector<int64_t> w = {10, 10, 10, 10, 1, 1, 1, 1, 1, 1, 1, 1};
  const std::vector<size_t> order = spread_heavy_units(w);
  ASSERT_EQ(order.size(), w.size());
  EXPECT_EQ(std::set<size_t>(order.begin(), order.end()).size(), w.size());  // a permutation
  EXPECT_EQ(order, (std::vector<size_t>{4, 5, 0, 6, 7, 1, 8, 9, 2, 10, 11, 3}));
  // Any prefix converts at most the mean pace plus one unit: nothing bunches.
  const double mean = 48.0 / 12;
  double sum = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    sum += static_cast<double>(w[order[k]]);
    EXPECT_LE(sum, (k + 1) * mean + 10) << k;
  }
  // Equal weights keep the plan's order; nothing in, nothing out.
  EXPECT_EQ(spread_heavy_units({3, 3, 3}), (std::vector<size_t>{0, 1, 2}));
  EXPECT_TRUE(spread_heavy_units({}).empty());
}

}  // namespace
}  // namespace cb::measure
