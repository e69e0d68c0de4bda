#include "cerebellum/common/strings.h"
#include "engine/stock_quantize.h"

#include <cctype>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "engine/engine.h"
#include "llama.h"

namespace cb::engine {
namespace {

// Mirrors QUANT_OPTIONS of tools/quantize/quantize.cpp (pinned version).
const std::vector<StockPreset> kPresets = {
    {"Q1_0", LLAMA_FTYPE_MOSTLY_Q1_0},       {"Q2_0", LLAMA_FTYPE_MOSTLY_Q2_0},
    {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},       {"Q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},
    {"MXFP4_MOE", LLAMA_FTYPE_MOSTLY_MXFP4_MOE},
    {"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},       {"Q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},
    {"IQ2_XXS", LLAMA_FTYPE_MOSTLY_IQ2_XXS}, {"IQ2_XS", LLAMA_FTYPE_MOSTLY_IQ2_XS},
    {"IQ2_S", LLAMA_FTYPE_MOSTLY_IQ2_S},     {"IQ2_M", LLAMA_FTYPE_MOSTLY_IQ2_M},
    {"IQ1_S", LLAMA_FTYPE_MOSTLY_IQ1_S},     {"IQ1_M", LLAMA_FTYPE_MOSTLY_IQ1_M},
    {"TQ1_0", LLAMA_FTYPE_MOSTLY_TQ1_0},     {"TQ2_0", LLAMA_FTYPE_MOSTLY_TQ2_0},
    {"Q2_K", LLAMA_FTYPE_MOSTLY_Q2_K},       {"Q2_K_S", LLAMA_FTYPE_MOSTLY_Q2_K_S},
    {"IQ3_XXS", LLAMA_FTYPE_MOSTLY_IQ3_XXS}, {"IQ3_S", LLAMA_FTYPE_MOSTLY_IQ3_S},
    {"IQ3_M", LLAMA_FTYPE_MOSTLY_IQ3_M},     {"Q3_K", LLAMA_FTYPE_MOSTLY_Q3_K_M},
    {"IQ3_XS", LLAMA_FTYPE_MOSTLY_IQ3_XS},   {"Q3_K_S", LLAMA_FTYPE_MOSTLY_Q3_K_S},
    {"Q3_K_M", LLAMA_FTYPE_MOSTLY_Q3_K_M},   {"Q3_K_L", LLAMA_FTYPE_MOSTLY_Q3_K_L},
    {"IQ4_NL", LLAMA_FTYPE_MOSTLY_IQ4_NL},   {"IQ4_XS", LLAMA_FTYPE_MOSTLY_IQ4_XS},
    {"Q4_K", LLAMA_FTYPE_MOSTLY_Q4_K_M},     {"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S},
    {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M},   {"Q5_K", LLAMA_FTYPE_MOSTLY_Q5_K_M},
    {"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S},   {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M},
    {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K},       {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},
    {"F16", LLAMA_FTYPE_MOSTLY_F16},         {"BF16", LLAMA_FTYPE_MOSTLY_BF16},
    {"F32", LLAMA_FTYPE_ALL_F32},
};

// ggml type name -> the "mostly X" file type (for custom mixes).
const std::map<std::string, int> kTypeFtype = {
    {"f32", LLAMA_FTYPE_ALL_F32},        {"f16", LLAMA_FTYPE_MOSTLY_F16},
    {"bf16", LLAMA_FTYPE_MOSTLY_BF16},   {"q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},
    {"q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},   {"q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},
    {"q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},   {"q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},
    {"q2_K", LLAMA_FTYPE_MOSTLY_Q2_K},   {"q3_K", LLAMA_FTYPE_MOSTLY_Q3_K_M},
    {"q4_K", LLAMA_FTYPE_MOSTLY_Q4_K_M}, {"q5_K", LLAMA_FTYPE_MOSTLY_Q5_K_M},
    {"q6_K", LLAMA_FTYPE_MOSTLY_Q6_K},   {"iq2_xxs", LLAMA_FTYPE_MOSTLY_IQ2_XXS},
    {"iq2_xs", LLAMA_FTYPE_MOSTLY_IQ2_XS}, {"iq2_s", LLAMA_FTYPE_MOSTLY_IQ2_M},
    {"iq3_xxs", LLAMA_FTYPE_MOSTLY_IQ3_XXS}, {"iq3_s", LLAMA_FTYPE_MOSTLY_IQ3_S},
    {"iq1_s", LLAMA_FTYPE_MOSTLY_IQ1_S}, {"iq1_m", LLAMA_FTYPE_MOSTLY_IQ1_M},
    {"iq4_nl", LLAMA_FTYPE_MOSTLY_IQ4_NL}, {"iq4_xs", LLAMA_FTYPE_MOSTLY_IQ4_XS},
    {"tq1_0", LLAMA_FTYPE_MOSTLY_TQ1_0}, {"tq2_0", LLAMA_FTYPE_MOSTLY_TQ2_0},
};

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

const std::vector<StockPreset>& stock_presets() { return kPresets; }

std::optional<StockPreset> find_stock_preset(const std::string& name) {
  const std::string key = ascii_upper(name);
  for (const auto& p : kPresets) {
    if (p.name == key) return p;
  }
  return std::nullopt;
}

int ftype_for_type(const std::string& type_name) {
  auto it = kTypeFtype.find(type_name);
  return it == kTypeFtype.end() ? -1 : it->second;
}

StockPlan stock_preset_plan(const std::string& model_path, const std::string& preset,
                            bool with_imatrix, const Logger& logger) {
  const auto p = find_stock_preset(preset);
  if (!p) {
    std::string names;
    for (const auto& q : kPresets) names += (names.empty() ? "" : ", ") + q.name;
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
