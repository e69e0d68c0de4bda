// allocate: spend a byte budget where measured damage says it matters.
//
//   measurements (journal) + model tensors + constraints + objective
//     -> build_problem()   per-tensor damage curves over candidate types, exact sizes
//     -> allocate_plan()   exact multiple-choice knapsack (the optimum of the additive model)
//     -> greedy_original_plan()  the original project's greedy rule, as a baseline
//
// Everything here is a pure function of its inputs: no llama types, no I/O.
// Outputs plan.json (cerebellum.plan/1) and tensor_types.txt. See docs/allocate.md.
#pragma once

// One header per source file; this one gathers them.
#include "cerebellum/allocate/constraints.h"
#include "cerebellum/allocate/damage.h"
#include "cerebellum/allocate/plan.h"
#include "cerebellum/allocate/sizes.h"
#include "cerebellum/allocate/solver.h"
#include "cerebellum/allocate/transfer.h"
#include "cerebellum/common/schemas.h"
