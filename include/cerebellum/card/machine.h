// The build on this machine: measured speed (prompt processing and generation
// tokens/s, as llama-bench's pp/tg) and memory by context length (llama.cpp's
// own breakdown of real contexts). Implemented in src/engine/card_machine.cc
// and src/card/memory.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cerebellum/allocate/speed.h"
#include "cerebellum/build/deploy.h"
#include "cerebellum/inspect/inspect.h"
#include "cerebellum/common/log.h"

namespace cb::card {

struct SpeedOptions {
  int n_threads = 2;       // the card states it; 0 = all cores
  int pp_tokens = 512;     // prompt tokens decoded in one batch (llama-bench pp512)
  int tg_tokens = 128;     // tokens generated one at a time (llama-bench tg128)
  int repetitions = 2;     // timed runs of each; the card reports the mean and the spread
  int n_gpu_layers = 0;    // layers offloaded to the GPU (999 = all; CPU-only builds ignore it); 0 = the CPU
};

struct SpeedResult {
  int n_threads = 0;
  int pp_tokens = 0, tg_tokens = 0, repetitions = 0;
  double pp_tokens_per_s = 0, pp_tokens_per_s_sd = 0;
  double tg_tokens_per_s = 0, tg_tokens_per_s_sd = 0;
  std::string system_info;  // llama_print_system_info(): SIMD features used
  std::string device;       // "the CPU", or the GPU's name and the layers on it
};

// Loads the model (use_extra_bufts=false) and times pp and tg like llama-bench:
// synthetic tokens, one warm-up run, KV cleared between runs. EngineError on failure.
SpeedResult measure_speed(const std::string& model_path, const SpeedOptions& options,
                          const Logger& logger = {});
// The same for several files side by side (ours and a stock mix): each loaded
// once, the timed runs interleaved (A pp, B pp, A tg, B tg, then again) so
// that the machine's drift falls on every file alike. One result per path.
std::vector<SpeedResult> measure_speed_interleaved(const std::vector<std::string>& model_paths,
                                                   const SpeedOptions& options, const Logger& logger = {});

// The speed table of `--min-decode-speed` (allocate/speed.h): for each type,
// the uniform mix of `model` (every stock-quantizable tensor at that type,
// stock's fallbacks where rows do not fit) is built into a temporary file and
// its decode speed measured (tg of `o`). Cached per model, thread count and
// CPU in `cache_path` ("" = no cache): types already there are not re-measured.
// A type whose uniform mix cannot be built (RecipeError: it needs an imatrix
// on some tensors) is left out of the table, with a warning.
SpeedTable measure_speed_table(const ModelInfo& model, const std::vector<std::string>& types, const SpeedOptions& o,
                               const std::string& imatrix_path, const std::string& cache_path,
                               const Logger& logger = {});
// $CEREBELLUM_CACHE (or ~/.cache/cerebellum)/speed/<model sha256 prefix>-<threads>t[-ngl<N>].json.
std::string default_speed_cache_path(const std::string& model_sha256, int n_threads, int n_gpu_layers = 0);

// Memory by context length, measured: llama.cpp loads the build as deployed
// (the run's --fit settings when it had one, else all layers on the GPU if
// there is one) and creates a context of each length; its own breakdown per
// pool (build/deploy.h: model, context = KV cache + recurrent state, compute).
struct MemoryRow {
  int64_t n_ctx = 0;
  std::vector<PoolMemory> pools;
};

struct MemoryReport {
  DeploySettings settings;
  std::vector<MemoryRow> rows;  // fewer than asked when a larger context would not fit (or failed)
  std::string stopped;          // why the rows end early ("" = every context asked for)
};

MemoryReport measure_memory(const std::string& model_path, const DeploySettings& settings,
                            const std::vector<int>& contexts);

}  // namespace cb::card
