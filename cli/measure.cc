// cerebellum measure --source SRC.gguf --base PRESET|RECIPE --text T [--text T2]
//   [--domain en,code] --plan tensors|groups|layers|auto --targets q2_K[,..]
//   [--promote q6_K,..] [--ctx 512] [--max-chunks 40] [--min-chunks 3] [--top-k 32]
//   [--mode resident|simulated|exact] [--probes] [--resume] [--shard K/N]
//   [--shared-reference J.jsonl] --out measurements.jsonl
// cerebellum measure export-original --journal M.jsonl --out ablation_results.json
// cerebellum measure import-original --in ablation_results.json --out M.jsonl
// cerebellum measure merge J1.jsonl J2.jsonl ... --out M.jsonl
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/measure/measure.h"
#include "cerebellum/measure/merge.h"
#include "cerebellum/measure/mpi.h"
#include "cerebellum/measure/original.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {

struct MeasureArgs {
  measure::MeasureOptions o;
  std::string source, base = o.base, plan = measure::to_string(o.plan), mode = measure::to_string(o.mode), out,
      max_vram, max_memory, shard;
  int64_t prefetch_mib = o.prefetch_max_bytes >> 20;
  std::vector<std::string> texts, domains, targets, promote;
};

void run_measure_command(MeasureArgs& a) {
  if (a.source.empty() || a.texts.empty() || a.out.empty()) {
    throw UsageError("measure needs --source, --text and --out (or a subcommand)");
  }
  measure::MeasureOptions& o = a.o;
  o.source_path = a.source;
  o.base = a.base;
  o.out_path = a.out;
  o.plan = measure::parse_plan_level(a.plan);
  o.mode = measure::parse_eval_mode(a.mode);
  if (!a.max_vram.empty()) o.max_device_bytes = parse_budget_bytes(a.max_vram, 0);
  if (!a.max_memory.empty()) o.max_host_bytes = parse_budget_bytes(a.max_memory, 0);
  o.prefetch_max_bytes = a.prefetch_mib << 20;
  if (!a.targets.empty() || !a.promote.empty()) {  // else the library's default targets
    o.targets = split_commas(a.targets);
    o.promote = split_commas(a.promote);
  }
  o.texts = texts_with_domains(a.texts, a.domains, "--domain");
  if (!a.shard.empty()) o.shard = measure::parse_shard(a.shard);
  o.logger = stderr_logger();
  ProgressPrinter progress;
  o.progress = progress.fn();
  const bool mpi = measure::launcher_world_size() > 1;
  const measure::MeasureSummary s = mpi ? measure::run_measure_mpi(o) : measure::run_measure(o);
  progress.finish();
  if (mpi && !measure::is_launcher_rank0()) return;  // rank 0 reports the merged journal
  print_json({{"journal", o.out_path}, {"measured", s.n_measured}, {"resumed", s.n_resumed},
              {"probes", s.n_probes}, {"chunks_evaluated", s.chunks_evaluated}, {"prefetched_swaps", s.n_prefetched},
              {"stopped", s.stopped}, {"elapsed_s", s.elapsed_s},
              {"eval_split_s", {{"decode", s.eval_timings.decode_s}, {"rows", s.eval_timings.fetch_s},
                                {"score", s.eval_timings.score_s}, {"decodes", s.eval_timings.n_decodes},
                                {"overlapped_scorings", s.eval_timings.n_overlapped},
                                {"swap", s.eval_timings.swap_s}, {"convert_ahead", s.eval_timings.convert_ahead_s}}}});
}

void setup_export(CLI::App* parent) {
  auto a = std::make_shared<std::pair<std::string, std::string>>();
  auto type = std::make_shared<std::string>();
  auto* cmd = parent->add_subcommand("export-original",
                                     "journal -> the original project's ablation_results.json");
  cmd->add_option("--journal", a->first, "measurement journal")->required();
  cmd->add_option("--out", a->second, "ablation_results.json to write")->required();
  cmd->add_option("--type", *type, "ablation type to export (default: the first found)");
  cmd->callback([a, type] {
    const Journal j = read_journal(a->first);
    const nlohmann::json out = measure::export_original(j, {.type = *type});
    write_file_atomic(a->second, out.dump(2) + "\n");
  });
}

