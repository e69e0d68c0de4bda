// The correction of the additive model (issue 13): factors fitted to measured
// plans, applied per direction.
#include "quantize/correct.h"

#include <gtest/gtest.h>

namespace cb::correct {
namespace {

TEST(Correct, FactorsAreRecoveredFromPlansThatSeparateTheDirections) {
  // Truth: promotions gain 0.5x what the model says, demotions cost 2x.
  const Factors truth{0.5, 2.0};
  std::vector<MeasuredPlan> plans;
  for (const Split s : {Split{-0.004, 0.001}, Split{-0.002, 0.003}, Split{-0.006, 0.0005}}) {
    plans.push_back({s, truth.predict(s), 1e-5});
  }
  const Factors f = fit_factors(plans);
  EXPECT_NEAR(f.up, 0.5, 0.01);
  EXPECT_NEAR(f.down, 2.0, 0.01);
}

TEST(Correct, OnePlanIsFittedAndTheFactorsStayInTheirRange) {
  const MeasuredPlan one{{-0.004, 0.001}, -0.0015, 1e-4};
  const Factors f = fit_factors({one});
  EXPECT_NEAR(f.predict(one.predicted), one.measured, 2 * one.se);  // the measured plan is now predicted
  const Factors wild = fit_factors({{{-0.004, 0.0}, +0.05, 1e-6}});  // gains measured as a large loss
  EXPECT_DOUBLE_EQ(wild.up, 0.1);
  EXPECT_TRUE(fit_factors({}).up == 1 && fit_factors({}).down == 1);  // nothing measured: the model as is
}

TEST(Correct, CorrectedScalesEachCandidateByItsDirection) {
  AllocationProblem p;
  TensorCurve t;
  t.name = "blk.0.ffn_down.weight";
  t.base_type = "q4_K";
  t.candidates = {{"q3_K", 100, 0.002, true}, {"q4_K", 140, 0.0, false}, {"q6_K", 200, -0.001, true}};
  p.tensors.push_back(t);
  const AllocationProblem q = corrected(p, {0.5, 3.0});
  EXPECT_DOUBLE_EQ(q.tensors[0].candidates[0].damage_kld, 0.006);   // demotion x 3
  EXPECT_DOUBLE_EQ(q.tensors[0].candidates[1].damage_kld, 0.0);
  EXPECT_DOUBLE_EQ(q.tensors[0].candidates[2].damage_kld, -0.0005); // promotion x 0.5
  const Split s = split_damage(p, {2});
  EXPECT_DOUBLE_EQ(s.up, -0.001);
  EXPECT_DOUBLE_EQ(s.down, 0.0);
}

}  // namespace
}  // namespace cb::correct
