#include "allocate/shrink.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace cb::shrink {
namespace {

// Standard normal from mt19937's raw output (Box-Muller): the same numbers on
// every standard library, unlike std::normal_distribution.
struct Normal {
  std::mt19937_64 rng{20261129};
  double operator()() {
    const double u1 = (static_cast<double>(rng() >> 11) + 0.5) / 9007199254740992.0;
    const double u2 = (static_cast<double>(rng() >> 11) + 0.5) / 9007199254740992.0;
    return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  }
};

struct Synthetic {
  std::vector<Point> measured;
  std::vector<double> truth;
};

// Two roles; each tensor's true damage is slope·x·(1 + tau·ε) and it is
// measured with noise of se; many points sit inside one se of zero.
Synthetic synthetic(double tau, double se, int n_per_role) {
  Normal z;
  Synthetic s;
  const struct { const char* role; double slope; } roles[] = {{"attn_v", 2.0}, {"ffn_down", 0.5}};
  for (const auto& r : roles) {
    for (int i = 0; i < n_per_role; ++i) {
      const double x = (i % 2 ? 1e-3 : 4e-3) * (1 + 0.05 * (i % 7));  // two types, tensors differ a little
      const double truth = r.slope * x * (1 + tau * z());
      s.truth.push_back(truth);
      s.measured.push_back({r.role, x, truth + se * z(), se});
    }
  }
  return s;
}

double rmse(const std::vector<double>& a, const std::vector<double>& b) {
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) e += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(e / a.size());
}

TEST(Shrink, RecoversTheRolePriorFromNoisyPoints) {
  const Synthetic s = synthetic(0.3, 1e-3, 400);
  const auto priors = fit_priors(s.measured);
  ASSERT_EQ(priors.size(), 2u);
  EXPECT_NEAR(priors.at("attn_v").slope, 2.0, 0.1);
  EXPECT_NEAR(priors.at("ffn_down").slope, 0.5, 0.05);
  // 400 points per role: the moment estimate of a 0.3 spread lands within 0.1
  // (ffn_down's prior is 4x smaller than its noise there, hence the width).
  EXPECT_NEAR(priors.at("attn_v").tau_rel, 0.3, 0.1);
  EXPECT_FALSE(priors.at("attn_v").pooled);
}

TEST(Shrink, PosteriorBeatsRawAndClampedMeasurements) {
  const Synthetic s = synthetic(0.3, 2e-3, 200);
  const auto priors = fit_priors(s.measured);
  std::vector<double> raw, clamped, post;
  for (const Point& p : s.measured) {
    raw.push_back(p.delta);
    clamped.push_back(std::abs(p.delta) < p.se ? 0.0 : p.delta);
    post.push_back(posterior(priors.at(p.group), p).mean);
  }
  const double e_post = rmse(post, s.truth);
  EXPECT_LT(e_post, 0.8 * rmse(raw, s.truth));
  EXPECT_LT(e_post, 0.8 * rmse(clamped, s.truth));
}

TEST(Shrink, ExactMeasurementsAreKeptAndFewPointsBorrowThePool) {
  std::vector<Point> pts = {{"a", 1e-3, 2e-3, 0}, {"a", 2e-3, 4e-3, 0}, {"a", 3e-3, 5e-3, 0},
                            {"a", 4e-3, 9e-3, 0}, {"b", 1e-3, 7e-3, 0}};
  const auto priors = fit_priors(pts);
  EXPECT_TRUE(priors.at("b").pooled);
  EXPECT_FALSE(priors.at("a").pooled);
  for (const Point& p : pts) {
    const Posterior q = posterior(priors.at(p.group), p);
    EXPECT_DOUBLE_EQ(q.mean, p.delta);  // se 0: the measurement is the truth
    EXPECT_DOUBLE_EQ(q.weight_on_data, 1.0);
  }
  // A noisy point of a role whose tensors agree (tau 0) is the role's line.
  const GroupPrior line{.slope = 2.0, .tau_rel = 0.0, .n_points = 10};
  EXPECT_DOUBLE_EQ(posterior(line, {"a", 1e-3, -5e-3, 1e-2}).mean, 2e-3);
}

}  // namespace
}  // namespace cb::shrink
