// Decode speed as a constraint (include/cerebellum/allocate/speed.h): the
// interpolation between uniform mixes, and the Lagrangian solve.
#include "cerebellum/allocate/speed.h"

#include <gtest/gtest.h>

#include "cerebellum/common/error.h"

namespace cb {
namespace {

// Two equal tensors; "iq4_xs" is smaller and less damaging than "q4_K" but slower.
AllocationProblem two_tensors() {
  AllocationProblem p;
  for (const char* n : {"a", "b"}) {
    TensorCurve c;
    c.name = n;
    c.n_elements = 1000;
    c.candidates = {{"iq4_xs", 100, 0.01, true}, {"q4_K", 110, 0.02, true}};
    p.tensors.push_back(c);
  }
  TensorCurve norm;  // not traded: no time of its own
  norm.name = "norm";
  norm.n_elements = 10;
  norm.candidates = {{"f32", 40, 0.0, true}};
  p.tensors.push_back(norm);
  return p;
}

SpeedTable table() {
  SpeedTable t;
  t.tg_tokens_per_s = {{"iq4_xs", 50.0}, {"q4_K", 100.0}};
  return t;
}

TEST(Speed, PlanSpeedInterpolatesBetweenUniformMixes) {
  const AllocationProblem p = two_tensors();
  EXPECT_DOUBLE_EQ(predicted_tokens_per_s(p, {0, 0, 0}, table()), 50.0);   // all iq4_xs: its uniform mix
  EXPECT_DOUBLE_EQ(predicted_tokens_per_s(p, {1, 1, 0}, table()), 100.0);
  EXPECT_NEAR(predicted_tokens_per_s(p, {0, 1, 0}, table()), 1.0 / (0.5 / 50 + 0.5 / 100), 1e-9);
  SpeedTable missing;
  missing.tg_tokens_per_s = {{"q4_K", 100.0}};
  EXPECT_THROW(predicted_tokens_per_s(p, {0, 0, 0}, missing), RecipeError);
}

TEST(Speed, FloorTradesDamageForSpeedAndBoundsTheGap) {
  const AllocationProblem p = two_tensors();
  const int64_t budget = 400;
  // Unconstrained: both iq4_xs (least damage), 50 tokens/s.
  const SpeedPlan free = allocate_plan_min_speed(p, budget, 0, table(), 40.0);
  EXPECT_DOUBLE_EQ(free.predicted_tokens_per_s, 50.0);
  EXPECT_EQ(free.plan.types().at("a"), "iq4_xs");
  // A 60 tokens/s floor needs one tensor at q4_K (66.7 tokens/s), not both.
  const SpeedPlan floor = allocate_plan_min_speed(p, budget, 0, table(), 60.0);
  EXPECT_GE(floor.predicted_tokens_per_s, 60.0);
  EXPECT_NEAR(floor.predicted_tokens_per_s, 1.0 / (0.5 / 50 + 0.5 / 100), 1e-9);
  EXPECT_NEAR(floor.plan.predicted_delta_kld, 0.03, 1e-12);
  EXPECT_DOUBLE_EQ(floor.unconstrained_tokens_per_s, 50.0);
  EXPECT_LE(floor.lower_bound_kld, floor.plan.predicted_delta_kld + 1e-12);
  // Faster than the fastest plan: a BudgetError naming its speed.
  try {
    allocate_plan_min_speed(p, budget, 0, table(), 150.0);
    FAIL() << "expected a BudgetError";
  } catch (const BudgetError& e) {
    EXPECT_NE(std::string(e.what()).find("100.0 tokens/s"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cb
