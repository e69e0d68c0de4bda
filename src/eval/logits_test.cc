#include "eval/logits.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace cb::eval::detail {
namespace {

// What row_stats replaced, and what llama-perplexity's log_softmax does:
// one scan for the first maximum, expf terms summed in double.
RowStats scalar_row_stats(const std::vector<float>& x) {
  RowStats st;
  st.max_logit = x[0];
  for (size_t i = 1; i < x.size(); ++i) {
    if (x[i] > st.max_logit) st.max_logit = x[i], st.argmax = static_cast<int32_t>(i);
  }
  double sum = 0;
  for (float v : x) sum += std::exp(v - st.max_logit);
  st.log_sum_exp = std::log(sum);
  return st;
}

TEST(EvalLogits, RowStatsAgreesWithTheScalarLogSoftmax) {
  std::mt19937 rng(7);
  // Sizes off the vector width, a 128k vocab, and rows spread wide enough
  // that some terms fall below expf's normal range (-87.3).
  for (const int n_vocab : {1, 15, 17, 1000, 32000, 128256}) {
    for (const float spread : {0.5f, 4.0f, 40.0f}) {
      std::normal_distribution<float> d(0, spread);
      std::vector<float> x(n_vocab);
      for (float& v : x) v = d(rng);
      const RowStats want = scalar_row_stats(x), got = row_stats(x.data(), n_vocab);
      EXPECT_EQ(got.argmax, want.argmax) << n_vocab;
      EXPECT_EQ(got.max_logit, want.max_logit);
      // Each term is within 2 ulp (2.4e-7 relative) of expf's, so the log of
      // their sum is within 2.4e-7 of llama-perplexity's; 1e-6 leaves room.
      EXPECT_NEAR(got.log_sum_exp, want.log_sum_exp, 1e-6) << n_vocab << " spread " << spread;
    }
  }
}

TEST(EvalLogits, RowStatsKeepsTheFirstMaximumAndSeesNonFiniteRows) {
  std::vector<float> x(100, 0.0f);
  x[37] = 3.0f, x[70] = 3.0f, x[99] = 3.0f;  // ties in different lanes: the first wins
  EXPECT_EQ(row_stats(x.data(), 100).argmax, 37);
  // Across blocks of 1024 (the max is found per block): the first block that
  // holds the maximum, its first index; a maximum in the last, partial block;
  // a vocab past the block maxima kept on the stack (512 blocks).
  for (const int n_vocab : {5000, 600000}) {
    std::vector<float> y(n_vocab, 0.0f);
    y[3000] = 2.0f, y[1500] = 2.0f, y[n_vocab - 1] = 2.0f;
    EXPECT_EQ(row_stats(y.data(), n_vocab).argmax, 1500) << n_vocab;
    y[n_vocab - 1] = 2.5f;
    EXPECT_EQ(row_stats(y.data(), n_vocab).argmax, n_vocab - 1) << n_vocab;
    EXPECT_EQ(row_stats(y.data(), n_vocab).max_logit, 2.5f);
    y[1024] = std::numeric_limits<float>::quiet_NaN();  // at a block's start
    EXPECT_FALSE(std::isfinite(row_stats(y.data(), n_vocab).log_sum_exp)) << n_vocab;
  }
  x.assign(100, -std::numeric_limits<float>::infinity());  // masked tokens: exp 0
  x[5] = 1.0f;
  const RowStats masked = row_stats(x.data(), 100);
  EXPECT_EQ(masked.argmax, 5);
  EXPECT_DOUBLE_EQ(masked.log_sum_exp, 0.0);
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    for (const int at : {0, 42}) {
      x.assign(100, 0.5f);
      x[at] = bad;
      const RowStats st = row_stats(x.data(), 100);
      EXPECT_FALSE(std::isfinite(st.log_sum_exp) && std::isfinite(st.max_logit)) << bad << " at " << at;
    }
  }
}

}  // namespace
}  // namespace cb::eval::detail
