// Statistics for bench results: binomial confidence intervals and paired
// significance between two models answering the same questions.
#pragma once

#include <cstdint>

namespace cb::bench {

struct Interval {
  double lo = 0, hi = 0;
};

// Wilson score interval for k successes of n (z = 1.96 for 95%), the
// interval llama-perplexity prints for HellaSwag.
Interval wilson_interval(int64_t k, int64_t n, double z = 1.95996398454);

// Exact (binomial) two-sided McNemar test on the discordant pairs:
// b = questions only the model got right, c = only the baseline got right.
// Returns the p-value (1 when b + c == 0).
double mcnemar_exact_p(int64_t b, int64_t c);

}  // namespace cb::bench
