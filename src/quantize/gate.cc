#include "quantize/gate.h"

#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/common/schemas.h"
#include "cerebellum/eval/evaluator.h"

namespace cb {
namespace fs = std::filesystem;

BuildReport build_to(const QuantizeOptions& o, const ModelInfo& model, const std::string& path,
                     const std::map<std::string, std::string>& types, const std::string& preset) {
  BuildOptions b;
  b.source = o.source;
  b.source_model = &model;
  b.out = path;
  b.imatrix_path = o.allocate.imatrix_path;
  b.n_threads = o.measure.n_threads;
  b.donor = o.search.base_model_path;  // while the sweep's base mix is still there
  if (!preset.empty()) {
    b.base = preset;
  } else {
    for (const auto& [name, type] : types) b.recipe.rules.push_back({name, type, 0});
  }
  return build_model(b, o.logger, o.progress);
}

nlohmann::json record_json(const EvalRecord& r, const std::string& kind) {
  return {{"name", r.name}, {"kind", kind}, {"path", r.path}, {"size_bytes", r.size_bytes}, {"ppl", r.ppl},
          {"ppl_se", r.ppl_se}, {"kld_mean", r.kld_mean}, {"kld_se", r.kld_se}, {"kld_p99", r.kld_p99},
          {"kld_p999", r.kld_p999}, {"top1", r.top1}};
}

void hold_out_calibration_slice(QuantizeOptions& o, const std::string& dir) {
  if (!o.gate.eval_texts.empty() || o.measure.texts.empty() || !o.recipe_from.empty()) return;
  if (!o.journal.empty()) {
    o.logger.warn("no --eval-text: the gate reads the calibration text the reused journal was measured on; pass "
                  "--eval-text for a verdict on held-out text");
    return;
  }
  const double f = o.gate.held_out_fraction;
  if (!(f > 0 && f < 1)) throw UsageError(fmt::format("held-out fraction must be in (0, 1), got {}", f));
  measure::MeasureText& calib = o.measure.texts.front();
  const std::string text = read_file(calib.path);
  const size_t nl = text.find('\n', static_cast<size_t>(static_cast<double>(text.size()) * (1 - f)));
  const size_t cut = nl == std::string::npos ? text.size() : nl + 1;
  if (cut == 0 || cut >= text.size()) {
    throw InputError(fmt::format("{}: too short to hold out the last {:.0f}% for the gate (no line break after its "
                                 "first {:.0f}%); pass --eval-text", calib.path, 100 * f, 100 * (1 - f)));
  }
  fs::create_directories(dir);
  const std::string kept = fmt::format("{}/{}-calibration.txt", dir, calib.domain);
  const std::string held = fmt::format("{}/{}-heldout.txt", dir, calib.domain);
  write_file_atomic(kept, text.substr(0, cut));
  write_file_atomic(held, text.substr(cut));
  o.logger.info(fmt::format("no --eval-text: the gate holds out the last {} of {} bytes of {} ({}); measuring and "
                            "searching read the first {} ({})", text.size() - cut, text.size(), calib.path, held, cut,
                            kept));
  o.gate.eval_texts.push_back({calib.domain + "-heldout", held});
  calib.path = kept;
}

namespace {

struct Scored {
  EvalRecord record;
  eval::TokenSeries series;
};

// One held-out text of the gate and the reference's top-K on it.
struct GateText {
  measure::MeasureText spec;
  std::string text;
  eval::ReferenceStore ref;
};

eval::EvalOptions gate_eval_options(const QuantizeOptions& o) {
  return {.ctx = o.measure.ctx, .max_chunks = o.gate.eval_chunks, .n_threads = o.measure.n_threads,
          .top_k = o.gate.top_k, .n_gpu_layers = o.measure.n_gpu_layers,
          .max_device_bytes = o.measure.max_device_bytes};
}

const std::string& reference_model(const QuantizeOptions& o) {
  return o.measure.reference_model.empty() ? o.source : o.measure.reference_model;
}

// The reference's top-K on `text`, cached at `store`: on the CPU computed by
// the candidate (a build of the same tensors) with its weights pointed at
// the reference's file, one model in memory; with a GPU by the reference
// loaded alone.
eval::ReferenceStore gate_reference(const QuantizeOptions& o, const std::string& candidate, const std::string& text,
                                    const std::string& store) {
  if (o.measure.n_gpu_layers == 0) {
    eval::EvalOptions eo = gate_eval_options(o);
    eo.reference_model_path = reference_model(o);  // the store's key: the reference's
    eval::Evaluator ev(candidate, text, eo, o.logger);
    if (ev.can_view_reference(reference_model(o))) {
      return eval::load_or_build_reference(ev, store, o.progress, o.logger, reference_model(o));
    }
  }
  eval::Evaluator ref_ev(reference_model(o), text, gate_eval_options(o), o.logger);
  return eval::load_or_build_reference(ref_ev, store, o.progress, o.logger);
}

// The eval texts (the first calibration text when none is given) with their
// references, each from a load of the reference model released before the
// next: one model in memory at a time. The first keeps the store name it had
// when the gate had one text.
std::vector<GateText> gate_texts(const QuantizeOptions& o, const std::string& run_dir, const std::string& candidate) {
  std::vector<measure::MeasureText> specs = o.gate.eval_texts;
  if (specs.empty()) specs.push_back(o.measure.texts.front());
  std::vector<GateText> out;
  for (size_t i = 0; i < specs.size(); ++i) {
    GateText g{specs[i], read_file(specs[i].path), {}};
    const std::string store =
        i == 0 ? run_dir + "/eval-reference.bin" : fmt::format("{}/eval-reference-{}.bin", run_dir, specs[i].domain);
    g.ref = gate_reference(o, candidate, g.text, store);
    out.push_back(std::move(g));
  }
  return out;
}

Scored score_model(const QuantizeOptions& o, const std::string& name, const std::string& path, const GateText& t) {
  eval::Evaluator ev(path, t.text, gate_eval_options(o), o.logger);
  Scored s;
  const eval::EvalSummary sum = ev.run(&t.ref, o.progress, &s.series);
  s.record = {name, path, static_cast<int64_t>(fs::file_size(path)), sum.ppl.ppl,
              sum.ppl.ppl_se, sum.kld.mean_nats, sum.kld.se_nats, sum.kld.p99_nats, sum.kld.p999_nats,
              sum.top1.mean};
  return s;
}

// One model on every eval text, in the texts' order.
std::vector<Scored> score_everywhere(const QuantizeOptions& o, const std::string& name, const std::string& path,
                                     const std::vector<GateText>& texts) {
  std::vector<Scored> out;
  for (const GateText& t : texts) out.push_back(score_model(o, name, path, t));
  return out;
}

// Builds each contender once, scores it on every text, removes it:
// records[contender][text].
std::vector<std::vector<EvalRecord>> score_contenders(const QuantizeOptions& o, const ModelInfo& model,
                                                      const std::vector<Contender>& contenders,
                                                      const std::vector<GateText>& texts, const std::string& run_dir) {
  std::vector<std::vector<EvalRecord>> out;
  for (const Contender& c : contenders) {
    const std::string path = run_dir + "/contender.gguf";
    build_to(o, model, path, c.types, c.preset);
    out.emplace_back();
    for (const Scored& s : score_everywhere(o, c.name, path, texts)) out.back().push_back(s.record);
    fs::remove(path);
  }
  return out;
}

// Ours and the baseline on the gate's bench tasks (bench/ in the run dir:
// per-question JSONL and summary.json, as `cerebellum bench` writes them).
bench::GateVerdict task_gate(const QuantizeOptions& o, const std::string& candidate, const std::string& baseline,
                             const std::string& dir) {
  bench::BenchOptions b = o.gate.bench;
  b.n_threads = o.measure.n_threads;
  const bench::ModelRun ours = bench::run_bench(candidate, b, dir, o.logger, o.progress);
  const bench::ModelRun base = bench::run_bench(baseline, b, dir + "/baseline", o.logger, o.progress);
  const bench::GateVerdict verdict = bench::ship_gate(ours, base, b.gate_alpha);
  write_file_atomic(dir + "/summary.json", bench::summary_json(ours, &base, &verdict, b).dump(2) + "\n");
  o.logger.info("task gate: " + std::string(verdict.ships ? "ships" : "does not ship") + " (" + verdict.reason + ")");
  return verdict;
}

// The verdict on one text: lower mean KLD than the baseline and every rival,
// in no more bytes than the baseline; under --fit the size rule is the
// deployment's (the baseline is the largest stock mix that fits it, and ours
// was loaded and measured within it before the gate).
GateDomain domain_verdict(const GateText& t, const Scored& ours, const Scored& base,
                          const std::vector<std::vector<EvalRecord>>& rivals, size_t text_index, bool fit) {
  GateDomain g{t.spec.domain, t.spec.path, ours.record, base.record};
  const eval::MeanSe d = eval::paired_delta(ours.series.kld_nats, base.series.kld_nats);
  g.delta_kld = d.mean;
  g.delta_kld_se = d.se;
  g.kld_reduction = g.baseline.kld_mean > 0 ? 1.0 - g.ours.kld_mean / g.baseline.kld_mean : 0;
  g.ships = g.ours.kld_mean < g.baseline.kld_mean && (fit || g.ours.size_bytes <= g.baseline.size_bytes);
  for (const auto& per_text : rivals) {
    g.rivals.push_back(per_text[text_index]);
    g.ships = g.ships && g.ours.kld_mean < g.rivals.back().kld_mean;
  }
  return g;
}

// eval.json (cerebellum.runeval/1): "models" and "paired_delta_kld" are the
// first text's (what the card's curve plots), "domains" has every text.
void write_eval_json(const QuantizeOptions& o, const QuantizeResult& r, const std::vector<Contender>& rivals,
                     const std::vector<std::vector<EvalRecord>>& curve, const std::map<std::string, int64_t>& preset_sizes) {
  const std::string& ref_model = reference_model(o);
  const EvalRecord ref{o.measure.reference_model.empty() ? "F16" : "reference", ref_model,
                       static_cast<int64_t>(fs::file_size(ref_model))};
  nlohmann::json domains = nlohmann::json::array();
  for (size_t t = 0; t < r.domains.size(); ++t) {
    const GateDomain& g = r.domains[t];
    EvalRecord ours = g.ours;
    if (r.ships || o.gate.force) ours.path = o.out;  // where it will be after the gate
    nlohmann::json models = {record_json(ours, "build"), record_json(g.baseline, "stock")};
    for (size_t i = 0; i < rivals.size(); ++i) models.push_back(record_json(g.rivals[i], rivals[i].kind));
    for (const auto& per_text : curve) models.push_back(record_json(per_text[t], "stock"));
    models.push_back(record_json(ref, "reference"));
    domains.push_back({{"domain", g.domain}, {"eval_text", g.eval_text}, {"models", models}, {"ships", g.ships},
                       {"paired_delta_kld", {{"mean", g.delta_kld}, {"se", g.delta_kld_se}}}});
  }
  const nlohmann::json& first = domains.front();
  const nlohmann::json ej = {{"schema", kRunEvalSchema}, {"eval_text", first["eval_text"]}, {"ctx", o.measure.ctx},
                             {"chunks", o.gate.eval_chunks}, {"models", first["models"]},
                             {"paired_delta_kld", first["paired_delta_kld"]}, {"domains", domains},
                             {"stock_sizes_bytes", preset_sizes}};
  write_file_atomic(r.run_dir + "/eval.json", ej.dump(2) + "\n");
}

}  // namespace

void run_gate(const QuantizeOptions& o, const ModelInfo& model, const std::string& candidate,
              const std::string& baseline_path, const std::vector<Contender>& rivals,
              const std::map<std::string, int64_t>& preset_sizes, QuantizeResult& r) {
  const std::vector<GateText> texts = gate_texts(o, r.run_dir, candidate);
  const std::vector<Scored> ours = score_everywhere(o, "cerebellum", candidate, texts);
  const std::vector<Scored> base = score_everywhere(o, "stock " + r.baseline_preset, baseline_path, texts);
  const auto rival_records = score_contenders(o, model, rivals, texts, r.run_dir);
  r.domains.clear();
  r.ships = true;
  for (size_t t = 0; t < texts.size(); ++t) {
    r.domains.push_back(domain_verdict(texts[t], ours[t], base[t], rival_records, t, !o.allocate.fit.spec.empty()));
    r.ships = r.ships && r.domains.back().ships;
  }
  const GateDomain& first = r.domains.front();
  r.ours = first.ours;
  r.baseline = first.baseline;
  r.rivals = first.rivals;
  r.delta_kld = first.delta_kld;
  r.delta_kld_se = first.delta_kld_se;
  r.kld_reduction = first.kld_reduction;
  if (!o.gate.bench.tasks.empty()) {
    r.task_gate = task_gate(o, candidate, baseline_path, r.run_dir + "/bench");
    r.ships = r.ships && r.task_gate->ships;
  }
  std::vector<Contender> curve;
  for (const auto& preset : o.gate.curve_presets) {
    if (preset != r.baseline_preset) curve.push_back({preset, "stock", {}, preset});
  }
  write_eval_json(o, r, rivals, score_contenders(o, model, curve, texts, r.run_dir), preset_sizes);
}

}  // namespace cb
