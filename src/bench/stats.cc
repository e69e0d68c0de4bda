#include "cerebellum/bench/stats.h"

#include <algorithm>
#include <cmath>

namespace cb::bench {

Interval wilson_interval(int64_t k, int64_t n, double z) {
  if (n <= 0) return {0, 1};
  const double p = static_cast<double>(k) / n, z2 = z * z / n;
  const double centre = (p + z2 / 2) / (1 + z2);
  const double half = z * std::sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)) / (1 + z2);
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

double mcnemar_exact_p(int64_t b, int64_t c) {
  const int64_t n = b + c;
  if (n == 0) return 1.0;
  const int64_t k = std::min(b, c);
  // P(X <= k) for X ~ Binomial(n, 1/2), summed in log space (n can be 10^4).
  double tail = 0;
  const double log_half_n = n * std::log(0.5);
  for (int64_t i = 0; i <= k; ++i) {
    const double log_pmf = std::lgamma(n + 1.0) - std::lgamma(i + 1.0) - std::lgamma(n - i + 1.0) + log_half_n;
    tail += std::exp(log_pmf);
  }
  return std::min(1.0, 2 * tail);
}

}  // namespace cb::bench
