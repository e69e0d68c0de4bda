#include "cerebellum/allocate/marginal.h"

#include <gtest/gtest.h>

namespace cb {
namespace {

// One tensor: base q4_K (200 bytes, no damage) or q2_K (100 bytes) at a
// measured damage with its standard error.
TensorCurve tensor(const std::string& name, double q2_damage, double q2_se) {
  TensorCurve t;
  t.name = name;
  t.base_type = "q4_K";
  t.candidates = {{"q2_K", 100, q2_damage, q2_se, true}, {"q4_K", 200, 0.0, 0.0, false}};
  return t;
}

// Three tensors, room for two at q4_K: the plan takes down the one whose
// q2_K damage is least (c, 0.45), next to b (0.50) and a (1.0).
AllocationProblem three(double b_se) {
  AllocationProblem p;
  p.tensors = {tensor("a", 1.0, 0.01), tensor("b", 0.50, b_se), tensor("c", 0.45, 0.001)};
  return p;
}

TEST(Marginal, AChoiceWithinItsNoiseOfTheBudgetsPriceIsMarginal) {
  const AllocationProblem p = three(0.3);
  const Plan plan = allocate_plan(p, 500, 0);
  ASSERT_EQ(plan.types().at("c"), "q2_K");
  ASSERT_EQ(plan.types().at("b"), "q4_K");
  const MarginalReport r = marginal_tensors(p, plan, 1.0);
  // The price sits between c's break-even (0.0045 nats/byte) and b's (0.005).
  EXPECT_GT(r.price_kld_per_byte, 0.0045);
  EXPECT_LT(r.price_kld_per_byte, 0.005);
  // b's 0.50 ± 0.3 could be below c's 0.45: b is marginal. c is measured to
  // ±0.001 and a's 1.0 ± 0.01 is far from the price: neither is.
  ASSERT_EQ(r.tensors.size(), 1u);
  EXPECT_EQ(r.tensors[0].tensor, "b");
  EXPECT_EQ(r.tensors[0].chosen, "q4_K");
  EXPECT_EQ(r.tensors[0].rival, "q2_K");
  EXPECT_NEAR(r.tensors[0].se_kld, 0.3, 1e-12);
  EXPECT_GT(r.tensors[0].gap_kld, 0.0);
}

TEST(Marginal, MeasuredWellEnoughNothingIsMarginal) {
  const AllocationProblem p = three(0.001);
  const Plan plan = allocate_plan(p, 500, 0);
  EXPECT_TRUE(marginal_tensors(p, plan, 1.0).tensors.empty());
  // b and c are each 0.025 nats from the price (midway between their
  // break-evens), 25 se: inside a band of 30 se, outside one of 20.
  EXPECT_TRUE(marginal_tensors(p, plan, 20.0).tensors.empty());
  EXPECT_EQ(marginal_tensors(p, plan, 30.0).tensors.size(), 2u);
}

TEST(Marginal, NoBudgetPressureMeansDamageAloneDecides) {
  const AllocationProblem p = three(0.3);
  const Plan plan = allocate_plan(p, 600, 0);  // everything fits at q4_K
  const MarginalReport r = marginal_tensors(p, plan, 1.0);
  EXPECT_EQ(r.price_kld_per_byte, 0.0);
  EXPECT_TRUE(r.tensors.empty());  // every q2_K costs more than 1 se
}

}  // namespace
}  // namespace cb
