// cerebellum quantize --source SRC.gguf (--budget Q4_K_M|7.4MB|3.5bpw | --fit 16GiB@8192) --text CALIB [--text ...]
//   --out OUT.gguf [--eval-text T] [--run-dir DIR] [--journal M.jsonl] [--force] [--card]
// measure -> allocate -> build -> gate against the same-size stock mix.
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/card/card.h"
#include "cerebellum/common/error.h"
#include "cerebellum/quantize/quantize.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {

struct QuantizeArgs {
  QuantizeOptions o;
  std::vector<std::string> texts, domains, eval_texts, eval_domains, targets = o.measure.targets, promote = o.measure.promote, bench_tasks;
  std::string plan = measure::to_string(o.measure.plan), max_vram, max_memory;
  bool card = false;
};

// What beat (or tied) ours at the gate, per eval text.
std::string beaten_by(const QuantizeResult& r) {
  std::string names;
  for (const GateDomain& g : r.domains) {
    std::vector<const EvalRecord*> all = {&g.baseline};
    for (const auto& e : g.rivals) all.push_back(&e);
    std::string here;
    for (const auto* e : all) {
      if (e->kld_mean <= g.ours.kld_mean) here += (here.empty() ? "" : ", ") + e->name;
    }
    if (!here.empty()) names += (names.empty() ? "" : "; ") + (r.domains.size() > 1 ? g.domain + ": " : "") + here;
  }
  std::string why = names.empty() ? "" : "not better than " + names;
  if (r.task_gate && !r.task_gate->ships) why += (why.empty() ? "" : "; ") + r.task_gate->reason;
  return why.empty() ? "larger than the stock baseline" : why;
}

void print_result(const QuantizeResult& r) {
  fmt::print("budget      {}\n", human_bytes(r.budget_bytes));
  for (const GateDomain& g : r.domains) {
    fmt::print("eval text   {} ({}){}\n", g.domain, g.eval_text, g.ships ? "" : ": ours does not win here");
    fmt::print("{:<22} {:>14} {:>12} {:>22} {:>10} {:>10} {:>7}\n", "model", "bytes", "PPL", "KLD vs F16 (nats)",
               "p99", "p99.9", "top-1");
    std::vector<const EvalRecord*> rows = {&g.ours, &g.baseline};
    for (const auto& e : g.rivals) rows.push_back(&e);
    for (const auto* e : rows) {
      fmt::print("{:<22} {:>14} {:>12.4f} {:>11.6f} ± {:.6f} {:>10.5f} {:>10.5f} {:>7.4f}\n", e->name, e->size_bytes,
                 e->ppl, e->kld_mean, e->kld_se, e->kld_p99, e->kld_p999, e->top1);
    }
    fmt::print("paired ΔKLD (ours - stock) {:+.6f} ± {:.6f} nats; KLD {:.1f}% {}\n", g.delta_kld,
               g.delta_kld_se, 100 * std::abs(g.kld_reduction), g.kld_reduction >= 0 ? "lower" : "higher");
  }
  if (r.predicted_delta_kld) {
    fmt::print("interaction check: predicted ΔKLD vs the measurement base {:+.6f} (additive model, "
               "calibration text); measured vs stock {} {:+.6f} (first eval text)\n",
               *r.predicted_delta_kld, r.baseline_preset, r.delta_kld);
  }
  if (r.refine && !r.refine->rounds.empty()) {
    const RefineReport& f = *r.refine;
    int remeasured = 0, moved = 0;
    for (const auto& x : f.rounds) remeasured += x.n_remeasured, moved += x.n_moved;
    fmt::print("refine: {} round(s), {} measurements re-measured, {} extra chunks ({:.0f}% of the sweep's {}), "
               "{} tensor moves; stopped: {}, {} tensors still marginal\n", f.rounds.size(), remeasured,
               f.extra_chunks, 100.0 * f.extra_chunks / std::max<int64_t>(1, f.sweep_chunks), f.sweep_chunks, moved,
               f.stopped, f.marginal_left.size());
  }
  if (r.search) {
    fmt::print("correction: {} round(s), moves started from the {} plan\n", r.search->n_rounds, r.search->start_from);
    const std::string predicted = r.predicted_delta_kld ? fmt::format("predicted ΔKLD vs base {:+.6f} -> {:+.6f}, ",
                                                                        r.search->predicted_before,
                                                                        r.search->predicted_after)
                                                        : "";
    fmt::print("search: {} of {} moves kept ({:.1f} s); {}measured ΔKLD vs base {:+.6f} -> {:+.6f} (calibration "
               "chunks)\n", r.search->n_accepted, r.search->n_evals, r.search->elapsed_s, predicted,
               r.search->measured_before, r.search->measured_after);
  }
  if (r.fit_check) {
    for (const auto& p : r.fit_check->pools) {
      fmt::print("fit         {}: {} with a {}-token context (llama.cpp, file loaded){}\n", p.name,
                 human_bytes(p.measured_bytes()), r.fit->spec.n_ctx_tokens,
                 p.capacity_bytes ? fmt::format(" of {} less a {} margin", human_bytes(p.capacity_bytes),
                                                human_bytes(p.margin_bytes)) : std::string());
    }
    fmt::print("run it with {}\n", deploy_args(r.fit->placement.settings));
  }
  if (r.task_gate) fmt::print("task gate   {} ({})\n", r.task_gate->ships ? "ships" : "REGRESSION", r.task_gate->reason);
  fmt::print("verdict     {}\n", r.ships ? (r.fit ? "ships (beats the largest stock mix that fits the same deployment and every rival that fits it, on every eval text)" : "ships (beats the same-size stock mix and every rival at our bytes on every eval text)")
                                         : "DOES NOT SHIP (" + beaten_by(r) + ")");
  fmt::print("output      {}\nevidence    {}\n", r.written ? r.out : "(not written)", r.run_dir);
}

