// cerebellum allocate (--measurements M.jsonl | --proxy [--base Q4_K_M]) --source SRC.gguf (--budget 7.4MB|7400000|3.5bpw | --fit ...)
//   [--objective general|code|en|wiki:0.4,code:0.6] [--constraints C.json]
//   [--quant-error auto|none|TABLE.json] [--write-quant-error FILE] [--imatrix F]
//   [--search-text CALIB --search-evals 32 --search-chunks 8 --search-seconds 0]
//   [--fit 16GiB@8192 | gpu=24GiB,cpu=48GiB@8192 --kv-type f16 --parallel 1 --ubatch 512 --margin 1GiB]
//   --out plan.json --tensor-types tensor_types.txt
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/allocate/plan_for.h"
#include "cerebellum/build/build.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/quantize/quantize.h"
#include "cerebellum/quantize/search.h"
#include "cerebellum/measure/merge.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {

struct AllocateArgs {
  std::vector<std::string> measurements;  // one journal, or the shards of one sweep (merged in memory)
  std::string source;
  AllocateOptions o;              // the library's options and defaults
  std::string write_quant_error;  // where to save the table used
  std::string write_curves;       // where to save the damage curves
  std::string out, tensor_types;
  bool no_greedy = false;
  bool proxy = false;             // the weight-error-only plan: no measurements
  std::string base = "Q4_K_M";    // --proxy: the base mix plans are priced against
  std::string search_text;  // calibration text: refine the plan by measured local search
  SearchOptions search;
};


// The journal (several: merged as `measure merge` would, gaps reported), its
// repairs reported; MismatchError when it is another model's.
Journal read_journal_of(const AllocateArgs& a, const Logger& log) {
  Journal journal;
  if (a.measurements.size() == 1) {
    journal = read_journal(a.measurements.front());
    if (journal.torn_tail) log.warn(fmt::format("{}: dropped a torn last line", a.measurements.front()));
    for (const auto& d : journal.duplicates) log.warn("duplicate record " + d);
  } else {
    measure::MergeResult r = measure::merge_journals(a.measurements);
    for (const auto& d : r.duplicates) log.warn("duplicate: " + d);
    for (const auto& s : r.missing_shards) log.warn("missing shard " + s + ": its units are priced as unmeasured");
    if (!r.missing_units.empty()) {
      log.warn(fmt::format("{} unit(s) the shards were given are not measured (first: {})", r.missing_units.size(),
                           r.missing_units.front()));
    }
    journal = std::move(r.journal);
  }
  const std::string sha = sha256_file(a.source);
  if (!journal.header.model_sha256.empty() && journal.header.model_sha256 != sha) {
    throw MismatchError(fmt::format("{} was measured on model {}, not {} ({})", fmt::join(a.measurements, ", "),
                                    journal.header.model_sha256, a.source, sha));
  }
  return journal;
}

// --search-text: the solver's plan refined by measured moves.
Plan search(const AllocateArgs& a, const AllocationProblem& p, const Plan& plan, int64_t budget, int64_t overhead,
            nlohmann::json& extra, const Logger& log) {
  ProgressPrinter progress;
  SearchOptions so = a.search;
  so.text_path = a.search_text;
  so.imatrix_path = a.o.imatrix_path;
  so.n_threads = a.o.n_threads;
  so.work_dir = std::filesystem::path(a.out).parent_path().string();  // the built base mix, next to the plan
  so.logger = log;
  so.progress = progress.fn();
  const SearchResult sr = refine_plan(a.source, p, choice_of(p, plan), budget - overhead, so);
  progress.finish();
  extra["search"] = to_json(sr, p);
  extra["initial_plan"] = plan_summary_json(plan, budget);
  log.info(fmt::format("search: {} of {} moves kept in {:.1f} s; calibration KLD {:.5f} -> {:.5f} (predicted "
                       "ΔKLD vs base {:+.5f} -> {:+.5f}, measured {:+.5f} -> {:+.5f})",
                       sr.n_accepted, sr.evals.size(), sr.elapsed_s, sr.initial_kld, sr.final_kld,
                       sr.initial_predicted, sr.final_predicted, sr.initial_measured, sr.final_measured));
  return searched_plan(p, plan, sr);
}

