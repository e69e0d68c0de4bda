// Paired differences per block of a chunk, and a configuration's outcome
// against the baseline as journal fields (internal to src/measure).
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "cerebellum/eval/evaluator.h"
#include "cerebellum/measure/journal.h"
#include "cerebellum/measure/measure.h"

namespace cb::measure {

// Per-block mean paired differences a - b of one chunk (blocks of consecutive
// scored tokens; the last block takes the remainder), appended to `out`.
template <typename T>
void push_block_diffs(const std::vector<T>& a, const std::vector<T>& b, int n_blocks,
                      std::vector<double>* out) {
  const size_t n = a.size();
  n_blocks = std::max(1, std::min<int>(n_blocks, static_cast<int>(n)));
  const size_t per = n / n_blocks;
  for (int k = 0; k < n_blocks; ++k) {
    const size_t lo = k * per, hi = k + 1 == n_blocks ? n : lo + per;
    double s = 0;
    for (size_t i = lo; i < hi; ++i) s += static_cast<double>(a[i]) - static_cast<double>(b[i]);
    out->push_back(hi > lo ? s / static_cast<double>(hi - lo) : 0.0);
  }
}

// A configuration's outcome against the baseline.
struct Outcome {
  eval::TokenSeries series;
  std::vector<double> d_kld, d_nll, d_top1;  // per-block mean paired differences
  int n_chunks = 0;
  std::string stopped;
  double elapsed_s = 0, swap_s = 0;
};

inline JournalMetrics metrics_of(const eval::TokenSeries& s, int n_chunks) {
  const eval::EvalSummary sum = eval::summarize(s);
  JournalMetrics m;
  m.n_chunks = n_chunks;  // the series does not count chunks
  m.n_tokens = sum.n_tokens;
  m.kld_mean = sum.kld.mean_nats;
  m.kld_se = sum.kld.se_nats;
  m.ppl = sum.ppl.ppl;
  m.ppl_se = sum.ppl.ppl_se;
  m.top1 = sum.top1.mean;
  m.top1_se = sum.top1.se;
  return m;
}

template <typename R>
void fill_deltas(const Outcome& out, R* r) {
  const ChunkStats k = chunk_stats(out.d_kld), l = chunk_stats(out.d_nll),
                   t = chunk_stats(out.d_top1);
  r->metrics = metrics_of(out.series, out.n_chunks);
  r->delta_kld = k.mean, r->delta_kld_se = k.se;
  r->delta_ln_ppl = l.mean, r->delta_ln_ppl_se = l.se;
  r->delta_top1 = t.mean, r->delta_top1_se = t.se;
  r->elapsed_s = out.elapsed_s;
  if constexpr (requires { r->swap_s; }) r->swap_s = out.swap_s;
}

}  // namespace cb::measure
