// CARD.md: the run directory summarised for a reader, every number with its
// source file linked, and the figures and bundle written beside it.
#include "cerebellum/card/card.h"

#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "card/figures.h"
#include "card/run_dir.h"
#include "card/speed_vs_stock.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/inspect/inspect.h"

namespace cb::card {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Relative link from the card's folder, spaces escaped for Markdown.
std::string link_to(const fs::path& card_dir, const std::string& target) {
  std::string rel = fs::path(target).lexically_relative(card_dir).generic_string();
  if (rel.empty()) rel = target;
  std::string out;
  for (char ch : rel) out += ch == ' ' ? std::string("%20") : std::string(1, ch);
  return out;
}

std::string bytes_str(int64_t b) { return fmt::format("{:.2f} MB ({} B)", b / 1e6, b); }
std::string mib_str(int64_t b) { return fmt::format("{:.2f} MiB", b / 1048576.0); }

// "q4_K×12, q6_K×2", most frequent first.
std::string type_counts(const std::map<std::string, int>& counts) {
  std::vector<std::pair<int, std::string>> v;
  for (const auto& [t, n] : counts) v.push_back({-n, t});
  std::sort(v.begin(), v.end());
  std::string s;
  for (const auto& [n, t] : v) s += fmt::format("{}{}×{}", s.empty() ? "" : ", ", t, -n);
  return s;
}

struct Ctx {
  const RunDir& run;
  const ModelInfo& model;
  fs::path card_dir;
  std::string out;
  void line(const std::string& s = "") { out += s + "\n"; }
  std::string link(const std::string& path) const { return link_to(card_dir, path); }
};

void section_summary(Ctx& c, const std::string& model_sha256) {
  const RunInfo ri = c.run.run.value_or(RunInfo{});
  c.line(fmt::format("# {} — Cerebellum build", c.model.name.empty() ? fs::path(c.run.model_path).stem().string()
                                                                     : c.model.name));
  c.line();
  c.line("| | |\n|---|---|");
  c.line(fmt::format("| file | [{}]({}) |", fs::path(c.run.model_path).filename().string(), c.link(c.run.model_path)));
  c.line(fmt::format("| size | {} |", bytes_str(c.model.file_size_bytes)));
  c.line(fmt::format("| bits per weight | {:.3f} (file bytes × 8 / {} parameters) |", c.model.bits_per_weight(),
                     c.model.n_elements));
  c.line(fmt::format("| architecture | {} ({} layers) |", c.model.arch, c.model.n_layers));
  c.line(fmt::format("| sha256 | `{}`{} |", model_sha256,
                     ri.output_sha256.empty() ? "" : ri.output_sha256 == model_sha256 ? " (matches run.json)"
                                                                                      : " (**differs from run.json**)"));
  c.line(fmt::format("| base model | {} |", ri.source_path.empty() ? "not recorded (no run.json)" : "`" + ri.source_path + "`"));
  c.line(fmt::format("| base sha256 | {} |", ri.source_sha256.empty() ? "not recorded" : "`" + ri.source_sha256 + "`"));
  if (!ri.budget.empty() || ri.budget_bytes) {
    c.line(fmt::format("| budget | {} ({} B) |", ri.budget, ri.budget_bytes));
  }
  c.line(fmt::format("| llama.cpp | {} |", ri.llama_cpp_version.empty() ? "not recorded" : ri.llama_cpp_version));
  std::string flags;
  for (const auto& f : ri.flags) flags += (flags.empty() ? "`" : ", `") + f + "`";
  c.line(fmt::format("| flags | {} |", flags.empty() ? "none recorded" : flags));
  c.line();
}

void section_recipe(Ctx& c) {
  std::map<std::string, std::map<std::string, int>> by_role;
  std::map<int, std::map<std::string, int>> by_layer;
  std::map<std::string, int64_t> role_bytes;
  for (const auto& t : c.model.tensors) {
    ++by_role[t.role][t.type];
    ++by_layer[t.layer][t.type];
    role_bytes[t.role] += t.size_bytes;
  }
  c.line("## Recipe\n");
  if (c.run.plan) {
    const json& p = *c.run.plan;
    c.line(fmt::format("Plan `{}` (base {}): {} B planned against a budget of {} B, predicted ΔKLD {:.5f} nats "
                       "([plan.json]({})).\n", p.value("method", "?"), p.value("base", "?"),
                       p.value("size_bytes", int64_t{0}), p.value("budget_bytes", int64_t{0}),
                       p.value("predicted_delta_kld", 0.0), c.link(c.run.dir + "/plan.json")));
  }
  c.line("Types in the built file, by role:\n\n| role | tensors | types | bytes |\n|---|---:|---|---:|");
  for (const auto& [role, counts] : by_role) {
    int n = 0;
    for (const auto& [t, k] : counts) n += k;
    c.line(fmt::format("| {} | {} | {} | {} |", role, n, type_counts(counts), role_bytes[role]));
  }
  c.line("\nBy layer:\n\n| layer | types |\n|---|---|");
  for (const auto& [layer, counts] : by_layer) {
    c.line(fmt::format("| {} | {} |", layer < 0 ? std::string("global") : std::to_string(layer), type_counts(counts)));
  }
  c.line();
}

void quality_table(Ctx& c, std::vector<EvalEntry> rows) {
  c.line("| model | kind | size | PPL | KLD (nats) | KLD p99.9 | top-1 |\n|---|---|---:|---:|---:|---:|---:|");
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.size_bytes < b.size_bytes; });
  auto pm = [](std::optional<double> v, std::optional<double> se, int digits) {
    if (!v) return std::string("—");
    return se ? fmt::format("{:.{}f} ± {:.{}f}", *v, digits, *se, digits) : fmt::format("{:.{}f}", *v, digits);
  };
  for (const auto& e : rows) {
    const bool ours = e.kind == "build";
    c.line(fmt::format("| {}{}{} | {} | {} | {} | {} | {} | {} |", ours ? "**" : "", e.name, ours ? "**" : "", e.kind,
                       bytes_str(e.size_bytes), pm(e.ppl, e.ppl_se, 3), pm(e.kld_mean, e.kld_se, 5),
                       pm(e.kld_p999, std::nullopt, 4), pm(e.top1, std::nullopt, 4)));
  }
}

