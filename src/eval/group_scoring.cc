#include "eval/group_scoring.h"

#include <cmath>

#include "common/parallel.h"
#include "eval/logits.h"

namespace cb::eval {

void GroupScoring::run() const {
  parallel_for(static_cast<int64_t>(rows.size()), n_threads, [&](int64_t jj) {
    const int j = static_cast<int>(jj), s = j / n_scored, i = j % n_scored;
    ChunkResult& r = results[s];
    const float* row = rows[j];
    const detail::RowStats st = detail::row_stats(row, n_vocab);
    if (!std::isfinite(st.log_sum_exp) || !std::isfinite(st.max_logit)) *non_finite_chunk = r.chunk;
    const float lp = st.log_prob(row[targets[static_cast<size_t>(s) * ctx + i]]);
    r.nll_nats[i] = -lp;
    r.p_target[i] = std::exp(lp);
    r.top1[i] = st.argmax;
    if (ref) {
      const int64_t t = ref->index(r.chunk, i);
      r.kld_nats[i] = static_cast<float>(detail::kld_top_k(
          row, st, ref->top_k(), ref->ids(t), ref->log_probs(t), ref->tail_log_mass(t)));
      r.top1_match[i] = ref->ids(t)[0] == st.argmax;
      r.p_ref[i] = std::exp(ref->target_log_prob(t));
      r.nll_ref_nats[i] = -ref->target_log_prob(t);
    }
    if (capture) {
      const int64_t t = capture->index(r.chunk, i);
      detail::top_k(row, n_vocab, st, capture->top_k(), capture->mutable_ids(t),
                    capture->mutable_log_probs(t), &capture->mutable_tail(t));
      capture->mutable_target(t) = lp;
    }
  });
}

}  // namespace cb::eval
