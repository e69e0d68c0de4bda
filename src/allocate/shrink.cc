#include "allocate/shrink.h"

#include <cmath>

namespace cb::shrink {
namespace {

// Slope through the origin and the moment estimate of tau over `pts`.
GroupPrior fit(const std::vector<const Point*>& pts) {
  GroupPrior g;
  g.n_points = static_cast<int>(pts.size());
  double sxx = 0, sxd = 0;
  for (const Point* p : pts) sxx += p->x * p->x, sxd += p->x * p->delta;
  if (!(sxx > 0)) return g;
  // Never a negative slope: fewer bits do not help on average (fit_scale's rule).
  g.slope = std::max(0.0, sxd / sxx);
  double excess = 0, prior2 = 0;
  for (const Point* p : pts) {
    const double mu = g.slope * p->x, r = p->delta - mu;
    excess += r * r - p->se * p->se;
    prior2 += mu * mu;
  }
  g.tau_rel = prior2 > 0 && excess > 0 ? std::sqrt(excess / prior2) : 0.0;
  return g;
}

}  // namespace

std::map<std::string, GroupPrior> fit_priors(const std::vector<Point>& points, int min_points) {
  std::map<std::string, std::vector<const Point*>> by_group;
  std::vector<const Point*> all;
  for (const Point& p : points) by_group[p.group].push_back(&p), all.push_back(&p);
  const GroupPrior pooled = fit(all);
  std::map<std::string, GroupPrior> out;
  for (const auto& [group, pts] : by_group) {
    GroupPrior g = static_cast<int>(pts.size()) >= min_points ? fit(pts) : pooled;
    if (static_cast<int>(pts.size()) < min_points || !(g.slope > 0)) g = pooled, g.pooled = true;
    g.n_points = static_cast<int>(pts.size());
    out[group] = g;
  }
  return out;
}

Posterior posterior(const GroupPrior& prior, const Point& p) {
  const double mu = prior.slope * p.x;
  const double v = prior.tau_rel * prior.tau_rel * mu * mu, s2 = p.se * p.se;
  if (!(v + s2 > 0)) return {p.delta, 1.0};  // an exact measurement, or no spread and no noise
  const double w = v / (v + s2);
  return {w * p.delta + (1 - w) * mu, w};
}

}  // namespace cb::shrink
