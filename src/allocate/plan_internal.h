// Internal to src/allocate: one place that turns a per-tensor candidate
// choice into a priced, scored Plan (used by the knapsack and the greedy).
#pragma once

#include <cstdint>
#include <vector>

#include "cerebellum/allocate/allocate.h"

namespace cb {

Plan plan_from_choice(const AllocationProblem& p, const std::vector<int>& choice,
                      int64_t fixed_overhead_bytes);

}  // namespace cb
