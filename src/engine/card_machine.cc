// The card's engine side: speed (llama-bench style pp / tg).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include <fmt/format.h>

#include "cerebellum/build/deploy.h"
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

std::vector<SpeedResult> measure_speed_interleaved(const std::vector<std::string>& model_paths,
                                                   const SpeedOptions& o, const Logger& logger) {
  if (o.pp_tokens < 1 || o.tg_tokens < 1 || o.repetitions < 1) {
    throw UsageError("speed: pp, tg and repetitions must be at least 1");
  }
  const int threads = thread_count(o.n_threads);
  engine::ModelLoadOptions load;
  load.n_threads = threads;
  load.n_gpu_layers = o.n_gpu_layers;
  load.logger = logger;
  const std::string gpu = o.n_gpu_layers > 0 ? gpu_device_description() : "";
  const int n_ctx = std::max(o.pp_tokens, o.tg_tokens) + 16;
  std::vector<std::unique_ptr<engine::LlamaModel>> models;
  std::vector<std::unique_ptr<engine::LlamaContext>> contexts;
  engine::TokenBatch batch(o.pp_tokens);
  for (const auto& path : model_paths) {
    models.push_back(engine::LlamaModel::load(path, load));
    contexts.push_back(std::make_unique<engine::LlamaContext>(
        *models.back(), engine::ContextOptions{.n_ctx = n_ctx, .n_batch = o.pp_tokens, .n_ubatch = o.pp_tokens,
                                               .n_seq = 1, .n_threads = threads}));
    // Warm-up (llama-bench does one): first-touch of mmap'd weights and
    // buffers, and a GPU's first full batch (kernel and graph set-up) untimed.
    time_pp(*contexts.back(), batch, o.pp_tokens);
    time_tg(*contexts.back(), batch, 1);
  }
  std::vector<std::vector<double>> pp(model_paths.size()), tg(model_paths.size());
  for (int r = 0; r < o.repetitions; ++r) {
    for (size_t i = 0; i < contexts.size(); ++i) pp[i].push_back(o.pp_tokens / time_pp(*contexts[i], batch, o.pp_tokens));
    for (size_t i = 0; i < contexts.size(); ++i) tg[i].push_back(o.tg_tokens / time_tg(*contexts[i], batch, o.tg_tokens));
  }
  const char* sys = llama_print_system_info();
  std::vector<SpeedResult> out(model_paths.size());
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = {.n_threads = threads, .pp_tokens = o.pp_tokens, .tg_tokens = o.tg_tokens, .repetitions = o.repetitions};
    mean_sd(pp[i], out[i].pp_tokens_per_s, out[i].pp_tokens_per_s_sd);
    mean_sd(tg[i], out[i].tg_tokens_per_s, out[i].tg_tokens_per_s_sd);
    out[i].system_info = sys ? sys : "";
    out[i].device = gpu.empty() ? "the CPU" : fmt::format("{} (-ngl {})", gpu, o.n_gpu_layers);
  }
  return out;
}

SpeedResult measure_speed(const std::string& model_path, const SpeedOptions& o, const Logger& logger) {
  return measure_speed_interleaved({model_path}, o, logger).front();
}

}  // namespace cb::card
