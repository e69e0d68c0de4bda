// cerebellum card --run DIR --out CARD.md: the model card of a run directory
// (docs/card.md): summary, recipe, sensitivity heatmap, quality-vs-size
// curves, benchmarks, measured speed, memory by context, artifacts, bundle.
#include <fmt/format.h>

#include "cerebellum/card/card.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {

struct CardArgs {
  std::string run_dir;
  std::string out;
  card::CardOptions options;
  bool no_speed = false;
  bool no_stock_speed = false;
  bool no_bundle = false;
};

void run_card(CardArgs& a) {
  a.options.measure_speed = !a.no_speed;
  a.options.speed_vs_stock = !a.no_stock_speed;
  a.options.write_bundle = !a.no_bundle;
  if (a.out.empty()) a.out = a.run_dir + "/CARD.md";
  ProgressPrinter progress;
  const card::CardResult r = card::render_card(a.run_dir, a.out, a.options, stderr_logger(), progress.fn());
  progress.finish();
  const Logger log = stderr_logger();
  log.info(fmt::format("wrote {} ({} figures{})", r.card_path, r.svg_paths.size(),
                       r.bundle_dir.empty() ? "" : ", bundle " + r.bundle_dir));
  if (r.speed) {
    log.info(fmt::format("speed: pp{} {:.1f} t/s, tg{} {:.1f} t/s ({} threads)", r.speed->pp_tokens,
                         r.speed->pp_tokens_per_s, r.speed->tg_tokens, r.speed->tg_tokens_per_s, r.speed->n_threads));
  }
  if (r.stock_speed && r.stock_speed->speed) {
    const card::SpeedResult& s = *r.stock_speed->speed;
    log.info(fmt::format("speed of stock {} (the gate's baseline): pp{} {:.1f} t/s, tg{} {:.1f} t/s", r.stock_speed->preset,
                         s.pp_tokens, s.pp_tokens_per_s, s.tg_tokens, s.tg_tokens_per_s));
  } else if (r.stock_speed) {
    log.warn("speed: no stock mix timed beside the build: " + r.stock_speed->note);
  }
  for (const auto& n : r.not_run) log.info("not run: " + n);
}

void setup_card(CLI::App& app) {
  auto a = std::make_shared<CardArgs>();
  auto* cmd = app.add_subcommand("card", "write the model card (Markdown + SVG figures + bundle) of a run dir");
  cmd->add_option("--run", a->run_dir, "run directory (what `cerebellum quantize` wrote)")->required();
  cmd->add_option("--out", a->out, "card path (default RUN/CARD.md); figures go to <stem>_files/ beside it");
  cmd->add_option("--threads", a->options.speed.n_threads, "threads for the speed test (0 = every CPU this run may use)")
      ->capture_default_str();
  cmd->add_option("--pp", a->options.speed.pp_tokens, "prompt tokens for the pp test")->capture_default_str();
  cmd->add_option("--tg", a->options.speed.tg_tokens, "generated tokens for the tg test")->capture_default_str();
  cmd->add_option("--reps", a->options.speed.repetitions, "timed repetitions of each test")->capture_default_str();
  cmd->add_option("--gpu-layers", a->options.speed.n_gpu_layers, "layers on the GPU for the speed test (999 = all)")
      ->capture_default_str();
  cmd->add_option("--memory-ctx", a->options.memory_ctx, "contexts for the memory table")->capture_default_str();
  cmd->add_flag("--no-speed", a->no_speed, "skip the speed measurement");
  cmd->add_flag("--no-stock-speed", a->no_stock_speed,
                "time the build alone, not next to the same-size stock mix (built from the source)");
  cmd->add_flag("--no-bundle", a->no_bundle, "do not write RUN/bundle/");
  cmd->callback([a] { run_card(*a); });
}

}  // namespace

CB_REGISTER_COMMAND("card", 90, setup_card);

}  // namespace cb::cli
