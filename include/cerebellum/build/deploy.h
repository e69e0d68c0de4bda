// deploy: what a GGUF needs at run time on the user's devices, as llama.cpp
// itself counts it (model, context, compute bytes per device), for a given
// context length and placement. Used by `--fit` (the projection, before a
// plan exists) and by the verification after `build` (a real load).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cerebellum/common/log.h"

namespace cb {

// The llama.cpp settings a deployment runs with; each maps to a llama-server
// argument (deploy_args()). Defaults are llama.cpp's own.
struct DeploySettings {
  int64_t n_ctx_tokens = 4096;       // -c
  std::string kv_type = "f16";       // -ctk / -ctv (f16, q8_0, q4_0, ...)
  int n_parallel = 1;                // -np: sequences sharing the context
  int n_batch = 2048;                // -b
  int n_ubatch = 512;                // -ub
  int n_gpu_layers = -1;             // -ngl; -1 = all (llama.cpp's default)
  // -ot REGEX=CPU: weights whose names match stay in host memory (e.g.
  // routed experts, "\.ffn_(up|down|gate)_exps\."). "" = none.
  std::string cpu_tensor_regex;
};

// Bytes of one memory pool: a GPU device, or host memory ("CPU": the CPU
// backend and the GPUs' pinned host buffers).
struct PoolMemory {
  std::string name;                  // "CPU", "CUDA0", ...
  bool is_host = false;
  int64_t model_bytes = 0, context_bytes = 0, compute_bytes = 0;
  int64_t free_bytes = 0, total_bytes = 0;  // the device's, at the time of asking (0: host)
  int64_t total() const { return model_bytes + context_bytes + compute_bytes; }
};

struct DeployMemory {
  std::vector<PoolMemory> pools;     // host first, then GPUs in device order
  int n_layer = 0;                   // the model's block count
  int64_t n_ctx_train = 0;
  const PoolMemory* find(const std::string& name) const;
};

// How deployment_memory gets its numbers.
enum class DeployProbe {
  kProject,  // llama.cpp's no_alloc load: metadata only, nothing allocated
  kLoad,     // a real load and context creation (the file runs at these settings)
};

// llama.cpp's per-pool breakdown for `gguf_path` under `s`. InputError for
// a bad file, EngineError when llama.cpp cannot load it or create the
// context (e.g. out of device memory in kLoad).
DeployMemory deployment_memory(const std::string& gguf_path, const DeploySettings& s, DeployProbe probe,
                               const Logger& logger = {});

// The same at several context lengths (s.n_ctx_tokens ignored), the model
// loaded once: the card's memory-by-context table. When llama.cpp cannot
// create a context after the first, the lengths before it are returned. In
// kLoad, a context is not attempted when the last one's bytes scaled to its
// length (KV grows with it; compute and recurrent state do not, so this
// overestimates) exceed a pool's free memory (a GPU's, or the host's
// MemAvailable) plus what the last one held: allocating it could meet the
// OOM killer before llama.cpp can refuse. `why_stopped` (if given) says why
// the table ends early, "" when it does not.
std::vector<DeployMemory> deployment_memory_by_context(const std::string& gguf_path, const DeploySettings& s,
                                                       const std::vector<int64_t>& n_ctx_tokens, DeployProbe probe,
                                                       const Logger& logger = {}, std::string* why_stopped = nullptr);

// How many GPU devices this build of the engine sees (CUDA_VISIBLE_DEVICES applies).
int gpu_device_count();
bool have_gpu_device();  // gpu_device_count() > 0
// The first GPU device's description ("NVIDIA H200"); "" when there is none.
std::string gpu_device_description();

// The llama-server / llama-cli arguments that realise `s` ("-c 8192 -ngl 999 ...").
std::string deploy_args(const DeploySettings& s);

}  // namespace cb
