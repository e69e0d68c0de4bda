// Exact sizes: what stock llama-quantize writes for a tensor at a type, padded;
// the budget grammar in bytes, units and bits per weight.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cerebellum/inspect/inspect.h"

namespace cb {


int64_t pad_bytes(int64_t size_bytes, int64_t alignment_bytes);

// The type stock llama-quantize actually writes when asked for `type` on this
// tensor: the source type for tensors it refuses, the fallback type (Q4_K→Q5_0,
// Q2_K→Q4_0, ..., then F16) when the rows do not fit the blocks.
std::string stock_effective_type(const TensorInfo& t, const std::string& type);

// Exact bytes of the tensor's data at `type` (priced at its stock fallback),
// padded to the GGUF alignment.
int64_t tensor_bytes_at(const TensorInfo& t, const std::string& type, int64_t alignment_bytes);

// File size: fixed header/metadata bytes + Σ padded tensor bytes. Tensors not in
// `types` keep their current type.
int64_t model_size_bytes(const ModelInfo& model, const std::map<std::string, std::string>& types,
                         int64_t fixed_overhead_bytes);

// "7.4MB" (1e6), "7.4MiB", "7400000", "3.5bpw" (× the model's parameters / 8).
int64_t parse_budget_bytes(const std::string& spec, int64_t n_elements);

}  // namespace cb
