// The reproducibility bundle and the card's artifact links.
#include <filesystem>

#include <fmt/format.h>

#include "card/run_dir.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"

namespace cb::card {
namespace fs = std::filesystem;

namespace {

// Files copied into the bundle: small, and enough to redo the build
// (commands + recipe) and re-check its claims (journal, plan, eval, bench).
struct BundleEntry {
  const char* source;   // in the run dir
  const char* name;     // in bundle/
};
constexpr BundleEntry kBundle[] = {
    {"run.json", "run.json"},
    {"commands.txt", "commands.txt"},
    {"measurements.jsonl", "measurements.jsonl"},
    {"plan.json", "plan.json"},
    {"tensor_types.txt", "tensor_types.txt"},
    {"eval.json", "eval.json"},
    {"bench/summary.json", "bench_summary.json"},
};

std::string rel_link(const std::string& from_dir, const std::string& target) {
  std::string rel = fs::path(target).lexically_relative(from_dir).generic_string();
  std::string out;
  for (char ch : rel.empty() ? target : rel) out += ch == ' ' ? std::string("%20") : std::string(1, ch);
  return out;
}

}  // namespace

std::string write_bundle(const RunDir& run, const std::string& model_sha256) {
  const fs::path dir = fs::path(run.dir) / "bundle";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(fmt::format("{}: cannot create the bundle dir: {}", dir.string(), ec.message()));
  std::string manifest;
  for (const auto& e : kBundle) {
    const fs::path src = fs::path(run.dir) / e.source;
    if (!fs::is_regular_file(src, ec)) continue;
    const std::string content = read_file(src.string());
    write_file_atomic((dir / e.name).string(), content);
    manifest += fmt::format("{}  {}\n", sha256_bytes(content.data(), content.size()), e.name);
  }
  write_file_atomic((dir / "MANIFEST").string(), manifest);
  // Too big to copy: hashed where they are.
  std::string artifacts =
      fmt::format("{}  {}\n", model_sha256, fs::path(run.model_path).lexically_relative(dir).generic_string());
  for (const auto& f : run.files) {
    if (f.name.rfind("bench/", 0) == 0 && f.name.ends_with(".jsonl")) {
      artifacts += fmt::format("{}  {}\n", sha256_file(f.path), fs::path(f.path).lexically_relative(dir).generic_string());
    }
  }
  write_file_atomic((dir / "ARTIFACTS.sha256").string(), artifacts);
  return dir.string();
}

std::string section_artifacts(const RunDir& run, const std::string& card_dir, const std::string& bundle_dir,
                              const std::vector<std::string>& figures) {
  std::string s = "## Artifacts\n\n| file | what |\n|---|---|\n";
  for (const auto& f : run.files) s += fmt::format("| [{}]({}) | {} |\n", f.name, rel_link(card_dir, f.path), f.what);
  for (const auto& f : figures) {
    s += fmt::format("| [{}]({}) | figure (SVG) |\n", fs::path(f).filename().string(), rel_link(card_dir, f));
  }
  s += "\n## Reproducibility bundle\n\n";
  if (bundle_dir.empty()) return s + "Not written (`--no-bundle`).\n\n";
  s += fmt::format("[bundle/]({}) holds copies of the files needed to redo and re-check this build. "
                   "[MANIFEST]({}) lists their sha256 and [ARTIFACTS.sha256]({}) those of the model and the "
                   "per-question results; check both with `cd bundle && sha256sum -c MANIFEST ARTIFACTS.sha256`.\n\n",
                   rel_link(card_dir, bundle_dir), rel_link(card_dir, bundle_dir + "/MANIFEST"),
                   rel_link(card_dir, bundle_dir + "/ARTIFACTS.sha256"));
  s += "```\n" + read_file(bundle_dir + "/MANIFEST") + read_file(bundle_dir + "/ARTIFACTS.sha256") + "```\n\n";
  if (run.commands) s += "Exact commands (`commands.txt`):\n\n```sh\n" + *run.commands + "\n```\n\n";
  if (run.run && !run.run->source_sha256.empty()) {
    s += fmt::format("Source model: `{}`, sha256 `{}`.\n\n", run.run->source_path, run.run->source_sha256);
  }
  return s;
}

}  // namespace cb::card
