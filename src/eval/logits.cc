#include "eval/logits.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace cb::eval::detail {

RowStats row_stats(const float* logits, int n_vocab) {
  RowStats st;
  st.max_logit = logits[0];
  for (int i = 1; i < n_vocab; ++i) {
    if (logits[i] > st.max_logit) {
      st.max_logit = logits[i];
      st.argmax = i;
    }
  }
  // float exps summed in double: what llama-perplexity does.
  double sum = 0;
  for (int i = 0; i < n_vocab; ++i) sum += std::exp(logits[i] - st.max_logit);
  st.log_sum_exp = std::log(sum);
  return st;
}

void top_k(const float* logits, int n_vocab, const RowStats& st, int k, int32_t* ids,
           float* log_probs, float* tail_log_mass) {
  thread_local std::vector<int32_t> order;
  order.resize(n_vocab);
  std::iota(order.begin(), order.end(), 0);
  k = std::min(k, n_vocab);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  double mass = 0;
  for (int i = 0; i < k; ++i) {
    ids[i] = order[i];
    log_probs[i] = st.log_prob(logits[order[i]]);
    mass += std::exp(static_cast<double>(log_probs[i]));
  }
  // The tail is summed directly (not 1 - mass) so it keeps its precision.
  double tail = 0;
  for (int i = k; i < n_vocab; ++i) tail += std::exp(static_cast<double>(st.log_prob(logits[order[i]])));
  *tail_log_mass = tail > 0 ? static_cast<float>(std::log(tail))
                            : -std::numeric_limits<float>::infinity();
}

double kld_top_k(const float* logits, const RowStats& st, int k, const int32_t* ref_ids,
                 const float* ref_log_probs, float ref_tail_log_mass) {
  double kld = 0, q_mass = 0;
  for (int i = 0; i < k; ++i) {
    const double lp = ref_log_probs[i];
    const double lq = st.log_prob(logits[ref_ids[i]]);
    q_mass += std::exp(lq);
    kld += std::exp(lp) * (lp - lq);
  }
  if (std::isfinite(ref_tail_log_mass)) {
    // Q's tail mass; floor it so a reference tail never meets log(0).
    const double q_tail = std::max(1.0 - q_mass, 1e-30);
    kld += std::exp(static_cast<double>(ref_tail_log_mass)) * (ref_tail_log_mass - std::log(q_tail));
  }
  return std::max(kld, 0.0);
}

}  // namespace cb::eval::detail
