// What a sweep will need, said before it runs (and refused when it cannot
// fit), rather than being killed by the OOM killer hours in.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "cerebellum/inspect/inspect.h"
#include "cerebellum/measure/measure.h"

namespace cb::measure {

// Projected peak bytes of a resident-mode sweep. Weights are memory-mapped
// (file-backed, as llama.cpp loads them); the rest is anonymous memory.
struct MemoryProjection {
  int64_t base_model_bytes = 0;      // the base mix in real types (exact: the built file's size)
  int64_t reference_model_bytes = 0; // the full-precision file (the reference pass, on its own)
  int64_t reference_store_bytes = 0; // top-K log-probs for every chunk a unit may reach
  int64_t swap_bytes = 0;            // the largest unit's tensors at its largest type
  int64_t context_bytes = 0;         // KV cache + logits + a compute allowance
  int64_t host_bytes = 0;            // measuring phase, host
  int64_t device_bytes = 0;          // measuring phase, device (0 without offload)
  int64_t reference_pass_host_bytes = 0, reference_pass_device_bytes = 0;
  std::string describe() const;      // one line for the log
};

MemoryProjection project_memory(const MeasureOptions& o, const ModelInfo& model,
                                const std::map<std::string, std::string>& base_types);

// Throws BudgetError naming the need when the projection exceeds
// o.max_host_bytes, or the device cap / the GPU's free memory with offload.
void check_memory(const MeasureOptions& o, const MemoryProjection& p);

}  // namespace cb::measure
