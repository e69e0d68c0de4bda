// Per-token math on one row of logits (internal to src/eval).
#pragma once

#include <cstdint>

namespace cb::eval::detail {

struct RowStats {
  float max_logit = 0;
  double log_sum_exp = 0;  // log Σ exp(logit - max_logit)
  int32_t argmax = 0;
  // log-softmax of logit v: v - max_logit - log_sum_exp
  float log_prob(float v) const { return static_cast<float>(v - max_logit - log_sum_exp); }
};

RowStats row_stats(const float* logits, int n_vocab);

// Top-K (ids, log-probs, sorted descending) of a row, plus log of the mass
// outside the top K (-inf when none is left).
void top_k(const float* logits, int n_vocab, const RowStats& st, int k, int32_t* ids,
           float* log_probs, float* tail_log_mass);

// KL(P_ref || Q) where P_ref is known only by its top K (ids, log-probs) and
// a tail bucket; Q's top-K entries come from the row, its tail is the rest.
// By the log-sum inequality this is a lower bound of the full-vocab KLD.
double kld_top_k(const float* logits, const RowStats& st, int k, const int32_t* ref_ids,
                 const float* ref_log_probs, float ref_tail_log_mass);

}  // namespace cb::eval::detail
