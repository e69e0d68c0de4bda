#include "cli_util.h"
#include "cerebellum/common/error.h"
#include <filesystem>

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <fmt/format.h>

#include "cerebellum/common/strings.h"

namespace cb::cli {

GlobalOptions& global_options() {
  static GlobalOptions opts;
  return opts;
}

Logger stderr_logger() {
  Logger logger;
  logger.sink = [](LogLevel level, std::string_view msg) {
    const auto& g = global_options();
    if (level == LogLevel::kDebug && !g.verbose) return;
    if (level == LogLevel::kInfo && g.quiet) return;
    const char* tag = level == LogLevel::kWarn    ? "warning: "
                      : level == LogLevel::kError ? "error: "
                                                  : "";
    std::string text(msg);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    if (text.empty()) return;
    std::fprintf(stderr, "%s%s\n", tag, text.c_str());
  };
  return logger;
}

ProgressPrinter::ProgressPrinter()
    : tty_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_(start_ - std::chrono::hours(1)) {}

void ProgressPrinter::operator()(const Progress& p) {
  if (global_options().quiet) return;
  const auto now = std::chrono::steady_clock::now();
  if (p.stage != stage_) {
    finish();
    stage_ = p.stage;
    start_ = now;
  }
  const bool last = p.total > 0 && p.done >= p.total;
  const double min_gap_s = tty_ ? 0.1 : 2.0;
  if (!last && std::chrono::duration<double>(now - last_).count() < min_gap_s) return;
  last_ = now;
  const double elapsed_s = std::chrono::duration<double>(now - start_).count();
  double eta_s = -1;
  if (p.done > 0 && p.total > 0) eta_s = elapsed_s / p.done * (p.total - p.done);
  if (tty_) {
    const double pct = p.total > 0 ? 100.0 * p.done / p.total : 0;
    std::string eta = eta_s >= 0 ? fmt::format("ETA {:.0f}s", eta_s) : "ETA ?";
    std::fprintf(stderr, "\r\033[K[%s] %lld/%lld (%.1f%%) %.0fs elapsed, %s  %s",
                 p.stage.c_str(), static_cast<long long>(p.done),
                 static_cast<long long>(p.total), pct, elapsed_s, eta.c_str(),
                 p.item.substr(0, 40).c_str());
    dirty_ = true;
  } else {
    nlohmann::json j = {{"progress", p.stage}, {"done", p.done}, {"total", p.total},
                        {"elapsed_s", elapsed_s}, {"eta_s", eta_s}, {"item", p.item}};
    std::fprintf(stderr, "%s\n", j.dump().c_str());
  }
  std::fflush(stderr);
}

void ProgressPrinter::finish() {
  if (tty_ && dirty_) std::fprintf(stderr, "\n");
  dirty_ = false;
}

ProgressFn ProgressPrinter::fn() {
  return [this](const Progress& p) { (*this)(p); };
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

std::string human_bytes(int64_t bytes) {
  std::string digits = std::to_string(bytes);
  std::string grouped;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) grouped += ',';
    grouped += digits[i];
  }
  return fmt::format("{:.2f} MB ({} B)", bytes / 1e6, grouped);
}

std::vector<std::string> split_commas(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& v : values) {
    for (auto& part : cb::split_commas(v)) out.push_back(std::move(part));
  }
  return out;
}

std::vector<measure::MeasureText> texts_with_domains(const std::vector<std::string>& paths,
                                                    const std::vector<std::string>& names, const char* flag) {
  const auto domains = split_commas(names);
  if (!domains.empty() && domains.size() != paths.size()) {
    throw UsageError(fmt::format("{} {} names for {} files", domains.size(), flag, paths.size()));
  }
  std::vector<measure::MeasureText> out;
  for (size_t i = 0; i < paths.size(); ++i) {
    out.push_back({domains.empty() ? std::filesystem::path(paths[i]).stem().string() : domains[i], paths[i]});
  }
  return out;
}

void add_fit_options(CLI::App* cmd, FitOptions& fit) {
  cmd->add_option("--fit", fit.spec,
                  "a deployment instead of --budget: DEVICE@CONTEXT (16GiB@8192: the GPU, or host memory "
                  "without one) or gpu=24GiB,cpu=48GiB@8192; weights get what llama.cpp's projected KV cache, "
                  "compute buffers and --margin leave");
  cmd->add_option("--kv-type", fit.kv_type, "with --fit: KV cache type (-ctk/-ctv)")->capture_default_str();
  cmd->add_option("--parallel", fit.n_parallel, "with --fit: sequences (-np)")->capture_default_str();
  cmd->add_option("--ubatch", fit.n_ubatch, "with --fit: physical batch (-ub)")->capture_default_str();
  cmd->add_option("--margin", fit.margin, "with --fit: kept free on every bounded pool (0 = none)")
      ->capture_default_str();
  cmd->add_option("--placement", fit.placement,
                  "with --fit: auto | layers (-ngl; every count tried when cpu= is bounded too) | experts "
                  "(-ot exps=CPU)")->capture_default_str();
}

}  // namespace cb::cli
