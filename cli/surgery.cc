// cerebellum surgery --in MODEL.gguf --set NAME=TYPE ... --out OUT.gguf
// Recasts single tensors of an existing GGUF; everything else copied byte for byte.
#include <fmt/format.h>

#include "cerebellum/build/build.h"
#include "cerebellum/common/error.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {

struct SurgeryArgs {
  SurgeryOptions options;
  std::vector<std::string> sets;
  bool json = false;
};

void run_surgery(SurgeryArgs& a) {
  if (a.sets.empty()) throw UsageError("surgery: give at least one --set NAME=TYPE");
  if (!a.options.dry_run && a.options.out.empty()) throw UsageError("surgery: --out is required unless --dry-run");
  std::string sets;
  for (const auto& s : a.sets) sets += s + "\n";
  a.options.sets = parse_recipe_text(sets, "--set").rules;
  ProgressPrinter printer;
  const BuildReport r = surgery(a.options, stderr_logger(), printer.fn());
  printer.finish();
  if (a.json) {
    print_json(to_json(r));
    return;
  }
  for (const auto& t : r.tensors) {
    if (t.from_type != t.to_type) fmt::print("{:<36} {:>7} -> {:<7} {:>12} bytes\n", t.name, t.from_type, t.to_type, t.size_bytes);
  }
  fmt::print("{} {}\n", r.dry_run ? "predicted size" : "wrote " + r.out, human_bytes(r.output_size_bytes));
}

void setup_surgery(CLI::App& app) {
  auto a = std::make_shared<SurgeryArgs>();
  auto* cmd = app.add_subcommand("surgery", "recast single tensors of a GGUF, copy the rest byte for byte");
  cmd->add_option("--in", a->options.in, "input GGUF (may be quantized)")->required();
  cmd->add_option("--set", a->sets, "NAME_OR_REGEX=TYPE (repeatable)")->required();
  cmd->add_option("--out", a->options.out, "output GGUF");
  cmd->add_option("--imatrix", a->options.imatrix_path, "importance matrix (GGUF or legacy .dat)");
  cmd->add_option("--threads", a->options.n_threads, "quantizer threads (default: all)");
  cmd->add_flag("--dry-run", a->options.dry_run, "print the exact output size, write nothing");
  cmd->add_flag("--json", a->json, "print the report as JSON");
  cmd->callback([a] { run_surgery(*a); });
}

}  // namespace

CB_REGISTER_COMMAND("surgery", 55, setup_surgery);

}  // namespace cb::cli
