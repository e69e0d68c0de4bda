// Metrics over per-token values (pure functions, no engine).
//  - PPL and its standard error exactly as llama-perplexity reports them;
//  - KLD distribution summaries (mean ± se, median, p90, p99, p99.9, max);
//  - paired deltas of two configurations on the same tokens, whose standard
//    error comes from per-token differences (much tighter than comparing two
//    independent means, since the token difficulty cancels).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace cb::eval {

struct MeanSe {
  double mean = 0;
  double se = 0;  // standard error of the mean (0 when n < 2)
  int64_t n = 0;
};

// Mean and standard error sqrt(var / (n - 1)) with var = E[x^2] - E[x]^2,
// the estimator llama-perplexity uses.
MeanSe mean_se(std::span<const float> x);
MeanSe mean_se(std::span<const double> x);

struct PplStats {
  double ppl = 0;
  double ppl_se = 0;       // ppl * se(nll), as llama-perplexity prints
  double ln_ppl = 0;       // mean NLL, nats
  double ln_ppl_se = 0;
  int64_t n_tokens = 0;
};
PplStats ppl_from_nll(std::span<const float> nll_nats);

struct KldStats {
  double mean_nats = 0;
  double se_nats = 0;
  double median_nats = 0;
  double p90_nats = 0;
  double p99_nats = 0;
  double p999_nats = 0;
  double max_nats = 0;
  int64_t n_tokens = 0;
};
KldStats kld_stats(std::span<const float> kld_nats);

// Quantile q in [0, 1] with linear interpolation between order statistics.
double quantile(std::vector<float> values, double q);

// Paired difference a_i - b_i over the same tokens (sizes must match;
// throws std::invalid_argument otherwise).
MeanSe paired_delta(std::span<const float> a, std::span<const float> b);

// Paired difference of ln PPL (= mean NLL difference) and of PPL itself
// (delta method: ppl_a - ppl_b with se ≈ ppl_b * se(Δnll)).
struct PairedPpl {
  MeanSe delta_ln_ppl;
  double delta_ppl = 0;
  double delta_ppl_se = 0;
};
PairedPpl paired_ppl(std::span<const float> nll_a, std::span<const float> nll_b);

// Top-1 agreement as a fraction with its binomial standard error.
MeanSe fraction(std::span<const uint8_t> hits);

// Δp: p(target | model) - p(target | reference), per token -> mean ± se and RMS.
struct DeltaP {
  MeanSe mean;
  double rms = 0;
};
DeltaP delta_p(std::span<const float> p_model, std::span<const float> p_ref);

}  // namespace cb::eval
