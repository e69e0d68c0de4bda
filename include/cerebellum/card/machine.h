// The build on this machine: measured speed (prompt processing and generation
// tokens/s, as llama-bench's pp/tg) and memory by context length (weights + KV
// cache + recurrent state), computed from the model's shapes and checked
// against the KV buffer llama.cpp reports for one context.
// Implemented in src/engine/card_machine.cc (needs the engine) and
// src/card/memory.cc (the arithmetic, pure).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cerebellum/common/log.h"

namespace cb::card {

struct SpeedOptions {
  int n_threads = 2;       // the card states it; 0 = all cores
  int pp_tokens = 512;     // prompt tokens decoded in one batch (llama-bench pp512)
  int tg_tokens = 128;     // tokens generated one at a time (llama-bench tg128)
  int repetitions = 2;     // timed runs of each; the card reports the mean and the spread
};

struct SpeedResult {
  int n_threads = 0;
  int pp_tokens = 0, tg_tokens = 0, repetitions = 0;
  double pp_tokens_per_s = 0, pp_tokens_per_s_sd = 0;
  double tg_tokens_per_s = 0, tg_tokens_per_s_sd = 0;
  std::string system_info;  // llama_print_system_info(): SIMD features used
};

// Loads the model (use_extra_bufts=false) and times pp and tg like llama-bench:
// synthetic tokens, one warm-up run, KV cleared between runs. EngineError on failure.
SpeedResult measure_speed(const std::string& model_path, const SpeedOptions& options,
                          const Logger& logger = {});

// What memory depends on, read from the GGUF (tensor shapes + ssm metadata).
struct MemoryShape {
  int n_layer = 0;
  int64_t weights_bytes = 0;          // Σ tensor data bytes (what llama.cpp maps)
  int n_attn_layers = 0;              // layers with attn_k/attn_v (all of them when dense)
  int64_t kv_elems_per_token = 0;     // Σ over attention layers of (n_embd_k_gqa + n_embd_v_gqa)
  int n_recurrent_layers = 0;         // layers with ssm_in (Mamba)
  int64_t recurrent_elems = 0;        // Σ over them of conv state + ssm state (per sequence)
  std::string note;                   // how it was derived / what is not covered
};

struct MemoryRow {
  int n_ctx = 0;
  int64_t weights_bytes = 0, kv_bytes = 0, recurrent_bytes = 0;
  int64_t total_bytes() const { return weights_bytes + kv_bytes + recurrent_bytes; }
};

struct MemoryReport {
  MemoryShape shape;
  std::vector<MemoryRow> rows;
  int kv_bytes_per_elem = 2;                    // f16 K and V
  int recurrent_bytes_per_elem = 4;             // f32 r/s states (llama.cpp default)
  // The check: llama.cpp's own report for one context (its log line
  // "llama_kv_cache: size = X MiB", 0.01 MiB resolution).
  int measured_ctx = 0;
  std::optional<double> measured_kv_mib, measured_recurrent_mib;
};

// Shapes of a GGUF (no tensor data read). InputError on a bad file.
MemoryShape memory_shape(const std::string& model_path);

// Rows for `contexts`, one sequence, f16 KV: kv = n_ctx · kv_elems_per_token · 2.
MemoryReport memory_report(const MemoryShape& shape, const std::vector<int>& contexts);

// Creates a context of `n_ctx` (one sequence, f16 KV) and reads the KV /
// recurrent buffer sizes llama.cpp logs; fields stay empty if it logs none.
void measure_memory(const std::string& model_path, int n_ctx, MemoryReport& report);

// Parses llama.cpp's context log: "llama_kv_cache: size = X MiB" and
// "llama_memory_recurrent: size = X MiB" (sums if logged more than once).
void parse_memory_log(const std::string& log, std::optional<double>& kv_mib,
                      std::optional<double>& recurrent_mib);

}  // namespace cb::card