void section_quality(Ctx& c, const std::vector<std::string>& figures) {
  c.line("## Quality against size\n");
  if (!c.run.eval) {
    c.line("Not run: no `eval.json`.\n");
    return;
  }
  for (const auto& f : figures) c.line(fmt::format("![{}]({})\n", fs::path(f).stem().string(), c.link(f)));
  if (c.run.eval_domains.size() > 1) {  // one table per held-out text
    for (const EvalDomain& d : c.run.eval_domains) {
      c.line(fmt::format("### {} (`{}`)\n", d.domain, fs::path(d.eval_text).filename().string()));
      quality_table(c, d.models);
      c.line();
    }
  } else {
    quality_table(c, *c.run.eval);
  }
  c.line(fmt::format("\n± is one standard error. Source: [eval.json]({}).\n", c.link(c.run.dir + "/eval.json")));
}

std::string acc_ci(const json& t) {
  if (t.is_null()) return "—";
  std::string s = fmt::format("{:.3f}", t.value("accuracy", 0.0));
  if (t.contains("ci95") && t["ci95"].is_array() && t["ci95"].size() == 2) {
    s += fmt::format(" [{:.3f}, {:.3f}]", t["ci95"][0].get<double>(), t["ci95"][1].get<double>());
  }
  return s;
}

