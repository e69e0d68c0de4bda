#include "cerebellum/measure/memory.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/build/build.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/quant_types.h"
#include "config_eval.h"
#include "engine/engine.h"

namespace cb::measure {
namespace {

double gib(int64_t b) { return static_cast<double>(b) / (1 << 30); }

// The largest type a sweep swaps in (by bits per weight).
std::string largest_type(const MeasureOptions& o) {
  std::string best = o.targets.empty() ? o.promote.front() : o.targets.front();
  for (const auto* list : {&o.targets, &o.promote}) {
    for (const auto& t : *list) {
      if (type_by_name(t).bits_per_weight() > type_by_name(best).bits_per_weight()) best = t;
    }
  }
  return best;
}

// Bytes of the largest unit at `type`: one tensor, or a role / a layer summed.
int64_t largest_unit_bytes(const ModelInfo& model, PlanLevel plan, const std::string& type) {
  std::map<std::string, int64_t> by_role, by_layer;
  int64_t one = 0;
  for (const auto& t : model.tensors) {
    if (t.shape.size() < 2 || !row_fits(type_by_name(type), t.row_elems())) continue;
    const int64_t b = tensor_bytes_at(t, type, model.alignment_bytes);
    one = std::max(one, b);
    by_role[t.role.empty() ? t.name : t.role] += b;
    by_layer[std::to_string(t.layer)] += b;
  }
  if (plan == PlanLevel::kTensors) return one;
  int64_t most = one;
  for (const auto& [k, b] : by_role) most = std::max(most, b);
  if (plan == PlanLevel::kLayers) {
    for (const auto& [k, b] : by_layer) most = std::max(most, b);
  }
  return most;
}

// KV cache (F16 K and V rows of every attention layer), logits of one decode,
// and an allowance for llama.cpp's compute buffers; on a GPU the second lane's
// (EvalOptions::lanes: two contexts share the step's chunks, each with its own
// compute buffer holding a micro-batch's logits).
int64_t context_bytes(const eval::EvalOptions& e, const ModelInfo& model, int64_t n_vocab, bool two_lanes) {
  const int64_t n_ctx = e.n_batch;  // chunks per step x ctx
  int64_t kv_rows = 0;
  for (const auto& t : model.tensors) {
    if (t.shape.size() >= 2 && (t.role == "attn_k" || t.role == "attn_v")) kv_rows += t.shape[1];
  }
  const int64_t compute_bytes = (int64_t{256} << 20) + (two_lanes ? (int64_t{256} << 20) + 512 * n_vocab * 4 : 0);
  return n_ctx * kv_rows * 2 + n_ctx * n_vocab * 4 + compute_bytes;
}

// The largest layer (or the non-layer tensors together) of the reference,
// scaled from the source's by their files' sizes.
int64_t largest_layer_bytes(const ModelInfo& model, int64_t reference_file_bytes) {
  std::map<int, int64_t> by_layer;
  for (const auto& t : model.tensors) by_layer[t.layer] += t.size_bytes;
  int64_t largest = 0;
  for (const auto& [layer, bytes] : by_layer) largest = std::max(largest, bytes);
  const double scale =
      model.file_size_bytes > 0 ? static_cast<double>(reference_file_bytes) / model.file_size_bytes : 1.0;
  return static_cast<int64_t>(static_cast<double>(largest) * scale);
}

}  // namespace

MemoryProjection project_memory(const MeasureOptions& o, const ModelInfo& model,
                                const std::map<std::string, std::string>& base_types) {
  MemoryProjection p;
  p.base_model_bytes = predict_output_size_bytes(o.source_path, base_types, "");
  p.reference_model_bytes = o.reference_model.empty()
                                ? model.file_size_bytes
                                : static_cast<int64_t>(std::filesystem::file_size(o.reference_model));
  int64_t n_vocab = 0;
  for (const auto& t : model.tensors) {
    if (t.name == "token_embd.weight" && t.shape.size() > 1) n_vocab = t.shape[1];
  }
  const eval::EvalOptions e = sweep_eval_options(o);
  const int64_t k = o.top_k <= 0 ? n_vocab : std::min<int64_t>(o.top_k, std::max<int64_t>(n_vocab, 1));
  p.reference_store_bytes = static_cast<int64_t>(o.stop.max_chunks) * (o.ctx - 1 - e.first_scored) * (8 * k + 8);
  p.swap_bytes = largest_unit_bytes(model, o.plan, largest_type(o));
  const bool gpu = o.n_gpu_layers > 0;
  p.context_bytes = context_bytes(e, model, n_vocab, false);
  if (gpu && o.lanes != 1) {
    // Two lanes by default only with every layer and the output on the
    // device (Evaluator's lane_count): not when fewer layers are asked for,
    // nor when --max-vram will keep some on the host (LlamaModel::load fits
    // the layers to it).
    const bool all_layers = o.n_gpu_layers > model.n_layers;
    const bool fits = o.max_device_bytes <= 0 || p.base_model_bytes + engine::kDeviceReserveBytes <= o.max_device_bytes;
    if (o.lanes >= 2 || (all_layers && fits)) p.context_bytes = context_bytes(e, model, n_vocab, true);
  }
  // On a GPU the next units are converted ahead into host memory, at most
  // prefetch_max_bytes of them.
  const int64_t ahead_bytes = std::min(o.prefetch_max_bytes, static_cast<int64_t>(kPrefetchUnits) * p.swap_bytes);
  p.host_bytes = p.base_model_bytes + p.reference_store_bytes + (gpu ? ahead_bytes : p.swap_bytes + p.context_bytes);
  p.device_bytes = gpu ? p.base_model_bytes + p.swap_bytes + p.context_bytes : 0;
  // On the CPU the pass runs through the base mix, reading the reference's
  // file a layer at a time (Evaluator::extend_reference_from); on a GPU it
  // loads that file.
  p.reference_pass_host_bytes = gpu ? p.reference_model_bytes + p.reference_store_bytes
                                    : p.base_model_bytes + largest_layer_bytes(model, p.reference_model_bytes) +
                                          p.reference_store_bytes + p.context_bytes;
  p.reference_pass_device_bytes = gpu ? std::min(p.reference_model_bytes + p.context_bytes,
                                                 o.max_device_bytes > 0 ? o.max_device_bytes : INT64_MAX)
                                      : 0;
  return p;
}

std::string MemoryProjection::describe() const {
  std::string s = fmt::format(
      "memory: measuring needs about {:.2f} GiB host{} (base mix {:.2f} GiB memory-mapped, reference store "
      "{:.0f} MiB, largest swap {:.0f} MiB, context {:.0f} MiB); the reference pass {:.2f} GiB host{} "
      "(the {:.2f} GiB full-precision file {})",
      gib(host_bytes), device_bytes ? fmt::format(" and {:.2f} GiB device", gib(device_bytes)) : "",
      gib(base_model_bytes), reference_store_bytes / 1048576.0, swap_bytes / 1048576.0, context_bytes / 1048576.0,
      gib(reference_pass_host_bytes),
      reference_pass_device_bytes ? fmt::format(" and {:.2f} GiB device", gib(reference_pass_device_bytes)) : "",
      gib(reference_model_bytes),
      reference_pass_device_bytes ? "loaded" : "read a layer at a time through the base mix");
  return s;
}

void check_memory(const MeasureOptions& o, const MemoryProjection& p) {
  if (o.max_host_bytes > 0 && p.host_bytes > o.max_host_bytes) {
    throw BudgetError(fmt::format("measuring needs about {:.2f} GiB of host memory, over --max-memory {:.2f} GiB ({})",
                                  gib(p.host_bytes), gib(o.max_host_bytes), p.describe()));
  }
  if (o.n_gpu_layers <= 0) return;
  const engine::DeviceMemory dev = engine::gpu_memory();
  int64_t cap = o.max_device_bytes;
  if (dev.total_bytes > 0) cap = cap > 0 ? std::min(cap, dev.free_bytes) : dev.free_bytes;
  if (cap > 0 && p.device_bytes > cap) {
    throw BudgetError(fmt::format("measuring needs about {:.2f} GiB of device memory, {:.2f} GiB is available{} ({})",
                                  gib(p.device_bytes), gib(cap),
                                  o.max_device_bytes > 0 ? " under --max-vram" : "", p.describe()));
  }
}

}  // namespace cb::measure
