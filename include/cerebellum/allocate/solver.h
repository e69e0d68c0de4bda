// Exact multiple-choice knapsack: pick one option per item, total bytes within a
// capacity, minimum total cost. Pure function, no I/O. See docs/allocate.md.
#pragma once

#include <cstdint>
#include <vector>

namespace cb {

struct KnapsackOption {
  int64_t size_bytes = 0;
  double cost = 0;  // predicted damage (ΔKLD, nats); may be negative
};

struct KnapsackItem {
  std::vector<KnapsackOption> options;  // at least one
};

struct SolverOptions {
  // Sizes are divided by this before the DP. When every size and the capacity
  // margin are multiples of it (padded GGUF tensors are multiples of the
  // alignment) the DP is exact. 32 = the usual GGUF alignment.
  int64_t granularity_bytes = 32;
  // Upper bound on DP cells (items x capacity units). Above it the granularity is
  // coarsened (sizes rounded up, so the answer stays feasible) and the result is
  // marked inexact (a swap fix-up then spends the rounding slack), with a
  // Lagrangian lower bound to say how far it can be off.
  int64_t max_cells = int64_t{64} << 20;  // 2 bytes each: 128 MiB
};

struct KnapsackResult {
  std::vector<int> choice;  // option index per item
  int64_t size_bytes = 0;
  double cost = 0;
  bool exact = true;              // optimum of the model (granularity did not coarsen)
  int64_t granularity_bytes = 0;  // the granularity actually used
  double lower_bound = 0;         // Lagrangian dual bound on the optimal cost
};

// Minimum-cost choice with Σ size ≤ capacity_bytes. Ties: the smaller total size,
// then the lower option index (callers order options by size), so the answer
// is deterministic. Throws BudgetError naming the smallest feasible size when even
// the smallest option of every item does not fit.
KnapsackResult solve_mckp(const std::vector<KnapsackItem>& items, int64_t capacity_bytes,
                          const SolverOptions& options = {});

// The Lagrangian dual bound max_λ≥0 Σ min_o (cost + λ·size) − λ·capacity: no choice
// within the capacity costs less. Used to report the optimality gap.
double mckp_lower_bound(const std::vector<KnapsackItem>& items, int64_t capacity_bytes);

// That bound and the price λ (cost per byte) where it is reached: the
// marginal price of a byte at this capacity (0 when everything's cheapest
// choice fits).
struct LagrangeDual {
  double price = 0;  // nats per byte
  double bound = 0;
};
LagrangeDual mckp_dual(const std::vector<KnapsackItem>& items, int64_t capacity_bytes);

}  // namespace cb