void run_allocate(const AllocateArgs& a) {
  const Logger log = stderr_logger();
  std::vector<std::string> inputs = a.measurements;
  inputs.insert(inputs.end(), {a.source, a.o.constraints});
  check_output_path(a.tensor_types, inputs, "--tensor-types");
  inputs.push_back(a.tensor_types);
  check_output_path(a.out, inputs);
  if (!a.tensor_types.empty() && a.tensor_types == a.out) {
    throw UsageError("--out and --tensor-types name the same file");
  }
  if (a.o.budget.empty() == a.o.fit.spec.empty()) throw UsageError("allocate needs --budget or --fit (one of them)");
  if (a.proxy == !a.measurements.empty()) {
    throw UsageError("allocate needs --measurements M.jsonl, or --proxy for the weight-error-only plan (not both)");
  }
  Journal journal;
  if (!a.proxy) journal = read_journal_of(a, log);
  const ModelInfo model = inspect_model(a.source);
  if (a.proxy) journal = weight_error_journal(model, a.base);
  if (!a.write_quant_error.empty() && a.o.quant_error == "none") {
    throw UsageError("--write-quant-error needs --quant-error auto or a file");
  }
  ProgressPrinter progress;
  AllocateOptions o = a.o;
  o.greedy_baseline = !a.no_greedy;
  o.weight_error_only = a.proxy;
  o.logger = log;
  o.progress = progress.fn();
  const Allocation al = plan_for(journal, model, o);
  progress.finish();
  const AllocationProblem& p = al.problem;
  if (al.quant_error && !a.write_quant_error.empty()) {
    write_file_atomic(a.write_quant_error, to_json(*al.quant_error).dump(1) + "\n");
  }
  if (!a.write_curves.empty()) write_file_atomic(a.write_curves, curves_to_json(p).dump(1) + "\n");
  if (!al.baselines_skipped.empty()) log.warn(fmt::format("baselines skipped: {}", al.baselines_skipped));
  const int64_t budget = al.budget_bytes;
  Plan plan = al.plan;
  nlohmann::json extra = {{"source", a.source}, {"measurements", a.measurements.size() == 1 ? nlohmann::json(a.measurements.front())
                                                                         : nlohmann::json(a.measurements)},
                          {"baselines", baselines_json(al)}};
  if (a.proxy) extra["damage"] = "weight_error_only";
  if (al.fit) {
    extra["fit"] = fit_json(*al.fit);
    log.info(describe_fit(*al.fit));
    if (!a.search_text.empty() && !al.fit->file_budget_equivalent) {
      throw UsageError("--search-text with two bounded --fit pools: the search moves bytes under one file budget");
    }
  }
  if (al.speed) {
    extra["speed"] = speed_plan_json(*al.speed, al.speed_table, a.o.min_decode_tokens_per_s);
    log.info(fmt::format("speed: predicted {:.1f} tokens/s (floor {:.1f}; {:.1f} without it), gap to the bound {:.5f} nats",
                         al.speed->predicted_tokens_per_s, a.o.min_decode_tokens_per_s,
                         al.speed->unconstrained_tokens_per_s,
                         al.speed->plan.predicted_delta_kld - al.speed->lower_bound_kld));
    if (!a.search_text.empty()) throw UsageError("--search-text with --min-decode-speed: the search ignores speed");
  }
  if (!a.search_text.empty()) plan = search(a, p, plan, budget, al.overhead_bytes, extra, log);
  write_file_atomic(a.out, plan_to_json(plan, p, extra).dump(2) + "\n");
  // No comment line: stock llama-quantize reads the file token by token and
  // rejects anything that is not name=type.
  if (!a.tensor_types.empty()) write_file_atomic(a.tensor_types, tensor_types_text(plan));
  const std::string bound = plan.method == "mckp" ? fmt::format(" (lower bound {:.5f})", plan.solver.lower_bound) : "";
  log.info(fmt::format("plan: {} (budget {}), predicted ΔKLD {:.5f} nats{}; model ({}) LOTO MAE {:.5f} over {} points",
                       human_bytes(plan.size_bytes), human_bytes(budget), plan.predicted_delta_kld, bound,
                       p.model_error.mse_source, p.model_error.loto_mae_kld, p.model_error.n_loto));
}

