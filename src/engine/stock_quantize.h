// Stock llama-quantize presets, wrapped (not reimplemented): the per-tensor
// types the pinned llama.cpp picks for a model come from its own dry run.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cerebellum/common/log.h"

namespace cb::engine {

struct StockFallback {
  std::string tensor;
  std::string requested_type;
  std::string fallback_type;
  std::string reason;  // e.g. "ncols 172 not divisible by 256"
};

struct StockPlan {
  std::map<std::string, std::string> types;  // every tensor -> ggml type name (unchanged ones too)
  std::vector<StockFallback> fallbacks;
  int64_t size_bytes = 0;                    // tensor data bytes stock reports (unpadded)
};

// Runs llama_model_quantize(dry_run) for `preset` on `model_path` and parses
// the per-tensor lines it logs. `with_imatrix` matters for some IQ mixes
// (stock picks other types when it has an imatrix). Throws RecipeError for an
// unknown preset, EngineError if the engine fails.
StockPlan stock_preset_plan(const std::string& model_path, const std::string& preset,
                            bool with_imatrix, const Logger& logger);


}  // namespace cb::engine