void setup_import(CLI::App* parent) {
  struct Args {
    std::string in, out, type = "q2_K", domain = "en", base, model;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = parent->add_subcommand("import-original",
                                     "the original project's ablation_results.json -> journal");
  cmd->add_option("--in", a->in, "ablation_results.json")->required();
  cmd->add_option("--out", a->out, "journal to write (must not exist)")->required();
  cmd->add_option("--type", a->type, "ablation type, when the file does not say")->capture_default_str();
  cmd->add_option("--domain", a->domain, "domain of a single-domain file")->capture_default_str();
  cmd->add_option("--base", a->base, "base name, when the file does not say");
  cmd->add_option("--model", a->model, "GGUF the file measured: resolves regexes, records sha256");
  cmd->callback([a] {
    if (std::filesystem::exists(a->out)) throw UsageError(a->out + " exists; not overwriting");
    measure::ImportOriginalOptions io{.type = a->type, .domain = a->domain, .base = a->base};
    std::optional<ModelInfo> model;
    if (!a->model.empty()) {
      model = inspect_model(a->model);
      io.model = &*model;
      io.model_sha256 = sha256_file(a->model);
    }
    nlohmann::json in;
    try {
      in = nlohmann::json::parse(read_file(a->in));
    } catch (const nlohmann::json::exception& e) {
      throw InputError(fmt::format("{}: not JSON ({})", a->in, e.what()));
    }
    const Journal j = measure::import_original(in, io);
    JournalWriter w(a->out, j.header);
    for (const auto& b : j.baselines) w.append(b);
    for (const auto& m : j.measurements) w.append(m);
  });
}

// measure merge J1 J2 ... --out M.jsonl: the shards' journals as one.
void setup_merge(CLI::App* parent) {
  auto paths = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  auto allow_missing = std::make_shared<bool>(false);
  auto* cmd = parent->add_subcommand("merge", "join the journals of one sweep's shards into one");
  cmd->add_option("journals", *paths, "journals (measurements of one sweep: same model, base, texts, settings)")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", *out, "merged journal")->required();
  cmd->add_flag("--allow-missing", *allow_missing, "write even when units or shards are missing (exit 0)");
  cmd->callback([paths, out, allow_missing] {
    check_output_path(*out, *paths);
    const measure::MergeResult r = measure::merge_journals(*paths);
    const Logger log = stderr_logger();
    for (const auto& d : r.duplicates) log.warn("duplicate: " + d);
    for (const auto& s : r.missing_shards) log.warn("missing shard " + s + ": no journal given for it");
    for (const auto& u : r.missing_units) log.warn("missing unit: " + u);
    const bool complete = r.missing_shards.empty() && r.missing_units.empty();
    if (!complete && !*allow_missing) {
      throw InputError(fmt::format("{} shard(s) and {} unit(s) missing (listed above): resume the shards that "
                                   "stopped (`measure --shard K/N --resume`), or pass --allow-missing; nothing written",
                                   r.missing_shards.size(), r.missing_units.size()));
    }
    write_file_atomic(*out, measure::journal_text(r.journal));
    print_json({{"journal", *out}, {"inputs", r.inputs}, {"measurements", r.n_measurements},
                {"duplicates", r.duplicates.size()}, {"missing_units", r.missing_units.size()},
                {"missing_shards", r.missing_shards}, {"complete", complete}});
  });
}

void setup_measure(CLI::App& app) {
  auto a = std::make_shared<MeasureArgs>();
  auto* cmd = app.add_subcommand(
      "measure", "ablation sweep: per-unit damage (ΔKLD, Δln PPL, top-1) vs the F16 reference");
  measure::MeasureOptions& o = a->o;
  cmd->add_option("--source", a->source, "full-precision GGUF (reference and swap source)");
  cmd->add_option("--base", a->base, "stock preset (Q4_K_M) or recipe file")->capture_default_str();
  cmd->add_option("--text", a->texts, "calibration text (repeat for several domains)");
  cmd->add_option("--domain", a->domains, "domain names, one per --text (comma list)");
  cmd->add_option("--plan", a->plan, "tensors|groups|layers|auto")->capture_default_str();
  cmd->add_option("--targets", a->targets, "ablation types (comma list)")->default_str(fmt::format("{}", fmt::join(o.targets, ",")));
  cmd->add_option("--promote", a->promote, "promotion types (comma list)");
  cmd->add_option("--tensors", o.tensor_regex, "only tensors matching this regex");
  cmd->add_option("--limit", o.limit_units, "first N units per type/domain by order (0 = all)");
  cmd->add_option("--ctx", o.ctx, "tokens per chunk")->capture_default_str();
  cmd->add_option("--max-chunks", o.stop.max_chunks, "chunk cap per unit")->capture_default_str();
  cmd->add_option("--min-chunks", o.stop.min_chunks, "chunks before stopping")->capture_default_str();
  cmd->add_option("--step-chunks", o.stop.step_chunks, "chunks between later checks")
      ->capture_default_str();
  cmd->add_option("--blocks", o.stop.blocks_per_chunk, "SE samples per chunk (token blocks)")
      ->capture_default_str();
  cmd->add_option("--first-scored", o.first_scored,
                  "first scored position per chunk (-1 = ctx/8; ctx/2 = llama-perplexity's)")
      ->capture_default_str();
  cmd->add_option("--rel-tol", o.stop.rel_tol, "stop when se <= rel*|Δ| + abs")->capture_default_str();
  cmd->add_option("--abs-tol", o.stop.abs_tol_nats, "absolute ΔKLD tolerance, nats")->capture_default_str();
  cmd->add_option("--sep-z", o.stop.sep_z, "stop when |Δ| >= z*se (0 = off)")->capture_default_str();
  cmd->add_option("--top-k", o.top_k, "reference log-probs kept per token")->capture_default_str();
  cmd->add_option("--threads", o.n_threads, "threads (0 = every CPU this run may use)")->capture_default_str();
  cmd->add_option("--gpu-layers", o.n_gpu_layers, "layers offloaded to the GPU (999 = all; CPU builds ignore it)")
      ->capture_default_str();
  cmd->add_option("--max-vram", a->max_vram,
                  "device memory cap per loaded model, e.g. 24GiB: the F16 reference pass offloads only the layers "
                  "that fit (default: no cap)");
  cmd->add_option("--prefetch-mib", a->prefetch_mib,
                  "with --gpu-layers: convert the next units (up to 32) on a background thread while this one is "
                  "evaluated, holding at most this many MiB of host memory, the heaviest units spread among the "
                  "others (0 = off)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--lanes", o.lanes,
                  "contexts that decode in turn, the CPU scoring one's logits while the GPU decodes the other's "
                  "chunks (0 = 2 with every layer on the GPU, else 1)")
      ->check(CLI::Range(0, 2))
      ->capture_default_str();
  cmd->add_flag("--cpu-repack", o.cpu_repack,
               "CPU-only runs: repack the base mix's matrix weights as stock llama.cpp does, where the CPU offers "
               "no AMX (about 2x faster evaluation; the base mix is then held in memory instead of read from its "
               "file layer by layer)");
  cmd->add_option("--reference-model", o.reference_model,
                  "reference model when not --source, e.g. your Q8_0 when the F16 does not fit RAM "
                  "(recorded in the journal; swaps still convert from --source)");
  cmd->add_option("--max-memory", a->max_memory,
                  "refuse before starting when the projected host memory exceeds this, e.g. 32GiB");
  cmd->add_option("--mode", a->mode, "resident (base mix in real types, swaps in place) | simulated (F16 model, quant->dequant swaps) | exact (reload per unit)")->capture_default_str();
  cmd->add_flag("--probes", o.probes.enabled, "interaction probes: pairs and a ladder");
  cmd->add_option("--ladder", o.probes.ladder_max, "ladder steps")->capture_default_str();
  cmd->add_option("--reference-dir", o.reference_dir, "reference store cache (default: next to --out)");
  cmd->add_flag("--resume", o.resume, "continue an existing journal");
  cmd->add_flag("--reference-only", o.reference_only,
                "only compute the full-precision reference store(s) for every chunk a unit may reach, "
                "then stop (a later sweep with the same settings never loads the full-precision model)");
  cmd->add_option("--shard", a->shard,
                  "K/N: measure shard K (0-based) of N, a deterministic cost-balanced share of the units (a Slurm "
                  "job array: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT); join the journals with `measure merge`");
  cmd->add_option("--shared-reference", o.shared_reference,
                  "J: read the reference stores `measure --reference-only --out J` made (every shard the same), "
                  "refusing ones made for other settings");
  cmd->add_option("--out", a->out, "journal (measurements.jsonl)");
  setup_export(cmd);
  setup_merge(cmd);
  setup_import(cmd);
  cmd->callback([a, cmd] {
    for (const auto* sub : cmd->get_subcommands()) {
      if (sub->parsed()) return;
    }
    run_measure_command(*a);
  });
}

}  // namespace

CB_REGISTER_COMMAND("measure", 20, setup_measure);

}  // namespace cb::cli
