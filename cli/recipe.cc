// cerebellum recipe --model M [--preset P] [--recipe R] [--set name=type]... [--json]
// cerebellum recipe --list-presets [--json]
// Prints a fully resolved per-tensor recipe (text form reusable as
// llama-quantize --tensor-type-file and cerebellum build --recipe).
#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/quant_types.h"
#include "cerebellum/inspect/inspect.h"
#include "cerebellum/recipe/recipe.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {

struct RecipeArgs {
  std::string model;
  std::string preset;
  std::string recipe;
  std::vector<std::string> sets;
  bool with_imatrix = false;
  bool json = false;
  bool fallback = false;
  bool list_presets = false;
};

// llama-quantize's presets (common/quant_types.cc): name, file type, and
// whether quantize's gate considers it as the same-size stock baseline.
void list_presets(bool json) {
  nlohmann::json j = nlohmann::json::array();
  for (const StockMix& m : stock_mixes()) {
    if (json) {
      j.push_back({{"name", m.name}, {"ftype", m.ftype}, {"family", m.family}, {"size_baseline", m.size_baseline},
                   {"alias_of", m.alias_of.empty() ? nlohmann::json(nullptr) : nlohmann::json(m.alias_of)}});
    } else {
      fmt::print("{}{}{}\n", m.name, m.size_baseline ? "  (size baseline)" : "",
                 m.alias_of.empty() ? "" : "  (= " + m.alias_of + ")");
    }
  }
  if (json) print_json(j);
}

void run_recipe(const RecipeArgs& args) {
  if (args.list_presets) return list_presets(args.json);
  if (args.model.empty()) throw UsageError("recipe needs --model (or --list-presets)");
  const Logger logger = stderr_logger();
  const ModelInfo model = inspect_model(args.model);
  Recipe recipe;
  if (!args.recipe.empty()) recipe = load_recipe(args.recipe);
  if (!args.preset.empty()) recipe.base = args.preset;
  std::string sets;
  for (const auto& s : args.sets) sets += s + "\n";
  const Recipe extra = parse_recipe_text(sets, "--set");
  recipe.rules.insert(recipe.rules.end(), extra.rules.begin(), extra.rules.end());
  ResolveOptions options;
  options.with_imatrix = args.with_imatrix;
  options.fallback_exact_names = args.fallback;
  options.logger = logger;
  const ResolvedRecipe resolved = resolve_recipe(recipe, model, options);
  if (args.json) {
    auto j = recipe_json(resolved.types());
    for (const auto& [name, a] : resolved.tensors) {
      if (!a.fallback_reason.empty()) {
        j["fallbacks"][name] = {{"requested", a.requested_type}, {"type", a.type}, {"reason", a.fallback_reason}};
      }
    }
    print_json(j);
  } else {
    fmt::print("{}", recipe_text(resolved.types()));
  }
}

void setup_recipe(CLI::App& app) {
  auto args = std::make_shared<RecipeArgs>();
  auto* cmd = app.add_subcommand("recipe", "resolve a preset / recipe to explicit per-tensor types");
  cmd->add_option("--model", args->model, "GGUF model the recipe is for");
  cmd->add_flag("--list-presets", args->list_presets, "list llama-quantize's presets and exit");
  cmd->add_option("--preset", args->preset, "stock llama-quantize preset to start from (Q4_K_M, Q6_K, ...)");
  cmd->add_option("--recipe", args->recipe, "recipe file (text name=type lines or JSON)");
  cmd->add_option("--set", args->sets, "override: NAME_OR_REGEX=TYPE (repeatable, applied last)");
  cmd->add_flag("--with-imatrix", args->with_imatrix, "resolve the preset as stock does when given an imatrix");
  cmd->add_flag("--fallback", args->fallback, "let exact names fall back like stock instead of failing");
  cmd->add_flag("--json", args->json, "print JSON (schema cerebellum.recipe/1)");
  cmd->callback([args] { run_recipe(*args); });
}

}  // namespace

CB_REGISTER_COMMAND("recipe", 35, setup_recipe);

}  // namespace cb::cli