void run(QuantizeArgs& a, const std::string& command_line) {
  QuantizeOptions& o = a.o;
  measure::MeasureOptions& m = o.measure;
  m.texts = texts_with_domains(a.texts, a.domains, "--domain");
  o.gate.eval_texts = texts_with_domains(a.eval_texts, a.eval_domains, "--eval-domain");
  m.targets = split_commas(a.targets);
  m.promote = split_commas(a.promote);
  m.plan = measure::parse_plan_level(a.plan);
  o.gate.bench.tasks = split_commas(a.bench_tasks);
  for (const auto& t : o.gate.bench.tasks) bench::find_task(t);  // a typo fails before the sweep
  if (!a.max_vram.empty()) m.max_device_bytes = parse_budget_bytes(a.max_vram, 0);
  if (!a.max_memory.empty()) m.max_host_bytes = parse_budget_bytes(a.max_memory, 0);
  o.command_line = command_line;
  o.logger = stderr_logger();
  ProgressPrinter progress;
  o.progress = progress.fn();
  const QuantizeResult r = run_quantize(o);
  progress.finish();
  if (a.card && r.written) {
    card::CardOptions co;
    co.speed.n_threads = m.n_threads;
    co.speed.n_gpu_layers = m.n_gpu_layers;
    const auto cr = card::render_card(r.run_dir, r.run_dir + "/CARD.md", co, o.logger, o.progress);
    progress.finish();
    (void)cr;
    o.logger.info(fmt::format("card: {}/CARD.md", r.run_dir));
  }
  print_result(r);
  if (!r.ships && !o.gate.force) {
    throw GateError(fmt::format("the plan ({} B, KLD {:.6f}) is {}; nothing written (use --force to write anyway)",
                                r.ours.size_bytes, r.ours.kld_mean, beaten_by(r)));
  }
}

// The gate's flags: what ours is compared with, on what, and the task gate.
void add_gate_options(CLI::App* cmd, QuantizeArgs& a) {
  cmd->add_option("--eval-chunks", a.o.gate.eval_chunks, "chunks of the eval text for the gate")->capture_default_str();
  cmd->add_option("--curve", a.o.gate.curve_presets, "extra stock mixes to evaluate for the card's curve");
  a.o.gate.bench.task.data_dir = "../shared/data";
  cmd->add_option("--bench", a.bench_tasks, "task gate: bench tasks (comma list, e.g. code-identifiers); a significant "
                  "regression against the baseline (paired McNemar) does not ship");
  cmd->add_option("--bench-limit", a.o.gate.bench.task.limit, "questions per task gate task (0 = all)")
      ->capture_default_str();
  cmd->add_option("--data", a.o.gate.bench.task.data_dir, "shared data folder for --bench")->capture_default_str();
  cmd->add_flag("!--no-rivals", a.o.gate.rivals,
                "gate against the same-size stock mix only, not also the best stock preset of each family "
                "within our bytes and the weight-error-only plan");
  cmd->add_flag("--force", a.o.gate.force, "write the output even if it does not beat the stock mix");
}

