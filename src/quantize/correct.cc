#include "quantize/correct.h"

#include <algorithm>
#include <cmath>

namespace cb::correct {
namespace {

int64_t base_size(const TensorCurve& t) {
  for (const auto& c : t.candidates) {
    if (c.type == t.base_type) return c.size_bytes;
  }
  return -1;  // constraints excluded the base: every candidate counts as down
}

bool is_up(const TensorCurve& t, const CandidateType& c) {
  const int64_t b = base_size(t);
  return b >= 0 && c.size_bytes > b;
}

}  // namespace

Split split_damage(const AllocationProblem& p, const std::vector<int>& choice) {
  Split s;
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const TensorCurve& t = p.tensors[i];
    const CandidateType& c = t.candidates[choice[i]];
    (is_up(t, c) ? s.up : s.down) += c.damage_kld;
  }
  return s;
}

Factors fit_factors(const std::vector<MeasuredPlan>& plans, double prior_sd, double min_factor, double max_factor) {
  // Normal equations of Σ w (a·U + b·D − m)² + ((a − 1)² + (b − 1)²) / prior_sd².
  const double lambda = 1.0 / (prior_sd * prior_sd);
  double suu = lambda, sud = 0, sdd = lambda, sum = lambda, sdm = lambda;
  for (const MeasuredPlan& m : plans) {
    // A measured se of 0 (a single chunk) must not make one plan infinitely sure.
    const double se = std::max(m.se, 1e-3 * std::abs(m.measured) + 1e-12);
    const double w = 1.0 / (se * se);
    suu += w * m.predicted.up * m.predicted.up;
    sud += w * m.predicted.up * m.predicted.down;
    sdd += w * m.predicted.down * m.predicted.down;
    sum += w * m.predicted.up * m.measured;
    sdm += w * m.predicted.down * m.measured;
  }
  const double det = suu * sdd - sud * sud;
  Factors f;
  if (det > 0) {
    f.up = (sum * sdd - sdm * sud) / det;
    f.down = (sdm * suu - sum * sud) / det;
  }
  f.up = std::clamp(f.up, min_factor, max_factor);
  f.down = std::clamp(f.down, min_factor, max_factor);
  return f;
}

AllocationProblem corrected(const AllocationProblem& p, const Factors& f) {
  AllocationProblem q = p;
  for (TensorCurve& t : q.tensors) {
    for (CandidateType& c : t.candidates) c.damage_kld *= is_up(t, c) ? f.up : f.down;
  }
  return q;
}

}  // namespace cb::correct
