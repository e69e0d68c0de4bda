#include "cerebellum/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace cb::eval {
namespace {

template <typename T>
MeanSe mean_se_impl(std::span<const T> x) {
  MeanSe r;
  r.n = static_cast<int64_t>(x.size());
  if (x.empty()) return r;
  double sum = 0, sum2 = 0;
  for (T v : x) {
    sum += v;
    sum2 += static_cast<double>(v) * v;
  }
  r.mean = sum / r.n;
  const double var = sum2 / r.n - r.mean * r.mean;
  r.se = (r.n > 1 && var > 0) ? std::sqrt(var / (r.n - 1)) : 0.0;
  return r;
}

}  // namespace

MeanSe mean_se(std::span<const float> x) { return mean_se_impl(x); }
MeanSe mean_se(std::span<const double> x) { return mean_se_impl(x); }

PplStats ppl_from_nll(std::span<const float> nll_nats) {
  const MeanSe m = mean_se(nll_nats);
  PplStats s;
  s.n_tokens = m.n;
  s.ln_ppl = m.mean;
  s.ln_ppl_se = m.se;
  s.ppl = std::exp(m.mean);
  s.ppl_se = s.ppl * m.se;
  return s;
}

double quantile(std::vector<float> values, double q) {
  if (values.empty()) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const double pos = q * (values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  std::nth_element(values.begin(), values.begin() + lo, values.end());
  const double v_lo = values[lo];
  if (hi == lo) return v_lo;
  const double v_hi = *std::min_element(values.begin() + lo + 1, values.end());
  return v_lo + (pos - lo) * (v_hi - v_lo);
}

KldStats kld_stats(std::span<const float> kld_nats) {
  KldStats s;
  const MeanSe m = mean_se(kld_nats);
  s.n_tokens = m.n;
  s.mean_nats = m.mean;
  s.se_nats = m.se;
  if (kld_nats.empty()) return s;
  std::vector<float> v(kld_nats.begin(), kld_nats.end());
  s.median_nats = quantile(v, 0.5);
  s.p90_nats = quantile(v, 0.9);
  s.p99_nats = quantile(v, 0.99);
  s.p999_nats = quantile(v, 0.999);
  s.max_nats = *std::max_element(v.begin(), v.end());
  return s;
}

MeanSe paired_delta(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) throw std::invalid_argument("paired_delta: sizes differ");
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = static_cast<double>(a[i]) - b[i];
  return mean_se(std::span<const double>(d));
}

PairedPpl paired_ppl(std::span<const float> nll_a, std::span<const float> nll_b) {
  PairedPpl r;
  r.delta_ln_ppl = paired_delta(nll_a, nll_b);
  const double ppl_b = std::exp(mean_se(nll_b).mean);
  const double ppl_a = std::exp(mean_se(nll_a).mean);
  r.delta_ppl = ppl_a - ppl_b;
  r.delta_ppl_se = ppl_b * r.delta_ln_ppl.se;
  return r;
}

MeanSe fraction(std::span<const uint8_t> hits) {
  std::vector<double> v(hits.begin(), hits.end());
  return mean_se(std::span<const double>(v));
}

DeltaP delta_p(std::span<const float> p_model, std::span<const float> p_ref) {
  DeltaP r;
  r.mean = paired_delta(p_model, p_ref);
  double sum2 = 0;
  for (size_t i = 0; i < p_model.size(); ++i) {
    const double d = static_cast<double>(p_model[i]) - p_ref[i];
    sum2 += d * d;
  }
  r.rms = p_model.empty() ? 0 : std::sqrt(sum2 / p_model.size());
  return r;
}

}  // namespace cb::eval
