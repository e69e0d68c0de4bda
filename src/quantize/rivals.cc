// The gate's rivals (issue 14): the best stock option of each preset family
// within our bytes. Kept apart from quantize.cc, which runs the pipeline.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cerebellum/build/build.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/quant_types.h"
#include "cerebellum/inspect/inspect.h"
#include "cerebellum/quantize/quantize.h"
#include "cerebellum/recipe/recipe.h"

namespace cb {

std::vector<std::string> rival_presets(const ModelInfo& model, int64_t size_bytes, const std::string& imatrix_path,
                                       const std::string& except, std::map<std::string, int64_t>* sizes,
                                       const FitReport* fit) {
  static const std::set<std::string> kFamilies = {"k", "iq", "legacy"};
  std::map<std::string, std::pair<std::string, int64_t>> best;  // family -> (preset, size)
  for (const StockMix& mix : stock_mixes()) {
    if (!kFamilies.count(mix.family) || !mix.alias_of.empty()) continue;
    int64_t s = 0;
    try {
      s = stock_preset_size_bytes(model.path, mix.name, imatrix_path);
    } catch (const RecipeError&) {
      continue;  // needs an imatrix, and none is given: not an option here
    }
    if (sizes) (*sizes)[mix.name] = s;
    if (fit ? !fits_deployment(*fit, model, stock_preset_types(model.path, mix.name)) : s > size_bytes) continue;
    auto& b = best[mix.family];
    if (b.first.empty() || s > b.second) b = {mix.name, s};
  }
  std::vector<std::string> out;
  for (const auto& [family, preset] : best) {
    if (preset.first != except) out.push_back(preset.first);
  }
  return out;
}

}  // namespace cb
