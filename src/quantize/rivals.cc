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

namespace cb {
namespace {

// The preset's exact file size, or -1 when our build cannot make it here (a
// type that needs an imatrix, without one).
int64_t buildable_size_bytes(const ModelInfo& model, const std::string& preset, const std::string& imatrix_path) {
  BuildOptions b;
  b.source = model.path;
  b.source_model = &model;
  b.base = preset;
  b.imatrix_path = imatrix_path;
  b.dry_run = true;
  try {
    return build_model(b, Logger{}, ProgressFn{}).output_size_bytes;
  } catch (const RecipeError&) {
    return -1;
  }
}

}  // namespace

std::vector<std::string> rival_presets(const ModelInfo& model, int64_t size_bytes, const std::string& imatrix_path,
                                       const std::string& except, std::map<std::string, int64_t>* sizes) {
  static const std::set<std::string> kFamilies = {"k", "iq", "legacy"};
  std::map<int, StockMix> by_ftype;  // aliases ("Q4_K" = "Q4_K_M") once: the later, full name
  for (const StockMix& mix : stock_mixes()) {
    if (kFamilies.count(mix.family)) by_ftype[mix.ftype] = mix;
  }
  std::map<std::string, std::pair<std::string, int64_t>> best;  // family -> (preset, size)
  for (const auto& [ftype, mix] : by_ftype) {
    const int64_t s = buildable_size_bytes(model, mix.name, imatrix_path);
    if (sizes && s >= 0) (*sizes)[mix.name] = s;
    if (s < 0 || s > size_bytes) continue;
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
