#include "cerebellum/quantize/quantize.h"
#include "cerebellum/common/schemas.h"

#include <chrono>
#include <filesystem>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/build/build.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/common/quant_types.h"
#include "cerebellum/eval/evaluator.h"
#include "cerebellum/inspect/inspect.h"
#include "cerebellum/quantize/search.h"
#include "cerebellum/recipe/recipe.h"
#include "quantize/gate.h"
#include "quantize/refine.h"

namespace cb {
namespace fs = std::filesystem;
namespace {

// The options with each stage's struct complete: the shared settings (set
// once, in measure and allocate) handed on, paths and callbacks filled in.
QuantizeOptions staged(const QuantizeOptions& in, const std::string& run_dir, const std::string& journal) {
  QuantizeOptions o = in;
  measure::MeasureOptions& m = o.measure;
  m.source_path = o.source;
  m.out_path = journal;
  m.reference_dir = run_dir;
  m.resume = fs::exists(journal);
  m.logger = o.logger;
  m.progress = o.progress;
  o.allocate.n_threads = m.n_threads;
  o.allocate.speed_gpu_layers = m.n_gpu_layers;
  o.allocate.logger = o.logger;
  o.allocate.progress = o.progress;
  SearchOptions& so = o.search;
  if (!m.texts.empty()) so.text_path = m.texts.front().path;
  so.ctx = m.ctx;
  so.first_chunk = m.stop.max_chunks;  // after the chunks the sweep may have read
  so.imatrix_path = o.allocate.imatrix_path;
  so.n_threads = m.n_threads;
  so.n_gpu_layers = m.n_gpu_layers;
  so.max_device_bytes = m.max_device_bytes;
  so.reference_model = m.reference_model;
  so.work_dir = run_dir;
  m.keep_base_model = true;  // the search loads it; run_quantize removes it
  so.base_model_path = measure::base_model_path(journal);
  so.logger = o.logger;
  so.progress = o.progress;
  return o;
}

std::string default_run_dir(const std::string& out) {
  fs::path p(out);
  if (p.extension() == ".gguf") p.replace_extension("");
  return p.string() + ".run";
}

// measure (or resume) the journal the plan is allocated on; its records come
// back in memory.
Journal run_sweep(const QuantizeOptions& o, const ModelInfo& model) {
  measure::MeasureSummary ms = measure::run_measure(o.measure, &model);
  o.logger.info(fmt::format("measure: {} new, {} reused measurements in {:.1f} s", ms.n_measured,
                            ms.n_resumed, ms.elapsed_s));
  return std::move(ms.journal);
}

SearchSummary summarize_search(const SearchResult& sr) {
  return {static_cast<int>(sr.evals.size()), sr.n_accepted, sr.elapsed_s, sr.initial_predicted,
          sr.initial_measured, sr.initial_measured_se, sr.final_predicted, sr.final_measured,
          sr.final_measured_se, sr.initial_kld, sr.final_kld, static_cast<int>(sr.rounds.size()), sr.start_from};
}

// The solver's plan refined by the measured search (search.json in the run dir).
Plan search_plan(const QuantizeOptions& o, const std::string& run_dir, const AllocationProblem& p,
                 const Plan& plan, nlohmann::json& extra, QuantizeResult& r) {
  const SearchResult sr = refine_plan(o.source, p, choice_of(p, plan), plan.budget_bytes - plan.fixed_overhead_bytes, o.search);
  const nlohmann::json sj = to_json(sr, p);
  write_file_atomic(run_dir + "/search.json", sj.dump(2) + "\n");
  extra["search"] = sj;
  extra["initial_plan"] = plan_summary_json(plan, plan.budget_bytes);
  r.search = summarize_search(sr);
  o.logger.info(fmt::format("search: {} of {} moves kept in {:.1f} s; predicted ΔKLD vs base {:+.5f} -> {:+.5f}, "
                            "measured {:+.5f} -> {:+.5f} (calibration)", sr.n_accepted, sr.evals.size(), sr.elapsed_s,
                            sr.initial_predicted, sr.final_predicted, sr.initial_measured, sr.final_measured));
  return searched_plan(p, plan, sr);
}

// The allocation (-> search) as our plan's per-tensor types; plan.json,
// tensor_types.txt and quant_error.json written into the run dir.
std::map<std::string, std::string> finish_plan(const QuantizeOptions& o, const Allocation& al,
                                               const std::string& run_dir, const std::string& journal_path,
                                               QuantizeResult& r) {
  if (al.quant_error) write_file_atomic(run_dir + "/quant_error.json", to_json(*al.quant_error).dump(1) + "\n");
  const AllocationProblem& p = al.problem;
  Plan plan = al.plan;
  nlohmann::json extra = {{"source", o.source}, {"measurements", journal_path}, {"baselines", baselines_json(al)}};
  if (o.allocate.weight_error_only) extra["damage"] = "weight_error_only";
  if (al.fit) {
    extra["fit"] = fit_json(*al.fit);
    o.logger.info(describe_fit(*al.fit));
  }
  if (al.speed) {
    extra["speed"] = speed_plan_json(*al.speed, al.speed_table, o.allocate.min_decode_tokens_per_s);
    o.logger.info(fmt::format("speed: predicted {:.1f} tokens/s (floor {:.1f}; {:.1f} without it)",
                              al.speed->predicted_tokens_per_s, o.allocate.min_decode_tokens_per_s,
                              al.speed->unconstrained_tokens_per_s));
  }
  const bool searchable = (!al.fit || al.fit->file_budget_equivalent) && !al.speed;
  if (!searchable) {
    o.logger.warn("--fit with two bounded pools or --min-decode-speed: the measured search and correction rounds "
                  "are skipped (they move bytes under one file budget, blind to pools and speed)");
  }
  if (searchable && (o.search.max_evals > 0 || o.search.correction_rounds > 0)) {
    plan = search_plan(o, run_dir, p, plan, extra, r);
  }
  write_file_atomic(run_dir + "/plan.json", plan_to_json(plan, p, extra).dump(2) + "\n");
  write_file_atomic(run_dir + "/tensor_types.txt", tensor_types_text(plan));
  if (!o.allocate.weight_error_only) r.predicted_delta_kld = plan.predicted_delta_kld;
  o.logger.info(fmt::format("allocate: {} bytes planned for a budget of {}{}", plan.size_bytes, al.budget_bytes,
                            o.allocate.weight_error_only
                                ? std::string()
                                : fmt::format(", predicted ΔKLD {:.5f}", plan.predicted_delta_kld)));
  return plan.types();
}

// run.json (cerebellum.run/1, docs/card.md): what the card needs to find the build.
void write_run_json(const QuantizeOptions& o, const QuantizeResult& r) {
  nlohmann::json j = {{"schema", kRunSchema},
                      {"source", {{"path", fs::absolute(o.source).string()}, {"sha256", sha256_file(o.source)}}},
                      {"budget", {{"spec", o.allocate.fit.spec.empty() ? o.allocate.budget : "--fit " + o.allocate.fit.spec},
                                  {"bytes", r.budget_bytes}}},
                      {"llama_cpp_version", "de3ff815"},
                      {"flags", {"use_extra_bufts=false", "--objective " + o.allocate.objective,
                                 "--ctx " + std::to_string(o.measure.ctx)}}};
  if (r.written) {
    j["output"] = {{"path", fs::absolute(r.out).string()}, {"sha256", sha256_file(r.out)},
                   {"size_bytes", static_cast<int64_t>(fs::file_size(r.out))}};
  }
  write_file_atomic(r.run_dir + "/run.json", j.dump(2) + "\n");
}

nlohmann::json search_json(const std::optional<SearchSummary>& s) {
  if (!s) return nullptr;
  return {{"n_evals", s->n_evals}, {"n_accepted", s->n_accepted}, {"elapsed_s", s->elapsed_s},
          {"n_correction_rounds", s->n_rounds}, {"start_from", s->start_from},
          {"before", {{"predicted_delta_kld_vs_base", s->predicted_before},
                      {"measured_delta_kld_vs_base", s->measured_before}, {"measured_se", s->measured_before_se},
                      {"kld", s->kld_before}}},
          {"after", {{"predicted_delta_kld_vs_base", s->predicted_after},
                     {"measured_delta_kld_vs_base", s->measured_after}, {"measured_se", s->measured_after_se},
                     {"kld", s->kld_after}}}};
}

}  // namespace

std::string closest_stock_preset(const std::string& source, int64_t size_bytes,
                                 const std::string& imatrix_path,
                                 std::map<std::string, int64_t>* preset_sizes) {
  // The smallest stock mix at least as large as our file: we must beat it
  // while spending no more bytes than it does.
  std::string best;
  int64_t best_size = -1;
  for (const StockMix& mix : stock_mixes()) {
    if (!mix.size_baseline) continue;
    const std::string& p = mix.name;
    const int64_t s = stock_preset_size_bytes(source, p, imatrix_path);
    if (preset_sizes) (*preset_sizes)[p] = s;
    if (s >= size_bytes && (best_size < 0 || s < best_size)) {
      best = p;
      best_size = s;
    }
  }
  return best;
}

namespace {

// The weight-error-only plan at our budget, priced with our allocation's
// quantization-error table (quant_error.json, not computed twice).
std::map<std::string, std::string> weight_error_plan(const QuantizeOptions& o, const ModelInfo& model,
                                                     const Allocation& al, const std::string& run_dir) {
  AllocateOptions w = o.allocate;
  w.budget = std::to_string(al.budget_bytes);
  w.weight_error_only = true;
  w.greedy_baseline = false;
  if (al.quant_error) w.quant_error = run_dir + "/quant_error.json";
  w.progress = {};
  return plan_for(weight_error_journal(model, o.measure.base), model, w).plan.types();
}

// What ours must beat besides the baseline (GateOptions::rivals).
std::vector<Contender> gate_rivals(const QuantizeOptions& o, const ModelInfo& model, int64_t size_bytes,
                                   const std::string& baseline, const std::map<std::string, std::string>& weight_error,
                                   std::map<std::string, int64_t>& preset_sizes, const std::optional<FitReport>& fit) {
  std::vector<Contender> out;
  if (!o.gate.rivals) return out;
  for (const auto& p : rival_presets(model, size_bytes, o.allocate.imatrix_path, baseline, &preset_sizes,
                                     fit ? &*fit : nullptr)) {
    out.push_back({"stock " + p, "stock", {}, p});
  }
  if (!weight_error.empty()) out.push_back({"weight-error only", "weight_error_only", weight_error, ""});
  return out;
}

// The sweep centred on the budget (issue 13: measure where the decision is
// made; from a Q4_K_M base a Q5_K_M-sized plan lost to stock Q5_K_M, 1.14x
// its KLD, and won from a Q5_K_M base): base "auto" = the k-quant stock mix
// with the largest file within the budget (the smallest when none fits);
// no targets and no promotions = the ladder rungs around its main type.
void center_sweep(QuantizeOptions& o, const ModelInfo& model, int64_t budget_bytes) {
  measure::MeasureOptions& m = o.measure;
  if (m.base == "auto") {
    std::string within, smallest;
    int64_t within_bytes = -1, smallest_bytes = std::numeric_limits<int64_t>::max();
    for (const StockMix& mix : stock_mixes()) {
      if (mix.family != "k" || !mix.size_baseline || !mix.alias_of.empty()) continue;
      const int64_t s = stock_preset_size_bytes(model.path, mix.name, o.allocate.imatrix_path);
      if (s <= budget_bytes && s > within_bytes) within = mix.name, within_bytes = s;
      if (s < smallest_bytes) smallest = mix.name, smallest_bytes = s;
    }
    m.base = within.empty() ? smallest : within;
  }
  if (m.targets.empty() && m.promote.empty()) {
    const auto around = measure::sweep_around(m.base);
    m.targets = around ? around->targets : std::vector<std::string>{"q2_K", "q3_K"};
    m.promote = around ? around->promote : std::vector<std::string>{"q5_K", "q6_K", "q8_0"};
  }
  o.logger.info(fmt::format("sweep around base {}: ablate to {}, promote to {}", m.base, fmt::join(m.targets, ","),
                            fmt::join(m.promote, ",")));
}

// A budget no plan can meet is refused before hours of measuring.
void check_budget_before_sweep(const QuantizeOptions& o, const ModelInfo& model, int64_t budget_bytes) {
  std::string base_name;
  const auto base = measure::resolve_base(o.measure.base, model, &base_name);
  const std::string& imatrix = o.allocate.imatrix_path;
  const AllocationProblem p0 =
      unmeasured_problem(model, base, load_constraints(o.allocate.constraints), imatrix_tensor_names(imatrix));
  check_budget_in_range(budget_bytes, budget_range(p0, calibrate_fixed_overhead(model, p0, imatrix)));
}

void check_quantize_inputs(const QuantizeOptions& o) {
  const measure::MeasureOptions& m = o.measure;
  if (m.texts.empty() && o.recipe_from.empty()) throw UsageError("quantize needs --text (calibration)");
  if (o.out.empty()) throw UsageError("quantize needs --out");
  if (m.texts.empty() && o.gate.eval_texts.empty()) throw UsageError("quantize --recipe-from needs --eval-text");
  if (!o.recipe_from.empty() && !o.allocate.fit.spec.empty()) {
    throw UsageError("--fit plans a recipe; with --recipe-from, check the file with `cerebellum eval` instead");
  }
  if (!o.recipe_from.empty() && o.allocate.min_decode_tokens_per_s > 0) {
    throw UsageError("--min-decode-speed plans a recipe; with --recipe-from, time the file with `cerebellum speed`");
  }
  check_speed_floor_options(o.allocate);
  std::vector<std::string> inputs = {o.source, o.allocate.imatrix_path, m.reference_model, o.journal};
  for (const auto& t : m.texts) inputs.push_back(t.path);
  for (const auto& t : o.gate.eval_texts) {
    inputs.push_back(t.path);
    // Found before hours of measuring, not at the gate.
    if (read_file(t.path).empty()) throw InputError(t.path + ": empty eval text: nothing to gate on");
  }
  check_output_path(o.out, inputs);
}

// A file removed when this goes away, e.g. on a failure.
struct RemovedAtExit {
  std::string path;
  ~RemovedAtExit() { remove(); }
  void remove() const {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

// measure -> allocate (-> search): the plan's types (--no-measure: the
// weight-error-only plan, no sweep).
std::map<std::string, std::string> planned_types(const QuantizeOptions& o, const ModelInfo& model,
                                                 const std::string& journal, QuantizeResult& r,
                                                 std::map<std::string, std::string>* weight_error_types) {
  const bool swept = !o.allocate.weight_error_only;
  Allocation al;
  if (swept) {
    Refined refined = refine_sweep(o, model, run_sweep(o, model));
    al = std::move(refined.allocation);
    r.refine = std::move(refined.report);
  } else {
    al = plan_for(weight_error_journal(model, o.measure.base), model, o.allocate);
  }
  r.fit = al.fit;
  if (r.fit) r.budget_bytes = al.budget_bytes;
  std::map<std::string, std::string> types = finish_plan(o, al, r.run_dir, swept ? journal : "", r);
  if (swept && o.gate.rivals) *weight_error_types = weight_error_plan(o, model, al, r.run_dir);
  return types;
}

}  // namespace

QuantizeResult run_quantize(const QuantizeOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  check_quantize_inputs(options);
  const ModelInfo model = inspect_model(options.source);  // inspected once for the whole run
  const std::string& reference = options.measure.reference_model;
  if (!reference.empty()) measure::check_reference_model(reference, model);
  QuantizeResult r;
  r.run_dir = options.run_dir.empty() ? default_run_dir(options.out) : options.run_dir;
  const std::string journal = options.journal.empty() ? r.run_dir + "/measurements.jsonl" : options.journal;
  const bool fit = !options.allocate.fit.spec.empty();
  r.budget_bytes = fit ? fit_budget_before_sweep(options, model)
                       : budget_bytes_for(options.allocate.budget, model, options.allocate.imatrix_path);
  QuantizeOptions held = options;
  if (held.recipe_from.empty()) {
    center_sweep(held, model, r.budget_bytes);
    if (!fit) check_budget_before_sweep(held, model, r.budget_bytes);
  }
  hold_out_calibration_slice(held, r.run_dir);
  const QuantizeOptions o = staged(held, r.run_dir, journal);
  fs::create_directories(r.run_dir);
  std::map<std::string, std::string> types, weight_error_types;
  // The sweep leaves its base mix (keep_base_model) for the search, and for
  // the candidate's and the baseline's builds to copy their unchanged tensors
  // from (BuildOptions::donor); it goes once those are written.
  const RemovedAtExit base_mix{o.search.base_model_path};
  if (o.recipe_from.empty()) {
    types = planned_types(o, model, journal, r, &weight_error_types);
  } else {
    types = resolve_recipe(load_recipe(o.recipe_from), model).types();
  }
  const std::string candidate = r.run_dir + "/candidate.gguf";
  const BuildReport built = build_to(o, model, candidate, types, "");
  if (r.fit) r.fit_check = check_built_fit(o, *r.fit, candidate, r.run_dir);
  std::map<std::string, int64_t> preset_sizes;
  r.baseline_preset = r.fit ? fit_stock_baseline(model, *r.fit, o.allocate.imatrix_path, &preset_sizes)
                            : closest_stock_preset(o.source, built.output_size_bytes, o.allocate.imatrix_path,
                                                   &preset_sizes);
  if (r.baseline_preset.empty()) {
    fs::remove(candidate);
    throw BudgetError(r.fit ? fmt::format("no stock mix fits --fit {}: nothing to compare with", o.allocate.fit.spec)
                            : fmt::format("no stock mix is as large as the plan ({} bytes): nothing to compare with",
                                          built.output_size_bytes));
  }
  const std::string baseline_path = r.run_dir + "/baseline-" + r.baseline_preset + ".gguf";
  build_to(o, model, baseline_path, {}, r.baseline_preset);
  base_mix.remove();  // before the rivals need the disk
  run_gate(o, model, candidate, baseline_path,
           gate_rivals(o, model, built.output_size_bytes, r.baseline_preset, weight_error_types, preset_sizes, r.fit),
           preset_sizes, r);
  // The stock file is reproducible (`cerebellum build --base PRESET`); keep only its scores.
  fs::remove(baseline_path);
  if (r.ships || o.gate.force) {
    fs::rename(candidate, o.out);
    r.out = o.out;
    r.ours.path = o.out;
    r.written = true;
  } else {
    fs::remove(candidate);
  }
  write_run_json(o, r);
  r.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_file_atomic(r.run_dir + "/quantize.json", to_json(r).dump(2) + "\n");
  if (!o.command_line.empty()) write_file_atomic(r.run_dir + "/commands.txt", o.command_line + "\n");
  return r;
}

nlohmann::json to_json(const QuantizeResult& r) {
  nlohmann::json rivals = nlohmann::json::array();
  for (const EvalRecord& e : r.rivals) rivals.push_back(record_json(e));
  nlohmann::json domains = nlohmann::json::array();
  for (const GateDomain& g : r.domains) {
    nlohmann::json dr = nlohmann::json::array();
    for (const EvalRecord& e : g.rivals) dr.push_back(record_json(e));
    domains.push_back({{"domain", g.domain}, {"eval_text", g.eval_text}, {"ours", record_json(g.ours)},
                       {"baseline", record_json(g.baseline)}, {"rivals", dr}, {"delta_kld", g.delta_kld},
                       {"delta_kld_se", g.delta_kld_se}, {"kld_reduction", g.kld_reduction}, {"ships", g.ships}});
  }
  return {{"schema", kQuantizeSchema}, {"out", r.out}, {"run_dir", r.run_dir},
          {"budget_bytes", r.budget_bytes}, {"baseline_preset", r.baseline_preset},
          {"ours", record_json(r.ours)}, {"baseline", record_json(r.baseline)},
          {"delta_kld", r.delta_kld}, {"delta_kld_se", r.delta_kld_se},
          {"kld_reduction", r.kld_reduction}, {"ships", r.ships},
          // The additive model's prediction (vs the measurement base, on the
          // calibration text) next to what the built file shows on the eval
          // text: the interaction check.
          {"predicted_delta_kld_vs_measure_base",
           r.predicted_delta_kld ? nlohmann::json(*r.predicted_delta_kld) : nlohmann::json(nullptr)},
          {"written", r.written},
          {"elapsed_s", r.elapsed_s}, {"search", search_json(r.search)},
          {"refine", r.refine ? to_json(*r.refine) : nlohmann::json(nullptr)}, {"rivals", rivals},
          {"domains", domains},
          {"fit", r.fit ? fit_json(*r.fit) : nlohmann::json(nullptr)},
          {"fit_verified", r.fit_check ? fit_check_json(*r.fit_check) : nlohmann::json(nullptr)},
          {"task_gate", r.task_gate ? nlohmann::json{{"ships", r.task_gate->ships}, {"reason", r.task_gate->reason}}
                                    : nlohmann::json(nullptr)}};
}

}  // namespace cb
