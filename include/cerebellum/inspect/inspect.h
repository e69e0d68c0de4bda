// inspect: what a GGUF model holds. Tensors with their role, layer, shape,
// type, size; which quant types each tensor's rows can take; whether stock
// llama-quantize would ever quantize it. Output of the first pipeline stage
// (JSON schema "cerebellum.inspect/1").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace cb {

struct TensorInfo {
  std::string name;
  std::string role;              // from the role table (src/inspect/roles.cc), e.g. "attn_q"
  int layer = -1;                // blk index, -1 for non-layer tensors
  std::vector<int64_t> shape;    // ne[0] (row width) first, as ggml
  std::string type;              // current ggml type name
  int64_t size_bytes = 0;
  int64_t n_elements = 0;
  double bits_per_weight() const { return n_elements ? 8.0 * size_bytes / n_elements : 0; }
  int64_t row_elems() const { return shape.empty() ? 0 : shape[0]; }
  std::vector<std::string> fitting_types;  // target types whose blocks fit the rows
  bool stock_quantizable = false;          // llama-quantize would quantize it under some preset
};

struct RoleSummary {
  int n_tensors = 0;
  int64_t n_elements = 0;
  int64_t size_bytes = 0;
};

struct ModelInfo {
  std::string path;
  std::string arch;              // general.architecture
  std::string name;              // general.name
  int n_layers = 0;              // <arch>.block_count
  int64_t file_size_bytes = 0;
  int64_t data_offset_bytes = 0; // start of tensor data (header + padding)
  int64_t alignment_bytes = 32;
  int64_t n_elements = 0;
  std::vector<TensorInfo> tensors;

  const TensorInfo* find(const std::string& name) const;
  std::map<std::string, RoleSummary> by_role() const;
  std::map<int, RoleSummary> by_layer() const;
  double bits_per_weight() const;
};

// Reads the GGUF header (not the tensor data). Throws InputError on a bad file.
ModelInfo inspect_model(const std::string& path);

nlohmann::json to_json(const ModelInfo& info);

// Role of a tensor by name (data-driven table); "other" when nothing matches.
std::string tensor_role(const std::string& name);
// Layer index from "blk.N." names; -1 otherwise.
int tensor_layer(const std::string& name);

}  // namespace cb