void setup_quantize(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  auto* cmd = app.add_subcommand("quantize", "measure, allocate, build and gate, end to end");
  cmd->add_option("--source", a->o.source, "full-precision GGUF")->required();
  auto* budget = cmd->add_option("--budget", a->o.allocate.budget,
                                 "file size: a stock preset (its size), 7.4MB, 7400000, 3.5bpw")->capture_default_str();
  add_fit_options(cmd, a->o.allocate.fit);
  cmd->add_option("--min-decode-speed", a->o.allocate.min_decode_tokens_per_s,
                  "the plan decodes at least this many tokens/s on this machine, by a table measured on uniform "
                  "mixes (cached); 0 = no limit")->capture_default_str();
  cmd->get_option("--fit")->excludes(budget);
  cmd->add_option("--text", a->texts, "calibration text (repeat for several domains)");
  cmd->add_option("--domain", a->domains, "domain names for the --text files (default: file stems)");
  cmd->add_option("--eval-text", a->eval_texts, "held-out text for the gate; repeat for several domains, ours must "
                  "ship on each (default: first --text)");
  cmd->add_option("--eval-domain", a->eval_domains, "domain names for the --eval-text files (default: file stems)");
  cmd->add_option("--out", a->o.out, "output GGUF")->required();
  cmd->add_option("--run-dir", a->o.run_dir, "evidence directory (default: OUT without .gguf + .run)");
  cmd->add_option("--journal", a->o.journal, "measurements to reuse/resume (default: RUN_DIR/measurements.jsonl)");
  cmd->add_option("--objective", a->o.allocate.objective, "general | DOMAIN | d1:w1,d2:w2")->capture_default_str();
  cmd->add_option("--noise", a->o.allocate.noise, "noisy measurements: bayes (shrunk towards the quantization-error model "
                  "by their uncertainties), clamp (|delta| < z*se -> 0), shrink, keep")->capture_default_str();
  cmd->add_option("--noise-z", a->o.allocate.noise_z, "clamp/shrink: deltas within z standard errors count as 0")->capture_default_str();
  cmd->add_option("--constraints", a->o.allocate.constraints, "constraints JSON (cerebellum.constraints/1)");
  cmd->add_option("--quant-error", a->o.allocate.quant_error, "auto | none | TABLE.json (see allocate)")->capture_default_str();
  cmd->add_option("--refine-rounds", a->o.refine.max_rounds,
                  "rounds re-measuring the tensors the plan is marginal on with twice the chunks, then re-solving (0 = off)")
      ->capture_default_str()->check(CLI::Range(0, 100));
  cmd->add_option("--refine-z", a->o.refine.z, "marginal: an alternative within this many standard errors")
      ->capture_default_str()->check(CLI::Range(0.01, 100.0));
  cmd->add_option("--refine-max-extra", a->o.refine.max_extra_chunks_frac,
                  "extra chunks the refinement may spend, as a fraction of the sweep's")
      ->capture_default_str()->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--correction-rounds", a->o.search.correction_rounds,
                  "re-solves with the model's promotion/demotion factors fitted to measured plans (0 = off)")
      ->capture_default_str();
  cmd->add_option("--search-evals", a->o.search.max_evals, "moves the local search measures (0 = off)")
      ->capture_default_str();
  cmd->add_option("--search-chunks", a->o.search.n_chunks, "calibration chunks per search measurement")
      ->capture_default_str();
  cmd->add_option("--search-seconds", a->o.search.max_seconds, "time limit of the search (0 = none)")
      ->capture_default_str();
  cmd->add_flag("--no-measure", a->o.allocate.weight_error_only,
                "no sweep: allocate the weight-error-only plan (allocate --proxy), then search and gate as usual");
  cmd->add_option("--imatrix", a->o.allocate.imatrix_path, "importance matrix for ours and the baseline alike");
  cmd->add_option("--recipe-from", a->o.recipe_from, "skip measure/allocate: build and re-bench this recipe");
  cmd->add_option("--base", a->o.measure.base, "base mix the measurements ablate from (auto: the k-quant stock "
                  "mix with the largest file within the budget)")->capture_default_str();
  cmd->add_option("--targets", a->targets, "ablation types (default, with --promote unset: the two k-quant types "
                  "below the base's main type)");
  cmd->add_option("--promote", a->promote, "promotion types (default, with --targets unset: up to three k-quant "
                  "types above the base's main type)");
  cmd->add_option("--plan", a->plan, "tensors|groups|layers|auto")->capture_default_str();
  cmd->add_option("--ctx", a->o.measure.ctx, "tokens per chunk")->capture_default_str();
  cmd->add_option("--min-chunks", a->o.measure.stop.min_chunks, "adaptive stopping: at least")->capture_default_str();
  cmd->add_option("--max-chunks", a->o.measure.stop.max_chunks, "adaptive stopping: at most")->capture_default_str();
  cmd->add_option("--threads", a->o.measure.n_threads, "threads (0 = every CPU this run may use)")->capture_default_str();
  cmd->add_option("--gpu-layers", a->o.measure.n_gpu_layers, "layers offloaded to the GPU in every evaluation (999 = all)")
      ->capture_default_str();
  cmd->add_option("--max-vram", a->max_vram, "device memory cap per loaded model, e.g. 24GiB (default: none)");
  cmd->add_flag("--cpu-repack", a->o.measure.cpu_repack,
                "CPU-only runs: the sweep repacks the base mix's matrix weights as stock llama.cpp does, where the "
                "CPU offers no AMX (about 2x faster; the base mix is then held in memory instead of read from its "
                "file layer by layer)");
  cmd->add_option("--max-memory", a->max_memory, "refuse before measuring when the projected host memory exceeds this");
  cmd->add_option("--reference-model", a->o.measure.reference_model,
                  "reference model when not --source, e.g. your Q8_0 when the F16 does not fit RAM");
  add_gate_options(cmd, *a);
  cmd->add_flag("--card", a->card, "render RUN_DIR/CARD.md afterwards");
  cmd->callback([a, cmd] {
    std::string line = "cerebellum quantize";
    for (const auto* opt : cmd->get_options()) {
      for (const auto& v : opt->results()) line += " " + opt->get_name() + " " + v;
    }
    run(*a, line);
  });
}

}  // namespace

CB_REGISTER_COMMAND("quantize", 5, setup_quantize);

}  // namespace cb::cli
