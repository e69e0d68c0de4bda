// cerebellum build --source SRC.gguf --recipe R [--base PRESET] [--imatrix FILE]
//                  --out OUT.gguf [--dry-run] [--threads N] [--json]
#include <fmt/format.h>

#include "cerebellum/build/build.h"
#include "cerebellum/common/error.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {

struct BuildArgs {
  BuildOptions options;
  std::string recipe;
  std::vector<std::string> sets;
  bool json = false;
};

void print_report(const BuildReport& r) {
  fmt::print("{:<36} {:<22} {:>7} -> {:<7} {:>12}  {}\n", "tensor", "shape", "from", "to", "bytes", "note");
  for (const auto& t : r.tensors) {
    std::string shape;
    for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? "x" : "") + std::to_string(t.shape[i]);
    std::string note = t.fallback_reason.empty() ? "" : fmt::format("fallback from {}: {}", t.requested_type, t.fallback_reason);
    if (t.used_imatrix) note = "imatrix" + std::string(note.empty() ? "" : "; ") + note;
    fmt::print("{:<36} {:<22} {:>7} -> {:<7} {:>12}  {}\n", t.name, shape, t.from_type, t.to_type, t.size_bytes, note);
  }
  fmt::print("\n{} {}  (source {}), {} fallback(s), {:.2f} s\n", r.dry_run ? "predicted size" : "wrote " + r.out,
             human_bytes(r.output_size_bytes), human_bytes(r.source_size_bytes), r.n_fallbacks, r.elapsed_s);
  if (r.dry_run) fmt::print("output_size_bytes {}\n", r.output_size_bytes);
}

void run_build(BuildArgs& a) {
  if (a.recipe.empty() && a.options.base.empty() && a.sets.empty()) {
    throw UsageError("build: give --recipe FILE and/or --base PRESET (or --set NAME=TYPE)");
  }
  if (!a.options.dry_run && a.options.out.empty()) throw UsageError("build: --out is required unless --dry-run");
  if (!a.recipe.empty()) a.options.recipe = load_recipe(a.recipe);
  std::string sets;
  for (const auto& s : a.sets) sets += s + "\n";
  const Recipe extra = parse_recipe_text(sets, "--set");
  a.options.recipe.rules.insert(a.options.recipe.rules.end(), extra.rules.begin(), extra.rules.end());
  ProgressPrinter printer;
  const BuildReport report = build_model(a.options, stderr_logger(), printer.fn());
  printer.finish();
  if (a.json) {
    print_json(to_json(report));
  } else {
    print_report(report);
  }
}

void setup_build(CLI::App& app) {
  auto a = std::make_shared<BuildArgs>();
  auto* cmd = app.add_subcommand("build", "write a GGUF with a recipe's per-tensor types (stock-identical quantizers)");
  cmd->add_option("--source", a->options.source, "source GGUF (F16/BF16/F32, or quantized)")->required();
  cmd->add_option("--recipe", a->recipe, "recipe: name=type lines (llama-quantize --tensor-type-file) or JSON");
  cmd->add_option("--base", a->options.base, "stock preset applied before the recipe (Q4_K_M, Q6_K, ...)");
  cmd->add_option("--set", a->sets, "extra rule NAME_OR_REGEX=TYPE, applied after the recipe (repeatable)");
  cmd->add_option("--imatrix", a->options.imatrix_path, "importance matrix (GGUF or legacy .dat)");
  cmd->add_option("--out", a->options.out, "output GGUF (written via a temp file + rename)");
  cmd->add_option("--threads", a->options.n_threads, "quantizer threads (default: all)");
  cmd->add_option("--file-type", a->options.file_type, "general.file_type as a preset name (default: base / dominant type)");
  cmd->add_flag("--fallback", a->options.fallback_exact_names, "let exact tensor names fall back like stock instead of failing");
  cmd->add_flag("--dry-run", a->options.dry_run, "print the exact output size and per-tensor types, write nothing");
  cmd->add_flag("--json", a->json, "print the report as JSON (schema cerebellum.build/1)");
  cmd->callback([a] { run_build(*a); });
}

}  // namespace

CB_REGISTER_COMMAND("build", 50, setup_build);

}  // namespace cb::cli
