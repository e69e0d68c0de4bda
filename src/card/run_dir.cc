// Reading a run directory: run.json, eval.json and which optional parts exist.
#include "card/run_dir.h"

#include <filesystem>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "common/json_int.h"
#include "cerebellum/common/schemas.h"
#include "cerebellum/common/io.h"

namespace cb::card {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json parse_json_file(const std::string& path) {
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw InputError(fmt::format("{}: not valid JSON: {}", path, e.what()));
  }
}

void check_schema(const json& j, const std::string& want, const std::string& where) {
  if (!j.is_object() || !j.contains("schema")) return;  // tolerated: hand-made files
  const std::string got = j.value("schema", "");
  if (got == want) return;
  const auto stem = want.substr(0, want.find('/') + 1);
  if (got.rfind(stem, 0) == 0) {
    throw MismatchError(fmt::format("{}: schema {} is not the supported {}", where, got, want));
  }
  throw InputError(fmt::format("{}: schema '{}', expected {}", where, got, want));
}

std::optional<double> opt_num(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  return j[key].get<double>();
}

}  // namespace

json to_json(const RunInfo& r) {
  return {{"schema", kRunSchema},
          {"source", {{"path", r.source_path}, {"sha256", r.source_sha256}}},
          {"output", {{"path", r.output_path}, {"sha256", r.output_sha256}, {"size_bytes", r.output_size_bytes}}},
          {"budget", {{"spec", r.budget}, {"bytes", r.budget_bytes}}},
          {"llama_cpp_version", r.llama_cpp_version},
          {"flags", r.flags}};
}

RunInfo run_info_from_json(const json& j, const std::string& where) {
  check_schema(j, kRunSchema, where);
  try {
    RunInfo r;
    const json& src = j.at("source");
    r.source_path = src.value("path", "");
    r.source_sha256 = src.value("sha256", "");
    // No "output" when quantize did not write the build (it did not ship).
    if (j.contains("output")) {
      const json& out = j["output"];
      r.output_path = out.at("path").get<std::string>();
      r.output_sha256 = out.value("sha256", "");
      r.output_size_bytes = out.value("size_bytes", int64_t{0});
    }
    if (j.contains("budget")) {
      r.budget = j["budget"].value("spec", "");
      r.budget_bytes = j["budget"].value("bytes", int64_t{0});
    }
    r.llama_cpp_version = j.value("llama_cpp_version", "");
    if (j.contains("flags")) r.flags = j["flags"].get<std::vector<std::string>>();
    return r;
  } catch (const json::exception& e) {
    throw InputError(fmt::format("{}: bad run.json: {}", where, e.what()));
  }
}

namespace {

std::vector<EvalEntry> eval_entries(const json& list, const std::string& path) {
  if (!list.is_array()) throw InputError(fmt::format("{}: expected a \"models\" list", path));
  std::vector<EvalEntry> out;
  try {
    for (const auto& e : list) {
      EvalEntry x;
      x.name = e.at("name").get<std::string>();
      x.kind = e.value("kind", "stock");
      x.size_bytes = json_integer<int64_t>(e.at("size_bytes"));
      x.ppl = opt_num(e, "ppl");
      x.ppl_se = opt_num(e, "ppl_se");
      x.kld_mean = opt_num(e, "kld_mean");
      x.kld_se = opt_num(e, "kld_se");
      x.kld_p999 = opt_num(e, "kld_p999");
      x.top1 = opt_num(e, "top1");
      out.push_back(std::move(x));
    }
  } catch (const std::exception& e) {  // json::exception, or json_integer's range_error
    throw InputError(fmt::format("{}: bad entry: {}", path, e.what()));
  }
  return out;
}

}  // namespace

std::vector<EvalEntry> read_eval(const std::string& path) {
  const json j = parse_json_file(path);
  check_schema(j, kRunEvalSchema, path);
  return eval_entries(j.is_array() ? j : j.contains("models") ? j["models"] : json(), path);
}

std::vector<EvalDomain> read_eval_domains(const std::string& path) {
  const json j = parse_json_file(path);
  check_schema(j, kRunEvalSchema, path);
  std::vector<EvalDomain> out;
  if (!j.is_object() || !j.contains("domains")) return out;
  if (!j["domains"].is_array()) throw InputError(fmt::format("{}: \"domains\" is not a list", path));
  for (const json& d : j["domains"]) {
    if (!d.is_object()) throw InputError(fmt::format("{}: a \"domains\" entry is not an object", path));
    const json name = d.value("domain", json()), text = d.value("eval_text", json());
    out.push_back({name.is_string() ? name.get<std::string>() : "", text.is_string() ? text.get<std::string>() : "",
                   eval_entries(d.value("models", json()), path)});
  }
  return out;
}

