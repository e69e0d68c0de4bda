// cerebellum qerror --source SRC.gguf [--imatrix F] [--types q2_K,iq4_xs,...]
//   [--max-elements N] [--threads N] --out TABLE.json
// The quantization-error table of the allocator's damage model (docs/allocate.md).
#include <fmt/format.h>

#include "cerebellum/build/quant_error.h"
#include "cerebellum/common/io.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {

struct QerrorArgs {
  std::string source, out;
  std::vector<std::string> types;
  QuantErrorOptions o;
};

void setup_qerror(CLI::App& app) {
  auto a = std::make_shared<QerrorArgs>();
  auto* cmd = app.add_subcommand("qerror", "relative quantization error per tensor and type (allocate's table)");
  cmd->add_option("--source", a->source, "full-precision GGUF")->required();
  cmd->add_option("--imatrix", a->o.imatrix_path, "weight the quantizer and the error by this imatrix");
  cmd->add_option("--types", a->types, "types to price, comma-separated (default: allocate's candidate types)")
      ->delimiter(',');
  cmd->add_option("--min-elements", a->o.min_elements_per_tensor,
                  "first row sample per tensor, in elements (evenly spaced rows)")
      ->capture_default_str();
  cmd->add_option("--max-elements", a->o.max_elements_per_tensor,
                  "largest row sample per tensor (1073741824 with --min-elements equal: exact)")
      ->capture_default_str();
  cmd->add_option("--target-rel-se", a->o.target_rel_se,
                  "double the sample while a value's relative standard error is above this")
      ->capture_default_str();
  cmd->add_option("--threads", a->o.n_threads, "threads (0 = every CPU this run may use)")->capture_default_str();
  cmd->add_option("--out", a->out, "table JSON (cerebellum.qerror/1)")->required();
  cmd->callback([a] {
    ProgressPrinter progress;
    a->o.types = a->types;
    const QuantErrorReport r = compute_quant_error_table(a->source, a->o, stderr_logger(), progress.fn());
    progress.finish();
    write_file_atomic(a->out, to_json(r).dump(1) + "\n");
    fmt::print(stderr, "wrote {} ({} values over {} tensors, {} sampled, largest relative se {:.3f}, {:.1f} s)\n",
               a->out, r.n_values, r.n_tensors, r.n_sampled_tensors, r.max_rel_se, r.elapsed_s);
  });
}

}  // namespace

CB_REGISTER_COMMAND("qerror", 42, setup_qerror);

}  // namespace cb::cli
