// The card's engine side: speed (llama-bench style pp / tg).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include <fmt/format.h>

#include "cerebellum/card/machine.h"
#include "cerebellum/common/error.h"
#include "cerebellum/inspect/inspect.h"
#include "common/parallel.h"
#include "engine/engine.h"
#include "engine/llama_model.h"
#include "llama.h"

namespace cb::card {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Synthetic tokens as llama-bench uses: content does not change the cost.
engine::Token synthetic_token(const engine::LlamaModel& m, int i) {
  const int32_t n_vocab = std::max(1, m.n_vocab());
  return static_cast<engine::Token>((1000003LL * (i + 1)) % n_vocab);
}

double time_pp(engine::LlamaContext& ctx, engine::TokenBatch& batch, int n_tokens) {
  ctx.clear();
  batch.clear();
  for (int i = 0; i < n_tokens; ++i) {
    batch.add(synthetic_token(ctx.model(), i), i, 0, i == n_tokens - 1);
  }
  const auto t0 = Clock::now();
  ctx.decode(batch);
  ctx.synchronize();
  return seconds_since(t0);
}

double time_tg(engine::LlamaContext& ctx, engine::TokenBatch& batch, int n_tokens) {
  ctx.clear();
  const auto t0 = Clock::now();
  for (int i = 0; i < n_tokens; ++i) {
    batch.clear();
    batch.add(synthetic_token(ctx.model(), i), i, 0, true);
    ctx.decode(batch);
  }
  ctx.synchronize();
  return seconds_since(t0);
}

void mean_sd(const std::vector<double>& xs, double& mean, double& sd) {
  mean = 0;
  for (double x : xs) mean += x;
  mean /= xs.empty() ? 1 : xs.size();
  double ss = 0;
  for (double x : xs) ss += (x - mean) * (x - mean);
  sd = xs.size() > 1 ? std::sqrt(ss / (xs.size() - 1)) : 0;
}

}  // namespace

SpeedResult measure_speed(const std::string& model_path, const SpeedOptions& o,
                          const Logger& logger) {
  if (o.pp_tokens < 1 || o.tg_tokens < 1 || o.repetitions < 1) {
    throw UsageError("speed: pp, tg and repetitions must be at least 1");
  }
  const int threads = thread_count(o.n_threads);
  engine::ModelLoadOptions load;
  load.n_threads = threads;
  load.logger = logger;
  auto model = engine::LlamaModel::load(model_path, load);
  const int n_ctx = std::max(o.pp_tokens, o.tg_tokens) + 16;
  engine::LlamaContext ctx(*model, {.n_ctx = n_ctx, .n_batch = o.pp_tokens, .n_ubatch = o.pp_tokens,
                                    .n_seq = 1, .n_threads = threads});
  engine::TokenBatch batch(o.pp_tokens);
  // Warm-up (llama-bench does one): first-touch of mmap'd weights and buffers.
  time_pp(ctx, batch, std::min(o.pp_tokens, 16));
  time_tg(ctx, batch, 1);
  std::vector<double> pp, tg;
  for (int r = 0; r < o.repetitions; ++r) {
    pp.push_back(o.pp_tokens / time_pp(ctx, batch, o.pp_tokens));
    tg.push_back(o.tg_tokens / time_tg(ctx, batch, o.tg_tokens));
  }
  SpeedResult res;
  res.n_threads = threads;
  res.pp_tokens = o.pp_tokens;
  res.tg_tokens = o.tg_tokens;
  res.repetitions = o.repetitions;
  mean_sd(pp, res.pp_tokens_per_s, res.pp_tokens_per_s_sd);
  mean_sd(tg, res.tg_tokens_per_s, res.tg_tokens_per_s_sd);
  const char* sys = llama_print_system_info();
  res.system_info = sys ? sys : "";
  return res;
}

}  // namespace cb::card
