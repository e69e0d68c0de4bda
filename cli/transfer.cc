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

// A plan.json contributes its per-tensor types; anything else is recipe text.
std::vector<RecipeLine> load_lines(const std::string& path) {
  const std::string text = read_file(path);
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    if (j.value("schema", "") != kPlanSchema || !j.contains("types")) {
      throw InputError(fmt::format("{}: JSON but not a {} plan", path, kPlanSchema));
    }
    std::vector<RecipeLine> lines;
    for (const auto& [name, type] : j["types"].items()) lines.push_back({name, type.get<std::string>()});
    return lines;
  }
  return parse_recipe_lines(text, path);
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
