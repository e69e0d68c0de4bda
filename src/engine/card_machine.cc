// The card's engine side: speed (llama-bench style pp / tg) and the memory
// check (llama.cpp's own KV / recurrent buffer report for one context).
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

MemoryShape memory_shape(const std::string& model_path) {
  const ModelInfo info = inspect_model(model_path);
  engine::GgufFile gguf(model_path);
  MemoryShape s;
  s.n_layer = info.n_layers;
  for (const auto& t : info.tensors) s.weights_bytes += t.size_bytes;
  // KV width per layer from the K/V projections' output rows: n_embd_{k,v}_gqa
  // = n_head_kv · head_dim, exactly what llama.cpp allocates per cell. Layers
  // without them (Mamba layers of a hybrid) have no KV cache.
  std::vector<int64_t> kv_width(std::max(0, info.n_layers), 0);
  std::vector<bool> recurrent(std::max(0, info.n_layers), false);
  bool fused_qkv = false;
  for (const auto& t : info.tensors) {
    if (t.layer < 0 || t.layer >= info.n_layers || t.shape.size() < 2) continue;
    const std::string stem = t.name.substr(t.name.find('.', 4) + 1);
    if (stem == "attn_k.weight" || stem == "attn_v.weight") kv_width[t.layer] += t.shape[1];
    if (stem == "attn_qkv.weight") fused_qkv = true;
    if (stem == "ssm_in.weight") recurrent[t.layer] = true;
  }
  for (int64_t w : kv_width) {
    s.kv_elems_per_token += w;
    s.n_attn_layers += w > 0;
  }
  const std::string a = info.arch;
  const int64_t d_conv = gguf.get_int(a + ".ssm.conv_kernel", 0);
  const int64_t d_inner = gguf.get_int(a + ".ssm.inner_size", 0);
  const int64_t d_state = gguf.get_int(a + ".ssm.state_size", 0);
  const int64_t n_group = gguf.get_int(a + ".ssm.group_count", 0);
  // Mamba conv state (d_conv-1)·(d_inner + 2·n_group·d_state) + ssm state
  // d_state·d_inner per recurrent layer (llama_hparams::n_embd_r / n_embd_s).
  const int64_t per_layer = (d_conv > 0 ? d_conv - 1 : 0) * (d_inner + 2 * n_group * d_state) +
                            d_state * d_inner;
  for (bool r : recurrent) {
    s.n_recurrent_layers += r;
    if (r) s.recurrent_elems += per_layer;
  }
  s.note = "KV widths from the attn_k/attn_v output rows of each layer";
  if (s.n_recurrent_layers > 0) s.note += "; recurrent state from " + a + ".ssm.* (Mamba)";
  if (fused_qkv) s.note += "; fused attn_qkv layers are not counted (not supported)";
  return s;
}

void measure_memory(const std::string& model_path, int n_ctx, MemoryReport& report) {
  engine::ModelLoadOptions load;
  load.n_threads = 1;
  auto model = engine::LlamaModel::load(model_path, load);
  llama_context_params p = llama_context_default_params();
  p.n_ctx = n_ctx;
  p.n_batch = 32;
  p.n_ubatch = 32;
  p.n_seq_max = 1;
  p.n_threads = 1;
  p.n_threads_batch = 1;
  p.no_perf = true;
  Logger quiet;
  // Our own capture (LlamaContext keeps its log to itself): the report lines
  // are only logged while the context is created.
  std::string log;
  {
    engine::ScopedLogCapture capture(quiet);
    llama_context* ctx = llama_init_from_model(model->raw(), p);
    log = capture.text();
    if (!ctx) throw EngineError(fmt::format("{}: llama.cpp failed to create a context of {}", model_path, n_ctx));
    llama_free(ctx);
  }
  report.measured_ctx = n_ctx;
  parse_memory_log(log, report.measured_kv_mib, report.measured_recurrent_mib);
}

}  // namespace cb::card
