// Which choices of a plan its measurements' noise could flip (issue 13,
// "precision where decisions are made"): the units worth more chunks.
//
// At the budget's marginal price λ of a byte (the knapsack's Lagrange
// multiplier: the middle of the prices at which the Lagrangian makes this
// plan's choices, from mckp_dual's up to the next at which a tensor moves), tensor i's chosen type c and any other candidate o
// differ in damage + λ·bytes by a gap g_o. The choice is marginal when, for
// some o, g_o < z·σ_o with σ_o = (se_c² + se_o²)^½, the candidates'
// standard errors (CandidateType::damage_se_kld). A gap can be negative: the
// exact knapsack need not take the Lagrangian's choice for every tensor.
// Pure function of the problem and the plan.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cerebellum/allocate/damage.h"
#include "cerebellum/allocate/plan.h"

namespace cb {

struct MarginalTensor {
  std::string tensor, chosen, rival;  // the plan's type, the alternative closest to it
  double gap_kld = 0;                 // (d + λ·bytes) of rival − of chosen, nats
  double se_kld = 0;                  // their combined standard error
};

struct MarginalReport {
  double price_kld_per_byte = 0;        // λ at the plan's capacity
  std::vector<MarginalTensor> tensors;  // gap/se ascending (most marginal first)
};

// `plan` must be a plan of `problem` (choice_of); z > 0.
MarginalReport marginal_tensors(const AllocationProblem& problem, const Plan& plan, double z);

nlohmann::json to_json(const MarginalReport& r);

}  // namespace cb
