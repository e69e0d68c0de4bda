// Recipe resolution: preset first (from the engine's own dry run), then rules.

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/pattern.h"
#include "cerebellum/common/quant_types.h"
#include "cerebellum/recipe/recipe.h"
#include "engine/stock_quantize.h"

namespace cb {
namespace {

// Stock's tensor_type_fallback (src/llama-quant.cpp) as data.
struct FallbackRow {
  const char* from;
  const char* to;
};
constexpr FallbackRow kFallbacks[] = {
    {"iq1_s", "iq4_nl"}, {"iq1_m", "iq4_nl"}, {"iq2_xxs", "iq4_nl"}, {"iq2_xs", "iq4_nl"},
    {"iq2_s", "iq4_nl"}, {"iq3_xxs", "iq4_nl"}, {"iq3_s", "iq4_nl"},  {"iq4_xs", "iq4_nl"},
    {"q2_0", "q4_0"},    {"q2_K", "q4_0"},    {"q3_K", "q4_0"},      {"tq1_0", "q4_0"},
    {"tq2_0", "q4_0"},   {"q4_K", "q5_0"},    {"q5_K", "q5_1"},      {"q6_K", "q8_0"},
};

// Stock's tensor_requires_imatrix (src/llama-quant.cpp) as data.
constexpr const char* kStockNeedsImatrix[] = {"iq3_xxs", "iq2_xxs", "iq2_xs", "iq2_s", "iq1_m", "iq1_s"};
constexpr const char* kStockImatrixExempt[] = {"token_embd.weight", "output.weight"};

std::string fallback_reason(const TypeInfo& type, int64_t row_elems) {
  return fmt::format("rows of {} elements do not fit {} blocks of {}", row_elems, type.name,
                     type.block_elems);
}

void apply_rule(const RecipeRule& rule, const TensorInfo& t, const std::string& where, bool exact,
                const ResolveOptions& options, TensorAssignment& a) {
  const TypeInfo& type = type_by_name(rule.type);
  a.requested_type = type.name;
  a.origin = where;
  a.fallback_reason.clear();
  if (row_fits(type, t.row_elems())) {
    a.type = type.name;
    return;
  }
  if (exact && !options.fallback_exact_names) {
    throw RecipeError(fmt::format("{}: tensor {} cannot take type {}: {}", where, t.name, type.name,
                                  fallback_reason(type, t.row_elems())));
  }
  a.type = fallback_type(type.name, t.row_elems());
  a.fallback_reason = fallback_reason(type, t.row_elems());
  options.logger.warn(fmt::format("{}: {} -> falling back from {} to {} ({})", where, t.name, type.name,
                                  a.type, a.fallback_reason));
}

ResolvedRecipe start_from_base(const Recipe& recipe, const ModelInfo& model, const ResolveOptions& options) {
  ResolvedRecipe out;
  out.base = recipe.base;
  for (const auto& t : model.tensors) out.tensors[t.name] = {t.type, t.type, "source", ""};
  if (recipe.base.empty()) return out;
  const auto plan = engine::stock_preset_plan(model.path, recipe.base, options.with_imatrix, options.logger);
  const std::string origin = "preset " + recipe.base;
  for (auto& [name, a] : out.tensors) {
    auto it = plan.types.find(name);
    if (it == plan.types.end()) {
      throw EngineError(fmt::format("{}: stock {} dry run did not list tensor {}", model.path, recipe.base, name));
    }
    a = {it->second, it->second, origin, ""};
  }
  for (const auto& f : plan.fallbacks) {
    auto it = out.tensors.find(f.tensor);
    if (it == out.tensors.end()) continue;
    it->second.requested_type = f.requested_type;
    it->second.fallback_reason = f.reason;
  }
  return out;
}

}  // namespace

bool type_needs_imatrix(const std::string& type, const std::string& tensor_name) {
  const TypeInfo& ti = type_by_name(type);
  if (ti.requires_imatrix) return true;
  for (const char* name : kStockImatrixExempt) {
    if (tensor_name == name) return false;
  }
  for (const char* t : kStockNeedsImatrix) {
    if (ti.name == t) return true;
  }
  return false;
}

std::string fallback_type(const std::string& type_name, int64_t row_elems) {
  const TypeInfo& type = type_by_name(type_name);
  if (row_fits(type, row_elems)) return type.name;
  std::string to;
  for (const auto& row : kFallbacks) {
    if (type.name == row.from) to = row.to;
  }
  if (to.empty()) {
    if (type.block_elems > 32) {
      throw RecipeError(fmt::format("no fallback is defined for type {} (rows of {} elements)", type.name, row_elems));
    }
    to = type.name;  // a 32-block type has no smaller block: F16 below
  }
  return row_fits(type_by_name(to), row_elems) ? type_by_name(to).name : std::string("f16");
}

ResolvedRecipe resolve_recipe(const Recipe& recipe, const ModelInfo& model, const ResolveOptions& options) {
  ResolvedRecipe out = start_from_base(recipe, model, options);
  for (const auto& rule : recipe.rules) {
    const std::string where = rule.line > 0 ? fmt::format("{}:{}", recipe.source, rule.line) : recipe.source;
    if (const TensorInfo* t = model.find(rule.pattern)) {
      if (t->shape.size() < 2 && type_by_name(rule.type).name != t->type) {
        throw RecipeError(fmt::format("{}: tensor {} is 1-D ({}); only 2-D and 3-D weights can be recast",
                                      where, t->name, t->type));
      }
      apply_rule(rule, *t, where, /*exact=*/true, options, out.tensors[t->name]);
      continue;
    }
    const Pattern re(rule.pattern, where);
    int n_matched = 0;
    for (const auto& t : model.tensors) {
      if (t.shape.size() < 2 || !re.search(t.name)) continue;  // norms, biases stay
      apply_rule(rule, t, where, /*exact=*/false, options, out.tensors[t.name]);
      ++n_matched;
    }
    if (n_matched == 0) {
      throw RecipeError(fmt::format("{}: '{}' matches no 2-D/3-D tensor of {} ({} tensors)", where,
                                    rule.pattern, model.path, model.tensors.size()));
    }
  }
  return out;
}

}  // namespace cb
