// cerebellum audit DIR: harness smells in a results folder.
#include <filesystem>

#include <fmt/format.h>

#include "cerebellum/bench/audit.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {

struct AuditArgs {
  std::string dir;
  bool json = false;
  bool no_fail = false;
  bench::AuditOptions opt;
};

void print_report(const bench::AuditReport& r) {
  static const char* kSev[] = {"info", "warn", "SEVERE"};
  for (const auto& f : r.files) {
    fmt::print("{:<28} {:>6} records {:>6} wrong\n", f.file, f.n, f.n_wrong);
    for (const auto& s : f.smells) {
      std::string ex;
      for (const auto& e : s.examples) ex += (ex.empty() ? "" : ", ") + e;
      fmt::print("  {:<7} {:<28} {}{}\n", kSev[static_cast<int>(s.severity)], s.kind, s.detail,
                 ex.empty() ? "" : " (e.g. " + ex + ")");
    }
  }
  fmt::print("{}\n", r.severe() ? "severe harness smells found" : "no severe harness smells");
}

void setup_audit(CLI::App& app) {
  auto a = std::make_shared<AuditArgs>();
  auto* cmd = app.add_subcommand("audit", "wrong answers and harness smells in a bench results folder");
  cmd->add_option("dir", a->dir, "results folder (per-question *.jsonl)")->required();
  cmd->add_flag("--json", a->json, "print audit.json to stdout");
  cmd->add_flag("--no-fail", a->no_fail, "exit 0 even when severe smells are found");
  cmd->add_option("--cluster-share", a->opt.cluster_share, "flag one predicted index above this share")
      ->capture_default_str();
  cmd->callback([a] {
    const auto report = bench::audit_dir(a->dir, a->opt);
    const auto j = report.to_json();
    write_file_atomic((std::filesystem::path(a->dir) / "audit.json").string(), j.dump(2) + "\n");
    if (a->json) {
      print_json(j);
    } else {
      print_report(report);
    }
    if (report.severe() && !a->no_fail) {
      throw GateError(fmt::format("{}: severe harness smells (see audit.json); results are not trustworthy", a->dir));
    }
  });
}

}  // namespace

CB_REGISTER_COMMAND("audit", 65, setup_audit);

}  // namespace cb::cli
