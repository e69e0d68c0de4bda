#include "engine/eval_swap.h"

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "engine/eval_quant.h"
#include "ggml-backend.h"
#include "ggml.h"

namespace cb::engine {
namespace {

ggml_tensor* first_handle(const LlamaModel& model, const std::string& name) {
  const auto handles = model.tensor_handles(name);
  if (handles.empty()) {
    throw RecipeError(fmt::format("no swappable tensor named {} (model loaded in_memory?)", name));
  }
  return handles.front();
}

void set_all(const LlamaModel& model, const std::string& name, const std::vector<uint8_t>& bytes) {
  for (ggml_tensor* t : model.tensor_handles(name)) {
    ggml_backend_tensor_set(t, bytes.data(), 0, bytes.size());
  }
}

}  // namespace

TensorSwapper::TensorSwapper(LlamaModel& model) : model_(model) {}

void TensorSwapper::set_simulated(const std::string& name, const std::string& type_name,
                                  const std::vector<float>* imatrix) {
  ggml_tensor* t = first_handle(model_, name);
  const int target = ggml_type_id(type_name);
  auto it = originals_.find(name);
  if (target == static_cast<int>(t->type)) {
    restore(name);
    return;
  }
  if (it == originals_.end()) {
    Original o;
    o.bytes.resize(ggml_nbytes(t));
    ggml_backend_tensor_get(t, o.bytes.data(), 0, o.bytes.size());
    it = originals_.emplace(name, std::move(o)).first;
  }
  const int64_t n = ggml_nelements(t);
  const int n_threads = model_.n_threads();
  const auto key = std::make_pair(name, target);
  auto cached = cache_.find(key);
  std::vector<uint8_t> fresh;
  if (cached == cache_.end()) {
    const std::vector<float> f32 = dequantize_to_f32(t->type, it->second.bytes.data(), n);
    fresh = convert_from_f32(target, f32.data(), t->ne[0], ggml_nrows(t), t->ne[1], imatrix,
                             n_threads);
    if (cache_bytes_ + static_cast<int64_t>(fresh.size()) <= cache_limit_bytes_) {
      cache_bytes_ += static_cast<int64_t>(fresh.size());
      cached = cache_.emplace(key, std::move(fresh)).first;
    }
  }
  const std::vector<uint8_t>& q = cached == cache_.end() ? fresh : cached->second;
  const std::vector<float> back = dequantize_to_f32(target, q.data(), n);
  // Back to the tensor's own type (F16 rounding of the dequantized values is
  // far below the quantization error being simulated).
  const std::vector<uint8_t> bytes = convert_from_f32(t->type, back.data(), t->ne[0],
                                                      ggml_nrows(t), t->ne[1], nullptr, n_threads);
  set_all(model_, name, bytes);
}

void TensorSwapper::restore(const std::string& name) {
  auto it = originals_.find(name);
  if (it == originals_.end()) return;
  set_all(model_, name, it->second.bytes);
  originals_.erase(it);
}

void TensorSwapper::restore_all() {
  for (const auto& [name, o] : originals_) set_all(model_, name, o.bytes);
  originals_.clear();
}

std::map<std::string, std::string> TensorSwapper::tensor_types() const {
  std::map<std::string, std::string> out;
  for (const auto& [name, handles] : model_.all_tensor_handles()) {
    out[name] = ggml_type_name(handles.front()->type);
  }
  return out;
}

std::vector<std::string> TensorSwapper::swapped() const {
  std::vector<std::string> out;
  for (const auto& [name, o] : originals_) out.push_back(name);
  return out;
}

}  // namespace cb::engine
