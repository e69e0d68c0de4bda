#include "eval/logits.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace cb::eval::detail {

namespace {

constexpr int kLanes = 16;   // partial sums: one AVX-512 register of floats
constexpr int kBlock = 1024; // exps computed per block, then summed

// exp(x) for x <= 0 in float, in a form the compiler vectorizes (no libm
// call): Cody-Waite reduction by ln 2 and Cephes' degree-6 polynomial, within
// 2 ulp of expf for normal results. Below -87.3 (where expf goes subnormal)
// it gives 0; NaN stays NaN, so a non-finite row is still seen.
inline float exp_nonpositive(float x) {
  const float xc = x < -87.3f ? -87.3f : x;  // NaN stays NaN here, and so does the result
  const float xn = xc != xc ? -87.3f : xc;  // NaN made finite: the integer conversion stays defined
  const int32_t n = static_cast<int32_t>(xn * 1.44269504088896341f - 0.5f);  // round to nearest (xn <= 0)
  const float nf = static_cast<float>(n);
  float r = xc - nf * 0.693359375f;
  r = r - nf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float scale = std::bit_cast<float>((n + 127) << 23);
  return p * scale * static_cast<float>(x >= -87.3f);  // a mask, not a branch: vectorizes
}

constexpr int kMaxVocabBlocks = 512;  // block maxima kept on the stack (vocab 512k)

// The largest of n values (n <= kBlock), kLanes at a time; NaN never is.
inline float block_max_of(const float* x, int n) {
  float lane_max[kLanes];
  for (int l = 0; l < kLanes; ++l) lane_max[l] = x[0];
  const int n_main = n - n % kLanes;
  for (int i = 0; i < n_main; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) lane_max[l] = x[i + l] > lane_max[l] ? x[i + l] : lane_max[l];
  }
  float m = x[0];
  for (int l = 0; l < kLanes; ++l) m = lane_max[l] > m ? lane_max[l] : m;
  for (int i = n_main; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

}  // namespace

// Cloned per instruction set (picked at load time), and this file is built
// with -fno-trapping-math so the compiler may vectorize its comparisons: the
// two passes over a 128k-vocab row are most of the CPU's share of a GPU
// sweep's evaluation (about 0.5 ms a row in scalar code).
__attribute__((target_clones("avx512f", "avx2", "default")))
RowStats row_stats(const float* logits, int n_vocab) {
  RowStats st;
  // The largest value per block (a plain max: it vectorizes, where tracking
  // the index beside it took as long as the exps), then its first index,
  // looked for only in the first block that holds it (strict >, as one scan).
  // NaN is never larger: a NaN row shows in the sum below.
  float block_max[kMaxVocabBlocks];
  const int n_blocks = (n_vocab + kBlock - 1) / kBlock;
  float* maxima = n_blocks <= kMaxVocabBlocks ? block_max : nullptr;
  std::vector<float> many;
  if (!maxima) many.resize(n_blocks), maxima = many.data();
  for (int b = 0; b < n_blocks; ++b) {
    maxima[b] = block_max_of(logits + b * kBlock, std::min(kBlock, n_vocab - b * kBlock));
  }
  int first_block = 0;
  for (int b = 1; b < n_blocks; ++b) {
    if (maxima[b] > maxima[first_block]) first_block = b;
  }
  st.max_logit = maxima[first_block];
  st.argmax = first_block * kBlock;
  for (int i = first_block * kBlock, end = std::min(n_vocab, i + kBlock); i < end; ++i) {
    if (logits[i] > logits[st.argmax]) st.argmax = i;
  }
  const float max_logit = st.max_logit;
  // Float exps summed in double (as llama-perplexity), in kLanes partial sums.
  float exps[kBlock];
  double lane_sum[kLanes] = {};
  for (int start = 0; start < n_vocab; start += kBlock) {
    const int len = std::min(kBlock, n_vocab - start);
    for (int i = 0; i < len; ++i) exps[i] = exp_nonpositive(logits[start + i] - max_logit);
    for (int i = len; i < kBlock; ++i) exps[i] = 0;
    for (int i = 0; i < kBlock; i += kLanes) {
      for (int l = 0; l < kLanes; ++l) lane_sum[l] += exps[i + l];
    }
  }
  double sum = 0;
  for (int l = 0; l < kLanes; ++l) sum += lane_sum[l];
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