void section_bench(Ctx& c) {
  c.line("## Benchmarks\n");
  if (!c.run.bench) {
    c.line("Not run: no `bench/summary.json`.\n");
    return;
  }
  const json& s = *c.run.bench;
  const json mt = s.contains("model") ? s["model"].value("tasks", json::object()) : json::object();
  const json bt = s.contains("baseline") ? s["baseline"].value("tasks", json::object()) : json::object();
  const json cmp = s.value("comparison", json::object());
  c.line(fmt::format("Baseline: `{}`. Accuracy with its 95% Wilson interval; p is the exact two-sided McNemar test "
                     "on the questions both answered.\n", s.contains("baseline") ? s["baseline"].value("path", "?") : "none"));
  c.line("| task | n | this build | baseline | Δ | McNemar p | regression |\n|---|---:|---|---|---:|---:|---|");
  for (const auto& [task, m] : mt.items()) {
    const json b = bt.contains(task) ? bt[task] : json();
    const json k = cmp.contains(task) ? cmp[task] : json();
    c.line(fmt::format("| {} | {} | {} | {} | {} | {} | {} |", task, m.value("n", 0), acc_ci(m), acc_ci(b),
                       k.is_null() ? "—" : fmt::format("{:+.3f}", k.value("delta", 0.0)),
                       k.is_null() ? "—" : fmt::format("{:.3g}", k.value("mcnemar_p", 1.0)),
                       k.is_null() ? "—" : k.value("regression", false) ? "**yes**" : "no"));
  }
  if (s.contains("verdict")) {
    const json& v = s["verdict"];
    c.line(fmt::format("\nShip gate (α = {}): **{}**{}", v.value("alpha", 0.05), v.value("ships", false) ? "ships" : "does not ship",
                       v.value("reason", "").empty() ? "" : " — " + v.value("reason", "")));
  }
  c.line(fmt::format("\nSource: [bench/summary.json]({}).\n", c.link(c.run.dir + "/bench/summary.json")));
}

std::string rate_str(const SpeedResult& s, bool pp) {
  const double mean = pp ? s.pp_tokens_per_s : s.tg_tokens_per_s, sd = pp ? s.pp_tokens_per_s_sd : s.tg_tokens_per_s_sd;
  return s.repetitions > 1 ? fmt::format("{:.1f} ± {:.1f}", mean, sd) : fmt::format("{:.1f}", mean);
}

void section_speed(Ctx& c, const std::optional<SpeedResult>& sp, const std::optional<StockSpeed>& stock) {
  c.line("## Speed on this machine\n");
  if (!sp) {
    c.line("Not run (`--no-speed`).\n");
    return;
  }
  const bool vs = stock && stock->speed;
  c.line(fmt::format("Measured by `cerebellum card` with llama.cpp on {}, {} threads, synthetic tokens, one "
                     "warm-up, mean (± sd) of {} run(s) (as llama-bench's pp / tg tests){}.\n", sp->device, sp->n_threads,
                     sp->repetitions, vs ? fmt::format("; stock {} ({}, {}) built from the source and timed in turn "
                                                       "with this file, run for run", stock->preset,
                                                       bytes_str(stock->size_bytes),
                                                       c.run.fit ? "the largest stock mix that fits the same deployment"
                                                                 : "the stock mix of the same size") : ""));
  if (vs) {
    c.line(fmt::format("| test | this build, tokens/s | stock {}, tokens/s | ratio |\n|---|---:|---:|---:|",
                       stock->preset));
    for (bool pp : {true, false}) {
      const double a = pp ? sp->pp_tokens_per_s : sp->tg_tokens_per_s;
      const double b = pp ? stock->speed->pp_tokens_per_s : stock->speed->tg_tokens_per_s;
      c.line(fmt::format("| {} | {} | {} | {:.2f}× |", pp ? fmt::format("pp{} (prompt, one batch)", sp->pp_tokens)
                                                          : fmt::format("tg{} (generation, one token per decode)",
                                                                        sp->tg_tokens),
                         rate_str(*sp, pp), rate_str(*stock->speed, pp), b > 0 ? a / b : 0.0));
    }
  } else {
    c.line("| test | tokens/s |\n|---|---:|");
    c.line(fmt::format("| pp{} (prompt, one batch) | {} |", sp->pp_tokens, rate_str(*sp, true)));
    c.line(fmt::format("| tg{} (generation, one token per decode) | {} |", sp->tg_tokens, rate_str(*sp, false)));
    if (stock) c.line(fmt::format("\nNo stock mix timed beside it{}: {}.", stock->preset.empty() ? "" :
                                  " (" + stock->preset + ")", stock->note));
  }
  c.line(fmt::format("\nSystem: `{}`\n", sp->system_info));
}