namespace {

// Adds `name` to the artifact list if present, else to not_run (when optional).
bool probe(RunDir& r, const std::string& name, const std::string& what) {
  const fs::path p = fs::path(r.dir) / name;
  std::error_code ec;
  if (fs::is_regular_file(p, ec)) {
    r.files.push_back({name, p.string(), what});
    return true;
  }
  r.not_run.push_back(fmt::format("`{}` ({})", name, what));
  return false;
}

void resolve_model(RunDir& r) {
  std::error_code ec;
  const fs::path local = fs::path(r.dir) / "model.gguf";
  if (fs::is_regular_file(local, ec)) {
    r.model_path = local.string();
  } else if (r.run && !r.run->output_path.empty()) {
    fs::path p(r.run->output_path);
    if (p.is_relative()) p = fs::path(r.dir) / p;
    if (!fs::is_regular_file(p, ec)) {
      throw InputError(fmt::format("{}: run.json names the model {}, which does not exist", r.dir, p.string()));
    }
    r.model_path = fs::absolute(p).lexically_normal().string();
  } else {
    throw InputError(fmt::format("{}: run dir has no model: neither model.gguf nor run.json's output.path",
                                 r.dir));
  }
  const fs::path rel = fs::path(r.model_path).lexically_relative(r.dir);
  const bool inside = !rel.empty() && rel.begin()->string() != "..";
  r.files.insert(r.files.begin(), {inside ? rel.generic_string() : r.model_path, r.model_path,
                                   "the build (GGUF)"});
}

}  // namespace

RunDir load_run_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InputError(fmt::format("{}: no such run directory", dir));
  RunDir r;
  r.dir = fs::absolute(dir).lexically_normal().string();
  if (!r.dir.empty() && r.dir.back() == '/') r.dir.pop_back();
  auto at = [&](const std::string& name) { return (fs::path(r.dir) / name).string(); };
  if (probe(r, "run.json", "what was built from what: cerebellum.run/1")) {
    r.run = run_info_from_json(parse_json_file(at("run.json")), at("run.json"));
  }
  resolve_model(r);
  if (probe(r, "measurements.jsonl", "measure: per-tensor damage journal")) {
    r.journal = read_journal(at("measurements.jsonl"));
  }
  if (probe(r, "plan.json", "allocate: the plan")) {
    r.plan = parse_json_file(at("plan.json"));
    check_schema(*r.plan, kPlanSchema, at("plan.json"));
  }
  probe(r, "tensor_types.txt", "allocate: the recipe for llama-quantize --tensor-type-file");
  if (probe(r, "eval.json", "PPL/KLD of the build and the stock mixes")) {
    r.eval = read_eval(at("eval.json"));
    r.eval_domains = read_eval_domains(at("eval.json"));
  }
  if (probe(r, "bench/summary.json", "bench: task accuracy vs the baseline")) {
    r.bench = parse_json_file(at("bench/summary.json"));
    check_schema(*r.bench, kBenchSchema, at("bench/summary.json"));
    // Per-question JSONL files the summary names (model and baseline).
    for (const char* side : {"model", "baseline"}) {
      if (!r.bench->contains(side)) continue;
      const json tasks = (*r.bench)[side].value("tasks", json::object());  // a copy: items() must not outlive it
      for (const auto& [task, t] : tasks.items()) {
        const std::string name = "bench/" + t.value("jsonl", task + ".jsonl");
        if (fs::is_regular_file(at(name), ec)) {
          r.files.push_back({name, at(name), fmt::format("bench: per-question results, {} {}", side, task)});
        }
      }
    }
  }
  if (probe(r, "commands.txt", "the exact commands")) r.commands = read_file(at("commands.txt"));
  // Only `quantize` writes one (a run made stage by stage has none).
  if (fs::is_regular_file(at("quantize.json"), ec)) {
    r.files.push_back({"quantize.json", at("quantize.json"), "quantize: the gate, ours vs the stock mix and rivals"});
    const json q = parse_json_file(at("quantize.json"));
    check_schema(q, kQuantizeSchema, at("quantize.json"));
    r.baseline_preset = q.value("baseline_preset", "");
  }
  // Only runs planned with --fit have one: not a part that could have run.
  if (fs::is_regular_file(at("fit.json"), ec)) {
    r.fit = parse_json_file(at("fit.json"));
    check_schema(*r.fit, kFitSchema, at("fit.json"));
    r.files.push_back({"fit.json", at("fit.json"), "--fit: the deployment projected and the build measured in it"});
  }
  return r;
}

}  // namespace cb::card
