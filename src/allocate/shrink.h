// Empirical-Bayes shrinkage of measured damages towards the quantization-error
// model (issue 13): a measured Δ with standard error se, and the model's
// prediction slope·Δx of the tensor's role, are combined by their
// uncertainties instead of clamping |Δ| < z·se to 0.
//
// The prior of a point is N(slope_g·x, (tau_g·slope_g·x)²): the role's slope,
// and a relative spread between tensors of the role (tau, estimated from the
// data by moments: E[(Δ − slope·x)²] = se² + tau²·(slope·x)²). The posterior
// mean puts weight v/(v + se²) on the measurement, v the prior variance.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace cb::shrink {

struct Point {
  std::string group;  // the tensor's role
  double x = 0;       // Δ relative quantization MSE vs the base type
  double delta = 0;   // measured ΔKLD, nats
  double se = 0;      // its standard error
};

struct GroupPrior {
  double slope = 0;        // nats per unit of Δx, least squares through the origin
  double tau_rel = 0;      // between-tensor spread, relative to slope·x
  int n_points = 0;        // the group's own points
  bool pooled = false;     // too few points of its own: the pooled fit of all groups
};

// Groups with fewer than min_points points borrow the fit over all points.
std::map<std::string, GroupPrior> fit_priors(const std::vector<Point>& points, int min_points = 4);

struct Posterior {
  double mean = 0;            // nats
  double weight_on_data = 1;  // v / (v + se²); 1 when se is 0
};

Posterior posterior(const GroupPrior& prior, const Point& p);

}  // namespace cb::shrink