// The deployment the memory table is measured in: the run's --fit settings,
// else llama.cpp's defaults (every layer on the GPU when there is one).
DeploySettings deploy_settings_of(const RunDir& run) {
  DeploySettings s;
  if (!run.fit) return s;
  const nlohmann::json& p = run.fit->at("projection");
  s.kv_type = p.value("kv_type", s.kv_type);
  s.n_parallel = p.value("parallel", s.n_parallel);
  s.n_ubatch = p.value("ubatch", s.n_ubatch);
  s.n_gpu_layers = p.value("n_gpu_layers", s.n_gpu_layers);
  s.cpu_tensor_regex = p.value("cpu_tensor_regex", s.cpu_tensor_regex);
  return s;
}

// "Fits N at C tokens", from fit.json's measurement of the built file.
void section_fit(Ctx& c) {
  if (!c.run.fit) return;
  const nlohmann::json& f = *c.run.fit;
  const nlohmann::json& p = f.at("projection");
  for (const auto& v : f.at("verified").at("pools")) {
    const int64_t cap = v.value("capacity_bytes", int64_t{0});
    if (cap == 0) continue;
    c.line(fmt::format("**Fits {} of {} at {} tokens of context** (`--fit {}`): llama.cpp allocated {} there "
                       "(model {}, context {}, compute {}) with the file loaded and the context created; projected "
                       "{}; {} kept free for what its breakdown does not count. Run it with `{}`.\n",
                       mib_str(cap), v.value("pool", ""), p.value("context_tokens", 0), f.value("spec", ""),
                       mib_str(v.value("measured_bytes", int64_t{0})), mib_str(v.value("model_bytes", int64_t{0})),
                       mib_str(v.value("context_bytes", int64_t{0})), mib_str(v.value("compute_bytes", int64_t{0})),
                       mib_str(v.value("projected_bytes", int64_t{0})), mib_str(v.value("margin_bytes", int64_t{0})),
                       p.value("llama_args", "")));
  }
}

void section_memory(Ctx& c, const MemoryReport& m) {
  c.line("## Memory by context length\n");
  section_fit(c);
  c.line(fmt::format("Measured: llama.cpp loaded this file (`{}`) and created a context of each length; its own "
                     "breakdown per memory pool (model weights, context = KV cache and recurrent state, compute "
                     "buffers). Not included: the OS page cache, the CUDA context and its matmul pool.\n",
                     deploy_args(m.settings).substr(deploy_args(m.settings).find(" -ngl") + 1)));
  c.line("| context | pool | model | context | compute | total |\n|---:|---|---:|---:|---:|---:|");
  for (const auto& r : m.rows) {
    for (const auto& p : r.pools) {
      if (p.total() == 0) continue;
      c.line(fmt::format("| {} | {} | {} | {} | {} | {} |", r.n_ctx, p.name, mib_str(p.model_bytes),
                         mib_str(p.context_bytes), mib_str(p.compute_bytes), mib_str(p.total())));
    }
  }
  if (!m.stopped.empty()) c.line(fmt::format("\nLonger contexts not created: {}.", m.stopped));
  c.line("");
}

}  // namespace

