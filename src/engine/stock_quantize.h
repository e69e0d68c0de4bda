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

struct StockPreset {
  std::string name;  // as llama-quantize spells it, e.g. "Q4_K_M"
  int ftype = -1;    // llama_ftype, what general.file_type records
};

// Presets llama-quantize accepts (QUANT_OPTIONS minus COPY), in its order.
const std::vector<StockPreset>& stock_presets();
// Case-insensitive lookup ("q4_k_m" == "Q4_K_M"); aliases "Q4_K" etc. included.
std::optional<StockPreset> find_stock_preset(const std::string& name);

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

// The llama_ftype whose default type is `type_name` ("q4_K" -> Q4_K_M), for
// general.file_type of custom mixes; -1 when there is none.
int ftype_for_type(const std::string& type_name);

}  // namespace cb::engine
