// cerebellum transfer --recipe R --from-layers N --to MODEL.gguf --out R2
#include <fmt/format.h>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {

struct TransferArgs {
  std::string recipe, to, out;
  int from_layers = 0;
};

// Recipe text, a recipe JSON or a plan.json: per-tensor rules (the recipe reader's).
std::vector<RecipeRule> load_lines(const std::string& path) {
  const Recipe r = load_recipe(path);
  if (!r.base.empty()) {
    throw InputError(fmt::format("{}: a recipe on base preset '{}' has no per-tensor types to transfer; "
                                 "transfer its tensor_types.txt or plan.json", path, r.base));
  }
  return r.rules;
}

void run_transfer(const TransferArgs& a) {
  const ModelInfo target = inspect_model(a.to);
  const TransferResult r = transfer_recipe(load_lines(a.recipe), a.from_layers, target);
  const Logger log = stderr_logger();
  for (const auto& n : r.notes) log.warn(n);
  std::string out = fmt::format("# cerebellum transfer: {} ({} layers) -> {} ({} layers){}\n", a.recipe,
                                a.from_layers, a.to, target.n_layers, r.verbatim ? ", verbatim" : "");
  for (const auto& l : r.lines) out += l.pattern + "=" + l.type + "\n";
  write_file_atomic(a.out, out);
  log.info(fmt::format("wrote {} lines to {} ({} notes)", r.lines.size(), a.out, r.notes.size()));
}

void setup_transfer(CLI::App& app) {
  auto a = std::make_shared<TransferArgs>();
  auto* cmd = app.add_subcommand("transfer", "map a per-tensor recipe to a sibling model or finetune");
  cmd->add_option("--recipe", a->recipe, "recipe text or plan.json")->required();
  cmd->add_option("--from-layers", a->from_layers, "layers of the model the recipe was made for")->required();
  cmd->add_option("--to", a->to, "target GGUF")->required();
  cmd->add_option("--out", a->out, "output recipe text")->required();
  cmd->callback([a] { run_transfer(*a); });
}

}  // namespace

CB_REGISTER_COMMAND("transfer", 45, setup_transfer);

}  // namespace cb::cli