namespace {

std::vector<std::string> write_figures(const RunDir& run, const ModelInfo& model, const fs::path& fig_dir,
                                       std::vector<std::string>& quality_figs, std::string& heatmap_fig) {
  std::vector<std::string> all;
  fs::create_directories(fig_dir);
  if (run.journal) {
    heatmap_fig = (fig_dir / "sensitivity_heatmap.svg").string();
    write_file_atomic(heatmap_fig, heatmap_svg(sensitivity_heatmap(*run.journal, model)));
    all.push_back(heatmap_fig);
  }
  if (run.eval) {
    for (bool kld : {true, false}) {
      const std::string p = (fig_dir / (kld ? "kld_vs_size.svg" : "ppl_vs_size.svg")).string();
      write_file_atomic(p, chart_svg(quality_chart(*run.eval, kld)));
      quality_figs.push_back(p);
      all.push_back(p);
    }
  }
  return all;
}

}  // namespace

CardResult render_card(const std::string& run_dir, const std::string& card_path, const CardOptions& options,
                       const Logger& logger, const ProgressFn& progress) {
  auto step = [&](int done, const std::string& what) {
    if (progress) progress({"card", done, 5, what});
  };
  step(0, "reading the run dir");
  const RunDir run = load_run_dir(run_dir);
  const ModelInfo model = inspect_model(run.model_path);
  const std::string model_sha256 = sha256_file(run.model_path);
  CardResult res;
  res.card_path = fs::absolute(card_path).lexically_normal().string();
  const fs::path card_dir = fs::path(res.card_path).parent_path();
  std::error_code ec;
  fs::create_directories(card_dir, ec);
  step(1, "figures");
  std::vector<std::string> quality_figs;
  std::string heatmap_fig;
  res.svg_paths = write_figures(run, model, card_dir / (fs::path(card_path).stem().string() + "_files"),
                                quality_figs, heatmap_fig);
  step(2, "memory");
  res.memory = measure_memory(run.model_path, deploy_settings_of(run), options.memory_ctx);
  step(3, "speed");
  if (options.measure_speed) {
    logger.info(fmt::format("card: timing pp{} / tg{} on {} threads", options.speed.pp_tokens,
                            options.speed.tg_tokens, options.speed.n_threads));
    measure_card_speed(run, options.speed, options.speed_vs_stock, card_dir.string(), logger, res.speed,
                       res.stock_speed);
  }
  step(4, "writing");
  if (options.write_bundle) res.bundle_dir = write_bundle(run, model_sha256);
  Ctx c{run, model, card_dir, ""};
  section_summary(c, model_sha256);
  section_recipe(c);
  c.line("## Sensitivity\n");
  if (run.journal) {
    c.line(fmt::format("![sensitivity heatmap]({})\n\nEach cell: ΔKLD (nats, mean over the journal's domains) of "
                       "quantizing that one tensor down with all else at the base config; grey = not measured; hover "
                       "for value ± se. Source: [measurements.jsonl]({}).\n", c.link(heatmap_fig),
                       c.link(run.dir + "/measurements.jsonl")));
  } else {
    c.line("Not run: no `measurements.jsonl`.\n");
  }
  section_quality(c, quality_figs);
  section_bench(c);
  section_speed(c, res.speed, res.stock_speed);
  section_memory(c, res.memory);
  c.out += section_artifacts(run, card_dir.string(), res.bundle_dir, res.svg_paths);
  res.not_run = run.not_run;
  if (!options.measure_speed) res.not_run.push_back("speed (`--no-speed`)");
  c.line("## Not run\n");
  if (res.not_run.empty()) c.line("Every part of the run is present.");
  for (const auto& n : res.not_run) c.line("- " + n);
  res.markdown = c.out;
  write_file_atomic(res.card_path, res.markdown);
  step(5, "done");
  return res;
}

}  // namespace cb::card
