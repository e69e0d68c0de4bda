// Recipes: which ggml type each tensor of a model gets.
//
// Text form = llama-quantize's --tensor-type-file (`name=type`, separated by
// newlines or spaces) plus `#` comments and blank lines. A left side that is
// a tensor's exact name applies to that tensor; anything else is an
// ECMAScript regex searched in tensor names (case preserved: stock
// lowercases patterns, which turns \S \W \D into \s \w \d; we do not).
// Later rules override earlier ones. Type names are case-insensitive.
// JSON form: {"schema":"cerebellum.recipe/1","base":"Q4_K_M",
//             "rules":[{"pattern":"...","type":"q4_K"}],"types":{"name":"type"}}
// (a cerebellum.plan/1 file is accepted too: its "types").
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cerebellum/common/log.h"
#include "cerebellum/inspect/inspect.h"

namespace cb {

struct RecipeRule {
  std::string pattern;  // exact tensor name or regex
  std::string type;     // canonical ggml type name ("q4_K")
  int line = 0;         // 1-based line in the source text (0: not from text)
};

struct Recipe {
  std::string base;                // stock preset applied first ("Q4_K_M"); "" = keep source types
  std::vector<RecipeRule> rules;   // applied in order on top of the base
  std::string source = "<recipe>"; // file name, for messages
};

// Parsers; throw RecipeError naming source:line (malformed line, unknown type, bad regex).
Recipe parse_recipe_text(std::string_view text, const std::string& source = "<text>");
Recipe parse_recipe_json(const nlohmann::json& j, const std::string& source = "<json>");
// Reads a file: JSON when it starts with '{', text otherwise. InputError if unreadable.
Recipe load_recipe(const std::string& path);

// One tensor's final type and where it came from.
struct TensorAssignment {
  std::string type;             // final ggml type name
  std::string requested_type;   // what the preset/rule asked for (differs on fallback)
  std::string origin;           // "source", "preset Q4_K_M", "recipe.txt:12"
  std::string fallback_reason;  // non-empty when rows did not fit requested_type
};

struct ResolvedRecipe {
  std::string base;                                // preset name or ""
  std::map<std::string, TensorAssignment> tensors; // every tensor of the model
  std::map<std::string, std::string> types() const;
  int n_fallbacks() const;
};

struct ResolveOptions {
  // Stock picks other types for some IQ mixes when it has an imatrix.
  bool with_imatrix = false;           // default: no imatrix
  // A rule naming one tensor exactly with a type its rows cannot take is an
  // error unless this is set (then it falls back as stock does). Regex
  // rules and presets always fall back as stock does.
  bool fallback_exact_names = false;   // default: error
  Logger logger;                       // default: silent
};

// Resolves against a model: preset types first (from the pinned llama.cpp's
// own dry run), then each rule. Throws RecipeError: a rule matching no tensor,
// a type a tensor's rows cannot take (exact names), a 1-D tensor recast, a
// type ggml cannot quantize to.
ResolvedRecipe resolve_recipe(const Recipe& recipe, const ModelInfo& model,
                              const ResolveOptions& options = {});

// The per-tensor types the pinned llama-quantize would pick for `preset`.
std::map<std::string, std::string> stock_preset_types(const std::string& model_path,
                                                      const std::string& preset,
                                                      bool with_imatrix = false);
// Preset names llama-quantize accepts.
std::vector<std::string> stock_preset_names();

// Stock's tensor_type_fallback as data: the type used when rows of
// `row_elems` do not fit `type`; returns `type` when they fit. Throws
// RecipeError when stock defines no fallback.
std::string fallback_type(const std::string& type, int64_t row_elems);

// Whether writing `type` into tensor `tensor_name` needs an imatrix entry for
// it: stock's tensor_requires_imatrix (iq3_xxs, iq2_xxs, iq2_xs, iq2_s, iq1_m,
// iq1_s; token_embd.weight and output.weight exempt) and ggml's own
// ggml_quantize_requires_imatrix (iq2_xxs, iq2_xs, iq1_s; never exempt).
bool type_needs_imatrix(const std::string& type, const std::string& tensor_name);

// Text form of a full assignment (exact names, one per line), reusable as
// llama-quantize --tensor-type-file; `header` lines are written as comments.
std::string recipe_text(const std::map<std::string, std::string>& types,
                        const std::vector<std::string>& header = {});
nlohmann::json recipe_json(const std::map<std::string, std::string>& types, const std::string& base = "");

}  // namespace cb
