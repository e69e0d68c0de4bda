// cerebellum bench --model M.gguf [--baseline B.gguf] --tasks ... --out DIR
#include <filesystem>

#include <fmt/format.h>

#include "cerebellum/bench/bench.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/common/strings.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {
namespace fs = std::filesystem;

struct BenchArgs {
  std::string model, baseline, tasks, out;
  bench::BenchOptions opt;
  bool force = false;
};

std::vector<std::string> split_tasks(const std::string& s) {
  std::vector<std::string> out = cb::split_commas(s);
  if (out.size() == 1 && out[0] == "all") {
    out.clear();
    for (const auto& t : bench::task_table()) out.push_back(t.name);
  }
  return out;
}

void print_table(const nlohmann::json& s) {
  const bool has_base = s.contains("baseline");
  fmt::print("\n{:<15} {:>6} {:>9} {:>17}", "task", "n", "accuracy", "95% CI");
  if (has_base) fmt::print(" {:>9} {:>8} {:>9}", "baseline", "delta", "McNemar p");
  fmt::print("\n");
  for (const auto& [name, t] : s["model"]["tasks"].items()) {
    fmt::print("{:<15} {:>6} {:>9.4f} [{:.4f}, {:.4f}]", name, t["n"].get<int64_t>(), t["accuracy"].get<double>(),
               t["ci95"][0].get<double>(), t["ci95"][1].get<double>());
    if (has_base && s["comparison"].contains(name)) {
      const auto& c = s["comparison"][name];
      fmt::print(" {:>9.4f} {:>+8.4f} {:>9.3g}{}", c["baseline_accuracy"].get<double>(), c["delta"].get<double>(),
                 c["mcnemar_p"].get<double>(), c["regression"].get<bool>() ? "  REGRESSION" : "");
    }
    fmt::print("\n");
  }
  if (s.contains("verdict")) {
    fmt::print("\nverdict: {} ({})\n", s["verdict"]["ships"].get<bool>() ? "ships" : "DOES NOT SHIP",
               s["verdict"]["reason"].get<std::string>());
  }
}

void run(BenchArgs& a) {
  a.opt.tasks = split_tasks(a.tasks);
  for (const auto& t : a.opt.tasks) bench::find_task(t);
  const fs::path out(a.out);
  if (fs::exists(out / "summary.json") && !a.force) {
    throw UsageError(fmt::format("{}: already holds a summary.json (use --force to overwrite)", a.out));
  }
  const bool made_out = !fs::exists(out);
  fs::create_directories(out);
  const Logger logger = stderr_logger();
  ProgressPrinter progress;
  std::optional<bench::ModelRun> ran;
  try {
    ran = bench::run_bench(a.model, a.opt, out.string(), logger, progress.fn());
  } catch (...) {  // e.g. the data is missing: leave no empty folder (records written so far stay, to resume)
    std::error_code ec;
    if (made_out && fs::is_empty(out, ec)) fs::remove(out, ec);
    throw;
  }
  auto& model = *ran;
  progress.finish();
  std::optional<bench::ModelRun> base;
  std::optional<bench::GateVerdict> verdict;
  if (!a.baseline.empty()) {
    ProgressPrinter bp;
    base = bench::run_bench(a.baseline, a.opt, (out / "baseline").string(), logger, bp.fn());
    bp.finish();
    verdict = bench::ship_gate(model, *base, a.opt.gate_alpha);
  }
  const auto summary = bench::summary_json(model, base ? &*base : nullptr, verdict ? &*verdict : nullptr, a.opt);
  write_file_atomic((out / "summary.json").string(), summary.dump(2) + "\n");
  if (!global_options().quiet) print_table(summary);
  if (verdict && !verdict->ships) {
    if (a.force) {
      logger.warn("does not ship: " + verdict->reason + " (--force: exit 0)");
    } else {
      throw GateError("does not ship: " + verdict->reason + " (summary in " + (out / "summary.json").string() + ")");
    }
  }
}

void setup_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  a->opt.task.data_dir = "../shared/data";
  auto* cmd = app.add_subcommand("bench", "task accuracy (log-likelihood suites, HumanEval) and the ship gate");
  cmd->add_option("--model", a->model, "GGUF model to score")->required()->check(CLI::ExistingFile);
  cmd->add_option("--baseline", a->baseline, "GGUF baseline: paired McNemar per task + ship gate")
      ->check(CLI::ExistingFile);
  std::string all;
  for (const auto& t : bench::task_table()) all += (all.empty() ? "" : ",") + t.name;
  cmd->add_option("--tasks", a->tasks, "comma-separated tasks or 'all' (" + all + "); default: all but code");
  cmd->add_option("--data", a->opt.task.data_dir, "shared data folder")->capture_default_str();
  cmd->add_option("--limit", a->opt.task.limit, "questions per task (0 = all)")->capture_default_str();
  cmd->add_option("--mmlu-shots", a->opt.task.mmlu_shots, "MMLU k-shot prefix from dev (0-5)")
      ->check(CLI::Range(0, 5))->capture_default_str();
  cmd->add_option("--threads", a->opt.n_threads, "CPU threads (0 = all)")->capture_default_str();
  cmd->add_option("--ctx", a->opt.n_ctx, "context size (tokens)")->capture_default_str();
  cmd->add_option("--max-tokens", a->opt.humaneval.max_tokens, "HumanEval generation limit")->capture_default_str();
  cmd->add_option("--exec-timeout", a->opt.humaneval.timeout_s, "HumanEval test time limit (s)")
      ->capture_default_str();
  cmd->add_flag("!--no-chat-template", a->opt.humaneval.use_chat_template, "HumanEval: raw completion always");
  cmd->add_flag("!--hellaswag-file-order", a->opt.task.hellaswag_stock_order,
                "HellaSwag: first N in file order instead of llama-perplexity's random draw");
  cmd->add_option("--alpha", a->opt.gate_alpha, "ship gate significance level")->capture_default_str();
  cmd->add_option("--out", a->out, "output folder")->required();
  cmd->add_flag("--force", a->force, "overwrite an existing summary; exit 0 even when the gate fails");
  cmd->callback([a] { run(*a); });
}

}  // namespace

CB_REGISTER_COMMAND("bench", 60, setup_bench);

}  // namespace cb::cli
