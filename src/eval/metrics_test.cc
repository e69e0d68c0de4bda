#include "cerebellum/eval/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace cb::eval {
namespace {

TEST(EvalMetrics, MeanSeMatchesTextbook) {
  const std::vector<float> x = {1, 2, 3, 4, 5};
  const MeanSe m = mean_se(std::span<const float>(x));
  EXPECT_DOUBLE_EQ(m.mean, 3.0);
  // population var 2, se = sqrt(2 / 4)
  EXPECT_NEAR(m.se, std::sqrt(0.5), 1e-12);
  EXPECT_EQ(m.n, 5);
  EXPECT_EQ(mean_se(std::span<const float>()).n, 0);
}

TEST(EvalMetrics, PplIsExpOfMeanNllWithPerplexitySe) {
  const std::vector<float> nll = {2.0f, 3.0f, 4.0f};
  const PplStats s = ppl_from_nll(nll);
  EXPECT_NEAR(s.ppl, std::exp(3.0), 1e-9);
  const double se = std::sqrt((29.0 / 3 - 9.0) / 2);
  EXPECT_NEAR(s.ppl_se, std::exp(3.0) * se, 1e-6);
}

TEST(EvalMetrics, QuantilesInterpolate) {
  std::vector<float> v;
  for (int i = 0; i <= 100; ++i) v.push_back(static_cast<float>(100 - i));
  EXPECT_NEAR(quantile(v, 0.5), 50.0, 1e-9);
  EXPECT_NEAR(quantile(v, 0.9), 90.0, 1e-9);
  EXPECT_NEAR(quantile(v, 0.999), 99.9, 1e-4);
  EXPECT_NEAR(quantile({1.0f, 2.0f}, 0.25), 1.25, 1e-9);
  const KldStats k = kld_stats(v);
  EXPECT_NEAR(k.p99_nats, 99.0, 1e-6);
  EXPECT_EQ(k.max_nats, 100.0);
}

TEST(EvalMetrics, PairedDeltaIsTighterThanUnpaired) {
  // Shared per-token difficulty cancels in the paired difference.
  std::mt19937 rng(1);
  std::normal_distribution<float> difficulty(3.0f, 1.0f), noise(0.0f, 0.01f);
  std::vector<float> a, b;
  for (int i = 0; i < 2000; ++i) {
    const float d = difficulty(rng);
    b.push_back(d);
    a.push_back(d + 0.02f + noise(rng));
  }
  const MeanSe paired = paired_delta(a, b);
  EXPECT_NEAR(paired.mean, 0.02, 0.002);
  const double unpaired_se = std::hypot(mean_se(std::span<const float>(a)).se,
                                        mean_se(std::span<const float>(b)).se);
  EXPECT_LT(paired.se * 20, unpaired_se);
  EXPECT_THROW(paired_delta(a, std::span<const float>(b).first(10)), std::invalid_argument);
  const PairedPpl pp = paired_ppl(a, b);
  EXPECT_NEAR(pp.delta_ln_ppl.mean, paired.mean, 1e-12);
  EXPECT_GT(pp.delta_ppl, 0);
}

TEST(EvalMetrics, FractionAndDeltaP) {
  const std::vector<uint8_t> hits = {1, 1, 1, 0};
  const MeanSe f = fraction(hits);
  EXPECT_DOUBLE_EQ(f.mean, 0.75);
  EXPECT_NEAR(f.se, std::sqrt(0.1875 / 3), 1e-12);
  const std::vector<float> p = {0.5f, 0.2f}, q = {0.4f, 0.4f};
  const DeltaP dp = delta_p(p, q);
  EXPECT_NEAR(dp.mean.mean, -0.05, 1e-6);
  EXPECT_NEAR(dp.rms, std::sqrt((0.01 + 0.04) / 2), 1e-6);
}

}  // namespace
}  // namespace cb::eval