void setup_allocate(CLI::App& app) {
  auto a = std::make_shared<AllocateArgs>();
  auto* cmd = app.add_subcommand("allocate", "spend a byte budget where measured damage matters");
  cmd->add_option("--measurements", a->measurements,
                  "measurements.jsonl; several: the shards of one sweep (`measure --shard`), merged as `measure merge` would");
  cmd->add_flag("--proxy", a->proxy,
                "no measurements: the weight-error-only plan (damage = elements x Δ relative MSE from the "
                "quantization-error table, imatrix-weighted with --imatrix; docs/allocate.md)");
  cmd->add_option("--base", a->base, "with --proxy: the base mix (stock preset or recipe)")->capture_default_str();
  cmd->add_option("--source", a->source, "source GGUF the measurements were taken on")->required();
  auto* budget = cmd->add_option("--budget", a->o.budget,
                                 "file size: 7.4MB, 7400000, 7MiB, 3.5bpw or a stock preset (Q4_K_M: its size)");
  add_fit_options(cmd, a->o.fit);
  cmd->add_option("--min-decode-speed", a->o.min_decode_tokens_per_s,
                  "the plan decodes at least this many tokens/s on this machine, by a table measured on uniform "
                  "mixes (cached); 0 = no limit")->capture_default_str();
  cmd->get_option("--fit")->excludes(budget);
  cmd->add_option("--objective", a->o.objective, "general | DOMAIN | d1:w1,d2:w2")->capture_default_str();
  cmd->add_option("--constraints", a->o.constraints, "constraints JSON (cerebellum.constraints/1)");
  cmd->add_option("--quant-error", a->o.quant_error,
                  "auto (compute from --source, imatrix-weighted with --imatrix) | none (2^-2bpw proxy, "
                  "k-quant ladder only) | TABLE.json (cerebellum qerror)")->capture_default_str();
  cmd->add_option("--write-quant-error", a->write_quant_error, "save the quantization-error table used (JSON)");
  cmd->add_option("--write-curves", a->write_curves, "save the damage curves (JSON)");
  cmd->add_option("--threads", a->o.n_threads, "threads for the table (0 = every CPU this run may use)")->capture_default_str();
  cmd->add_option("--gpu-layers", a->o.speed_gpu_layers,
                  "with --min-decode-speed: layers on the GPU while timing the table (999 = all); 0 = the CPU")
      ->capture_default_str();
  cmd->add_option("--imatrix", a->o.imatrix_path, "the imatrix the build will use (its metadata bytes count)");
  cmd->add_option("--noise", a->o.noise, "noisy measurements: bayes (shrunk towards the quantization-error model "
                  "by their uncertainties), clamp (|delta| < z*se -> 0), shrink, keep")->capture_default_str();
  cmd->add_option("--noise-z", a->o.noise_z, "clamp/shrink: deltas within z standard errors count as 0")->capture_default_str();
  cmd->add_flag("--no-greedy", a->no_greedy, "skip the original-greedy comparison in plan.json");
  cmd->add_option("--search-text", a->search_text, "calibration text: refine the plan by measured local search");
  cmd->add_option("--search-evals", a->search.max_evals, "moves measured by the search")->capture_default_str();
  cmd->add_option("--correction-rounds", a->search.correction_rounds,
                  "with --search-text: re-solves with the model's promotion/demotion factors fitted to measured "
                  "plans, at most this many times (0 = off)")->capture_default_str();
  cmd->add_option("--search-chunks", a->search.n_chunks, "chunks per measurement")->capture_default_str();
  cmd->add_option("--search-first-chunk", a->search.first_chunk, "first chunk of the search text")
      ->capture_default_str();
  cmd->add_option("--search-seconds", a->search.max_seconds, "time limit of the search (0 = none)")
      ->capture_default_str();
  cmd->add_option("--search-z", a->search.accept_z, "keep a move when ΔKLD < -z·se")->capture_default_str();
  cmd->add_option("--out", a->out, "plan.json")->required();
  cmd->add_option("--tensor-types", a->tensor_types, "tensor_types.txt for llama-quantize / build");
  cmd->callback([a] { run_allocate(*a); });
}

}  // namespace

CB_REGISTER_COMMAND("allocate", 40, setup_allocate);

}  // namespace cb::cli
