// The end-to-end correction of the additive damage model (issue 13, private to
// src/quantize): plans measured against the base on held-in chunks give the
// factors by which the model's promotion gains and demotion damages must be
// scaled to predict what was measured; the corrected problem is solved again.
// Pure functions; the measuring loop is in search.cc.
#pragma once

#include <string>
#include <vector>

#include "cerebellum/allocate/allocate.h"

namespace cb::correct {

// A plan's predicted ΔKLD vs the base, split by direction: tensors at a type
// larger than their base type (up: promotions) and the rest (down).
struct Split {
  double up = 0, down = 0;
};
Split split_damage(const AllocationProblem& p, const std::vector<int>& choice);

struct MeasuredPlan {
  Split predicted;
  double measured = 0, se = 0;  // ΔKLD vs the base on the held-in chunks, paired
};

struct Factors {
  double up = 1, down = 1;
  double predict(const Split& s) const { return up * s.up + down * s.down; }
};

// Least squares of measured ≈ up·U + down·D weighted by 1/se², with a prior
// N(1, prior_sd²) on each factor so one measured plan gives a definite answer;
// factors kept within [min_factor, max_factor].
Factors fit_factors(const std::vector<MeasuredPlan>& plans, double prior_sd = 1.0, double min_factor = 0.1,
                    double max_factor = 10.0);

// `p` with every candidate's damage scaled by its direction's factor.
AllocationProblem corrected(const AllocationProblem& p, const Factors& f);

}  // namespace cb::correct
