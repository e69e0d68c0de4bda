#include "cerebellum/recipe/recipe.h"
#include "cerebellum/common/schemas.h"

#include <algorithm>
#include <filesystem>
#include <cctype>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/common/pattern.h"
#include "cerebellum/common/quant_types.h"
#include "engine/stock_quantize.h"

namespace cb {
namespace {


// ggml_quantize_chunk handles these although they have no reference row
// quantizer (TypeInfo::can_quantize is false): they need an imatrix instead.
const std::set<std::string> kImatrixOnlyQuantizers = {"iq2_xxs", "iq2_xs", "iq1_s", "iq1_m"};

RecipeRule make_rule(const std::string& pattern, const std::string& type, int line,
                     const std::string& where) {
  if (pattern.empty()) throw RecipeError(fmt::format("{}: missing tensor name before '='", where));
  const auto t = find_type(type);
  if (!t) throw RecipeError(fmt::format("{}: unknown tensor type '{}' for '{}'", where, type, pattern));
  if (!t->can_quantize && !kImatrixOnlyQuantizers.count(t->name)) {
    throw RecipeError(fmt::format("{}: ggml cannot quantize to type '{}' ('{}')", where, t->name, pattern));
  }
  check_pattern(pattern, where);
  return {pattern, t->name, line};
}

}  // namespace

Recipe parse_recipe_text(std::string_view text, const std::string& source) {
  Recipe recipe;
  recipe.source = source;
  // A UTF-8 byte-order mark (editors on Windows) is not part of the first name.
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  std::istringstream in{std::string(text)};
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);  // stock also separates entries by spaces
    std::string word;
    while (words >> word) {
      const auto eq = word.find('=');
      const std::string where = fmt::format("{}:{}", source, n);
      if (eq == std::string::npos) {
        throw RecipeError(fmt::format("{}: expected name=type, got '{}'", where, word));
      }
      recipe.rules.push_back(make_rule(word.substr(0, eq), word.substr(eq + 1), n, where));
    }
  }
  return recipe;
}

namespace {

Recipe parse_recipe_json_checked(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw RecipeError(fmt::format("{}: a JSON recipe must be an object", source));
  const std::string schema = j.value("schema", "");
  if (schema != kRecipeSchema && schema != kPlanSchema) {
    throw RecipeError(fmt::format("{}: schema '{}' is not {} (or {})", source, schema, kRecipeSchema, kPlanSchema));
  }
  Recipe recipe;
  recipe.source = source;
  recipe.base = j.value("base", "");
  if (j.contains("rules")) {
    for (const auto& r : j.at("rules")) {
      recipe.rules.push_back(make_rule(r.at("pattern").get<std::string>(), r.at("type").get<std::string>(), 0,
                                       source));
    }
  }
  if (j.contains("types")) {
    for (const auto& [name, type] : j.at("types").items()) {
      recipe.rules.push_back(make_rule(name, type.get<std::string>(), 0, source));
    }
  }
  if (recipe.base.size() && !find_stock_mix(recipe.base)) {
    throw RecipeError(fmt::format("{}: unknown base preset '{}'", source, recipe.base));
  }
  return recipe;
}

}  // namespace

// A value of the wrong JSON type is the file's fault: RecipeError naming it.
Recipe parse_recipe_json(const nlohmann::json& j, const std::string& source) {
  try {
    return parse_recipe_json_checked(j, source);
  } catch (const nlohmann::json::exception& e) {
    throw RecipeError(fmt::format("{}: malformed recipe JSON ({})", source, e.what()));
  }
}

Recipe load_recipe(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {  // a directory would read as an empty recipe
    throw InputError(fmt::format("{}: not a regular file (a recipe is a text or JSON file)", path));
  }
  const std::string text = read_file(path);
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      throw RecipeError(fmt::format("{}: invalid JSON ({})", path, e.what()));
    }
    return parse_recipe_json(j, path);
  }
  return parse_recipe_text(text, path);
}

std::map<std::string, std::string> ResolvedRecipe::types() const {
  std::map<std::string, std::string> out;
  for (const auto& [name, a] : tensors) out[name] = a.type;
  return out;
}

int ResolvedRecipe::n_fallbacks() const {
  return static_cast<int>(std::count_if(tensors.begin(), tensors.end(),
                                        [](const auto& kv) { return !kv.second.fallback_reason.empty(); }));
}

std::vector<std::string> stock_preset_names() {
  std::vector<std::string> out;
  for (const auto& p : stock_mixes()) out.push_back(p.name);
  return out;
}

std::map<std::string, std::string> stock_preset_types(const std::string& model_path,
                                                      const std::string& preset, bool with_imatrix) {
  // Each call is a llama-quantize dry run; `quantize` sizes every preset
  // several times (budget, baseline choice, curve). Remembered per process
  // for an unchanged file.
  static std::mutex mutex;
  static std::map<std::string, std::map<std::string, std::string>> memo;
  const std::string file = file_identity(model_path);
  const std::string key = fmt::format("{}|{}|{}", file, preset, with_imatrix);
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = memo.find(key); !file.empty() && it != memo.end()) return it->second;
  }
  auto types = engine::stock_preset_plan(model_path, preset, with_imatrix, Logger{}).types;
  std::lock_guard<std::mutex> lock(mutex);
  if (!file.empty()) memo[key] = types;
  return types;
}

std::string recipe_text(const std::map<std::string, std::string>& types,
                        const std::vector<std::string>& header) {
  std::string out;
  for (const auto& h : header) out += "# " + h + "\n";
  for (const auto& [name, type] : types) {
    // Stock treats each left side as an unanchored regex, first match wins:
    // anchor a name that would also match another tensor ("output.weight"
    // inside "blk.0.attn_output.weight") so both readers agree.
    bool ambiguous = false;
    const Pattern as_regex(name, "tensor name");
    for (const auto& [other, t] : types) {
      if (other != name && as_regex.search(other)) {
        ambiguous = true;
        break;
      }
    }
    const std::string left = ambiguous ? fmt::format("^{}$", escape_pattern(name)) : name;
    out += fmt::format("{}={}\n", left, type);
  }
  return out;
}

nlohmann::json recipe_json(const std::map<std::string, std::string>& types, const std::string& base) {
  nlohmann::json j = {{"schema", kRecipeSchema}};
  if (!base.empty()) j["base"] = base;
  j["types"] = types;
  return j;
}

}  // namespace cb
