#include "cerebellum/inspect/inspect.h"
#include "cerebellum/common/schemas.h"

#include <nlohmann/json.hpp>

#include "cerebellum/common/quant_types.h"
#include "engine/engine.h"
#include "inspect/stock_rules.h"

namespace cb {

const TensorInfo* ModelInfo::find(const std::string& name) const {
  for (const auto& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::map<std::string, RoleSummary> ModelInfo::by_role() const {
  std::map<std::string, RoleSummary> out;
  for (const auto& t : tensors) {
    auto& s = out[t.role];
    s.n_tensors++;
    s.n_elements += t.n_elements;
    s.size_bytes += t.size_bytes;
  }
  return out;
}

std::map<int, RoleSummary> ModelInfo::by_layer() const {
  std::map<int, RoleSummary> out;
  for (const auto& t : tensors) {
    auto& s = out[t.layer];
    s.n_tensors++;
    s.n_elements += t.n_elements;
    s.size_bytes += t.size_bytes;
  }
  return out;
}

double ModelInfo::bits_per_weight() const {
  int64_t bytes = 0;
  for (const auto& t : tensors) bytes += t.size_bytes;
  return n_elements ? 8.0 * bytes / n_elements : 0;
}

ModelInfo inspect_model(const std::string& path) {
  engine::GgufFile file(path);
  engine::check_model_metadata(file);
  ModelInfo info;
  info.path = path;
  info.arch = file.get_string("general.architecture", "unknown");
  info.name = file.get_string("general.name", "");
  info.n_layers = static_cast<int>(file.get_int(info.arch + ".block_count", 0));
  info.file_size_bytes = static_cast<int64_t>(file.file_size_bytes());
  info.data_offset_bytes = static_cast<int64_t>(file.data_offset());
  info.alignment_bytes = static_cast<int64_t>(file.alignment());
  const auto targets = target_types();
  for (int64_t i = 0; i < file.n_tensors(); ++i) {
    TensorInfo t;
    t.name = file.tensor_name(i);
    t.role = tensor_role(t.name);
    t.layer = tensor_layer(t.name);
    t.shape = file.tensor_shape(i);
    t.type = type_by_id(file.tensor_type(i)).name;
    t.size_bytes = static_cast<int64_t>(file.tensor_size_bytes(i));
    t.n_elements = 1;
    for (auto d : t.shape) t.n_elements *= d;
    // 1-D tensors (norms, biases) stay float: llama.cpp's kernels expect it.
    for (const auto& type : targets) {
      if (t.shape.size() < 2 && type.quantized) continue;
      if (row_fits(type, t.row_elems())) t.fitting_types.push_back(type.name);
    }
    t.stock_quantizable = stock_would_quantize(t.name, static_cast<int>(t.shape.size()));
    info.n_elements += t.n_elements;
    info.tensors.push_back(std::move(t));
  }
  return info;
}

nlohmann::json to_json(const ModelInfo& info) {
  using nlohmann::json;
  json j;
  j["schema"] = kInspectSchema;
  j["path"] = info.path;
  j["arch"] = info.arch;
  j["name"] = info.name;
  j["n_layers"] = info.n_layers;
  j["file_size_bytes"] = info.file_size_bytes;
  j["data_offset_bytes"] = info.data_offset_bytes;
  j["n_elements"] = info.n_elements;
  j["bits_per_weight"] = info.bits_per_weight();
  json tensors = json::array();
  for (const auto& t : info.tensors) {
    tensors.push_back({{"name", t.name}, {"role", t.role}, {"layer", t.layer},
                       {"shape", t.shape}, {"type", t.type}, {"size_bytes", t.size_bytes},
                       {"n_elements", t.n_elements}, {"bits_per_weight", t.bits_per_weight()},
                       {"fitting_types", t.fitting_types},
                       {"stock_quantizable", t.stock_quantizable}});
  }
  j["tensors"] = tensors;
  json roles = json::object();
  for (const auto& [role, s] : info.by_role()) {
    roles[role] = {{"n_tensors", s.n_tensors}, {"n_elements", s.n_elements},
                   {"size_bytes", s.size_bytes}};
  }
  j["by_role"] = roles;
  json layers = json::object();
  for (const auto& [layer, s] : info.by_layer()) {
    layers[std::to_string(layer)] = {{"n_tensors", s.n_tensors},
                                     {"n_elements", s.n_elements},
                                     {"size_bytes", s.size_bytes}};
  }
  j["by_layer"] = layers;
  return j;
}

}  // namespace cb
