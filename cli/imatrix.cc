// cerebellum imatrix --model M.gguf --text T --out F [--chunks N] [--ctx 512] [--threads N]
#include <filesystem>

#include <fmt/format.h>

#include "cerebellum/common/io.h"
#include "cerebellum/eval/imatrix_compute.h"
#include "cerebellum/inspect/inspect.h"
#include "cerebellum/imatrix/imatrix.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {

struct ImatrixArgs {
  std::string model, text, out, format;
  eval::ImatrixOptions opts;
};

void setup_imatrix(CLI::App& app) {
  auto a = std::make_shared<ImatrixArgs>();
  auto* cmd = app.add_subcommand("imatrix", "importance matrix from calibration text (GGUF, as llama-imatrix)");
  cmd->add_option("--model", a->model, "GGUF model (full precision; read a layer at a time through a q4_0 "
                                       "skeleton built next to --out and removed)")->required();
  cmd->add_option("--text", a->text, "calibration text")->required();
  cmd->add_option("--out", a->out, "output imatrix: GGUF, or legacy .dat when the name ends in .dat")->required();
  cmd->add_option("--format", a->format, "gguf | dat (default: from --out's extension)");
  cmd->add_option("--chunks", a->opts.max_chunks, "chunks (-1 = all)")->capture_default_str();
  cmd->add_option("--ctx", a->opts.ctx, "tokens per chunk")->capture_default_str();
  cmd->add_option("--threads", a->opts.n_threads, "threads (0 = every CPU this run may use)")->capture_default_str();
  cmd->add_flag("--process-output", a->opts.include_output, "also collect output.weight");
  cmd->callback([a] {
    check_output_path(a->out, {a->model, a->text});
    const ImatrixFormat format = imatrix_format_for(a->out, a->format);
    // Loaded as a q4_0 skeleton computing with the model's own bytes a layer
    // at a time (ImatrixOptions::skeleton_types): the peak is the skeleton's
    // (~0.28x an F16), not the model's. Built next to the output.
    for (const TensorInfo& t : inspect_model(a->model).tensors) {
      const bool is_float = t.type == "f16" || t.type == "bf16" || t.type == "f32";
      if (is_float && t.stock_quantizable && t.shape.size() >= 2 && t.row_elems() % 32 == 0) {
        a->opts.skeleton_types[t.name] = "q4_0";
      }
    }
    a->opts.work_dir = std::filesystem::absolute(a->out).parent_path().string();
    ProgressPrinter progress;
    const Imatrix im = eval::compute_imatrix(a->model, read_file(a->text), a->text, a->opts,
                                             stderr_logger(), progress.fn());
    progress.finish();
    if (format == ImatrixFormat::kDat) {
      write_imatrix_dat(im, a->out);
    } else {
      write_imatrix_gguf(im, a->out);
    }
    fmt::print(stderr, "wrote {} ({}, {} tensors, {} chunks of {})\n", a->out,
               format == ImatrixFormat::kDat ? "legacy .dat" : "GGUF", im.entries.size(), im.chunk_count,
               im.chunk_size);
  });
}

}  // namespace

CB_REGISTER_COMMAND("imatrix", 45, setup_imatrix);

}  // namespace cb::cli
