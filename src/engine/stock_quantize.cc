#include "cerebellum/common/strings.h"
#include "engine/stock_quantize.h"

#include <cctype>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/quant_types.h"
#include "engine/engine.h"
#include "llama.h"

namespace cb::engine {
namespace {

// "[  12/ 111]   blk.0.attn_q.weight - [  256,   256,     1,     1], type =    f16, size = ... (q4_K)"
const std::regex kTensorLine(
    R"(\[\s*\d+/\s*\d+\]\s+(\S+)\s+-\s+\[[^\]]*\], type =\s*(\S+), size =\s*([0-9.]+) MiB(?: ->\s*([0-9.]+) MiB \((\S+)\))?)");
// "warning: NAME - ncols 172 not divisible by 256 (required for type q4_K) ... -> falling back to q4_0"
const std::regex kFallbackLine(
    R"(warning:\s+(\S+)\s+- (ncols\s+\d+ not divisible by\s+\d+) \(required for type\s+(\S+)\)(.*?)-> falling back to\s+(\S+))");

StockPlan parse_dry_run(const std::string& log) {
  StockPlan plan;
  std::istringstream in(log);
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, kFallbackLine)) {
      std::string reason = m[2].str();
      if (m[4].str().find("F16") != std::string::npos) reason += "; fallback does not fit either";
      plan.fallbacks.push_back({m[1].str(), m[3].str(), m[5].str(), reason});
    } else if (std::regex_search(line, m, kTensorLine)) {
      plan.types[m[1].str()] = m[5].matched ? m[5].str() : m[2].str();
    }
  }
  return plan;
}

}  // namespace

StockPlan stock_preset_plan(const std::string& model_path, const std::string& preset,
                            bool with_imatrix, const Logger& logger) {
  const auto p = find_stock_mix(preset);
  if (!p) {
    std::string names;
    for (const auto& q : stock_mixes()) names += (names.empty() ? "" : ", ") + q.name;
    throw RecipeError(fmt::format("unknown stock preset '{}' (known: {})", preset, names));
  }
  validate_model_file(model_path);
  auto params = llama_model_quantize_default_params();
  params.ftype = static_cast<llama_ftype>(p->ftype);
  params.dry_run = true;
  params.nthread = 1;
  // Stock only checks that an imatrix is present when picking types; one
  // dummy entry flips that switch without affecting any tensor.
  static float dummy_value = 1.0f;
  const llama_model_imatrix_data dummy[2] = {{"cb.dummy", &dummy_value, 1}, {nullptr, nullptr, 0}};
  if (with_imatrix) params.imatrix = dummy;
  Logger quiet;
  ScopedLogCapture capture(quiet);
  const uint32_t rc = llama_model_quantize(model_path.c_str(), "/dev/null", &params);
  if (rc != 0) {
    throw EngineError(fmt::format("{}: stock dry run for {} failed: {}", model_path, p->name,
                                  capture.text().substr(capture.text().size() > 400 ? capture.text().size() - 400 : 0)));
  }
  StockPlan plan = parse_dry_run(capture.text());
  if (plan.types.empty()) {
    throw EngineError(fmt::format("{}: could not parse the stock dry run for {}", model_path, p->name));
  }
  logger.debug(fmt::format("stock {} plan: {} tensors, {} fallbacks", p->name, plan.types.size(),
                           plan.fallbacks.size()));
  return plan;
}

}  // namespace cb::engine
