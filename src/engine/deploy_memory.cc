// deployment_memory: llama.cpp's own per-device memory breakdown of a GGUF at
// a deployment's settings (include/cerebellum/build/deploy.h).
#include <algorithm>
#include <fstream>
#include <limits>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "cerebellum/build/deploy.h"
#include "cerebellum/common/error.h"
#include "engine/engine.h"
#include "engine/eval_quant.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "llama.h"

// From the pinned tree's src/llama-ext.h (commit de3ff815), which the install
// does not copy (C++ linkage): llama.cpp's breakdown per buffer type, as its own
// common_get_device_memory_data and common_memory_breakdown_print read it.
struct llama_memory_breakdown_data {
  size_t model = 0;    // memory allocated for the model
  size_t context = 0;  // memory allocated for the context
  size_t compute = 0;  // memory allocated for temporary compute buffers
};
LLAMA_API std::map<ggml_backend_buffer_type_t, llama_memory_breakdown_data> llama_get_memory_breakdown(
    const struct llama_context* ctx);
LLAMA_API int32_t llama_model_n_devices(const struct llama_model* model);
LLAMA_API ggml_backend_dev_t llama_model_get_device(const struct llama_model* model, int i);

namespace cb {
namespace {

struct ModelFree {
  void operator()(llama_model* m) const { llama_model_free(m); }
};
struct ContextFree {
  void operator()(llama_context* c) const { llama_free(c); }
};

llama_model_params deploy_model_params(const DeploySettings& s, DeployProbe probe,
                                       std::vector<llama_model_tensor_buft_override>& overrides) {
  llama_model_params p = llama_model_default_params();
  p.n_gpu_layers = s.n_gpu_layers;
  p.use_extra_bufts = false;  // AMX repacking segfaults on quantized models on this CPU
  p.no_alloc = probe == DeployProbe::kProject;
  if (probe == DeployProbe::kProject) p.load_mode = LLAMA_LOAD_MODE_NONE;
  if (!s.cpu_tensor_regex.empty()) {
    overrides.push_back({s.cpu_tensor_regex.c_str(), ggml_backend_cpu_buffer_type()});
    overrides.push_back({nullptr, nullptr});
    p.tensor_buft_overrides = overrides.data();
  }
  return p;
}

llama_context_params deploy_context_params(const DeploySettings& s) {
  llama_context_params c = llama_context_default_params();
  c.n_ctx = static_cast<uint32_t>(s.n_ctx_tokens);
  c.n_batch = static_cast<uint32_t>(s.n_batch);
  c.n_ubatch = static_cast<uint32_t>(s.n_ubatch);
  c.n_seq_max = static_cast<uint32_t>(s.n_parallel);
  const auto kv = static_cast<ggml_type>(engine::ggml_type_id(s.kv_type));
  c.type_k = kv;
  c.type_v = kv;
  return c;
}

void check_settings(const DeploySettings& s) {
  if (s.n_ctx_tokens < 1 || s.n_ctx_tokens > (int64_t{1} << 31)) {
    throw UsageError(fmt::format("context of {} tokens: give 1 .. 2^31", s.n_ctx_tokens));
  }
  if (s.n_parallel < 1 || s.n_batch < 1 || s.n_ubatch < 1) {
    throw UsageError("--parallel, --batch and --ubatch must be at least 1");
  }
  try {
    engine::ggml_type_id(s.kv_type);
  } catch (const RecipeError& e) {
    throw UsageError(fmt::format("--kv-type: {}", e.what()));
  }
}

// Host buffer types (CPU, pinned host memory) in one pool; each GPU its own.
DeployMemory collect(const llama_model* model, const llama_context* ctx) {
  DeployMemory out;
  out.pools.push_back({.name = "CPU", .is_host = true});
  const int n_dev = llama_model_n_devices(model);
  for (int i = 0; i < n_dev; ++i) {
    ggml_backend_dev_t dev = llama_model_get_device(model, i);
    size_t free = 0, total = 0;
    ggml_backend_dev_memory(dev, &free, &total);
    out.pools.push_back({.name = ggml_backend_dev_name(dev), .free_bytes = static_cast<int64_t>(free),
                         .total_bytes = static_cast<int64_t>(total)});
  }
  for (const auto& [buft, mb] : llama_get_memory_breakdown(ctx)) {
    PoolMemory* pool = &out.pools.front();
    if (!ggml_backend_buft_is_host(buft)) {
      ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
      for (int i = 0; i < n_dev; ++i) {
        if (dev == llama_model_get_device(model, i)) pool = &out.pools[static_cast<size_t>(i) + 1];
      }
    }
    pool->model_bytes += static_cast<int64_t>(mb.model);
    pool->context_bytes += static_cast<int64_t>(mb.context);
    pool->compute_bytes += static_cast<int64_t>(mb.compute);
  }
  out.n_layer = llama_model_n_layer(model);
  out.n_ctx_train = llama_model_n_ctx_train(model);
  return out;
}

// /proc/meminfo's MemAvailable; 0 when it cannot be read (not Linux).
int64_t host_available_bytes() {
  std::ifstream in("/proc/meminfo");
  for (std::string key; in >> key;) {
    int64_t kib = 0;
    in >> kib;
    if (key == "MemAvailable:") return kib * 1024;
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

// Why a context of n_next tokens would not fit, judged from the last one
// (of n_last tokens, still allocated); "" = try it.
std::string next_context_misfit(const DeployMemory& last, int64_t n_last, int64_t n_next) {
  for (const PoolMemory& p : last.pools) {
    // The host's figure is read now (the last context already freed); a
    // GPU's was read while the last context held its bytes.
    const int64_t room = p.is_host ? host_available_bytes()
                                   : (p.free_bytes > 0 ? p.free_bytes + p.context_bytes + p.compute_bytes : 0);
    if (room <= 0) continue;  // unknown
    const auto need = static_cast<int64_t>(static_cast<double>(p.context_bytes) * n_next / n_last) + p.compute_bytes;
    if (need > room) {
      return fmt::format("{} tokens would need about {:.1f} MiB of context and compute on {}, {:.1f} MiB is free",
                         n_next, need / 1048576.0, p.name, room / 1048576.0);
    }
  }
  return "";
}

}  // namespace

const PoolMemory* DeployMemory::find(const std::string& name) const {
  for (const auto& p : pools) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

DeployMemory deployment_memory(const std::string& gguf_path, const DeploySettings& s, DeployProbe probe,
                               const Logger& logger) {
  return deployment_memory_by_context(gguf_path, s, {s.n_ctx_tokens}, probe, logger).front();
}

std::vector<DeployMemory> deployment_memory_by_context(const std::string& gguf_path, const DeploySettings& s,
                                                       const std::vector<int64_t>& n_ctx_tokens, DeployProbe probe,
                                                       const Logger& logger, std::string* why_stopped) {
  check_settings(s);
  std::string stopped;
  engine::validate_gguf_header(gguf_path);
  engine::ensure_backend();
  engine::ScopedLogCapture capture(logger);
  std::vector<llama_model_tensor_buft_override> overrides;
  std::unique_ptr<llama_model, ModelFree> model(
      llama_model_load_from_file(gguf_path.c_str(), deploy_model_params(s, probe, overrides)));
  if (!model) throw EngineError(fmt::format("{}: llama.cpp could not load the model", gguf_path));
  std::vector<DeployMemory> out;
  for (const int64_t n_ctx : n_ctx_tokens) {
    DeploySettings at = s;
    at.n_ctx_tokens = n_ctx;
    check_settings(at);
    if (probe == DeployProbe::kLoad && !out.empty()) {
      stopped = next_context_misfit(out.back(), n_ctx_tokens[out.size() - 1], n_ctx);
      if (!stopped.empty()) break;
    }
    std::unique_ptr<llama_context, ContextFree> ctx(llama_init_from_model(model.get(), deploy_context_params(at)));
    if (!ctx && !out.empty()) {  // a longer context than memory allows: the ones before stand
      stopped = fmt::format("llama.cpp could not create a context of {} tokens", n_ctx);
      break;
    }
    if (!ctx) {
      throw EngineError(fmt::format("{}: llama.cpp could not create a context of {} tokens ({})", gguf_path, n_ctx,
                                    deploy_args(at)));
    }
    out.push_back(collect(model.get(), ctx.get()));
  }
  if (why_stopped) *why_stopped = stopped;
  return out;
}

namespace {

std::vector<ggml_backend_dev_t> gpu_devices() {
  engine::ensure_backend();
  std::vector<ggml_backend_dev_t> out;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t d = ggml_backend_dev_get(i);
    if (ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_GPU) out.push_back(d);
  }
  return out;
}

}  // namespace

int gpu_device_count() { return static_cast<int>(gpu_devices().size()); }

bool have_gpu_device() { return gpu_device_count() > 0; }

std::string gpu_device_description() {
  const auto devs = gpu_devices();
  return devs.empty() ? "" : ggml_backend_dev_description(devs.front());
}

std::string deploy_args(const DeploySettings& s) {
  std::string a = fmt::format("-c {}", s.n_ctx_tokens);
  a += s.n_gpu_layers < 0 ? " -ngl 999" : fmt::format(" -ngl {}", s.n_gpu_layers);
  if (!s.cpu_tensor_regex.empty()) a += fmt::format(" -ot \"{}=CPU\"", s.cpu_tensor_regex);
  if (s.kv_type != "f16") a += fmt::format(" -ctk {0} -ctv {0}", s.kv_type);
  if (s.n_parallel != 1) a += fmt::format(" -np {}", s.n_parallel);
  if (s.n_batch != 2048) a += fmt::format(" -b {}", s.n_batch);
  if (s.n_ubatch != 512) a += fmt::format(" -ub {}", s.n_ubatch);
  return a;
}

}  // namespace cb
