// The journal header a sweep writes and the checks that guard a resume or a
// stand-in reference model (include/cerebellum/measure/measure.h).
#include <strings.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/common/quant_types.h"
#include "cerebellum/common/strings.h"
#include "cerebellum/measure/measure.h"
#include "cerebellum/recipe/recipe.h"
#include "config_eval.h"

namespace cb::measure {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Everything that changes a measurement's value: a resume must match it.
json settings_json(const MeasureOptions& o) {
  return json{{"ctx", o.ctx},
              {"max_chunks", o.stop.max_chunks},
              {"min_chunks", o.stop.min_chunks},
              {"step_chunks", o.stop.step_chunks},
              {"rel_tol", o.stop.rel_tol},
              {"abs_tol_nats", o.stop.abs_tol_nats},
              {"sep_z", o.stop.sep_z},
              {"top_k", o.top_k},
              {"mode", to_string(o.mode)},
              {"plan", to_string(o.plan)},
              {"targets", o.targets},
              {"promote", o.promote},
              {"tensor_regex", o.tensor_regex},
              {"auto_split_frac", o.auto_split_frac},
              {"first_scored", o.first_scored},
              {"reference_model", o.reference_model.empty() ? std::string("source")
                                                           : sha256_file(o.reference_model)},
              {"se", o.stop.blocks_per_chunk > 1
                         ? fmt::format("{} blocks per chunk", o.stop.blocks_per_chunk)
                         : std::string("per-chunk means")}};
}

}  // namespace

std::map<std::string, std::string> resolve_base(const std::string& base, const ModelInfo& model,
                                                std::string* name) {
  Recipe recipe;
  for (const std::string& p : stock_preset_names()) {
    if (strcasecmp(p.c_str(), base.c_str()) == 0) recipe.base = p;
  }
  if (recipe.base.empty()) {
    if (!fs::exists(base)) {
      throw UsageError(fmt::format("--base \"{}\" is neither a stock preset nor a recipe file", base));
    }
    recipe = load_recipe(base);
    *name = fs::path(base).filename().string() + ":" + sha256_file(base).substr(0, 12);
  } else {
    *name = recipe.base;
  }
  return resolve_recipe(recipe, model).types();
}

JournalHeader make_header(const MeasureOptions& o, const ModelInfo& model,
                          const std::map<std::string, std::string>& base_types) {
  JournalHeader h;
  h.tool_version = o.tool_version;
  h.model_path = o.source_path;
  h.model_sha256 = sha256_file(o.source_path);
  std::string name;
  h.base_name = o.base;
  h.base_types = base_types;
  for (const MeasureText& t : o.texts) h.texts.push_back({t.domain, t.path, sha256_file(t.path)});
  h.settings_json = settings_json(o).dump();
  h.shard_index = o.shard.index;
  h.shard_count = o.shard.count;
  (void)model;
  return h;
}

std::optional<HeaderDifference> header_difference(const JournalHeader& a, const JournalHeader& b) {
  if (a.model_sha256 != b.model_sha256) return HeaderDifference{"model sha256", a.model_sha256, b.model_sha256};
  if (a.base_name != b.base_name) return HeaderDifference{"base", a.base_name, b.base_name};
  if (a.base_types != b.base_types) return HeaderDifference{"base types", "different", ""};
  std::vector<std::string> have, want;
  for (const auto& t : a.texts) have.push_back(t.domain + "=" + t.sha256.substr(0, 12));
  for (const auto& t : b.texts) want.push_back(t.domain + "=" + t.sha256.substr(0, 12));
  if (have != want) {
    return HeaderDifference{"texts", fmt::format("{}", fmt::join(have, ",")), fmt::format("{}", fmt::join(want, ","))};
  }
  const json sa = json::parse(a.settings_json), sb = json::parse(b.settings_json);
  for (const auto& [k, v] : sb.items()) {
    if (!sa.contains(k) || sa[k] != v) return HeaderDifference{"setting " + k, sa.contains(k) ? sa[k].dump() : "absent", v.dump()};
  }
  return std::nullopt;
}

void check_resume_header(const JournalHeader& existing, const JournalHeader& wanted,
                         const std::string& path) {
  auto fail = [&](const std::string& what, const std::string& have, const std::string& want) {
    throw MismatchError(fmt::format("{}: cannot resume: journal {} is {}, this run's is {}", path,
                                    what, have, want));
  };
  if (const auto d = header_difference(existing, wanted)) fail(d->field, d->first, d->second);
  if (existing.shard_index != wanted.shard_index || existing.shard_count != wanted.shard_count) {
    fail("shard", fmt::format("{}/{}", existing.shard_index, existing.shard_count),
         fmt::format("{}/{}", wanted.shard_index, wanted.shard_count));
  }
}

void check_reference_model(const std::string& path, const ModelInfo& source) {
  if (!fs::is_regular_file(path)) {
    throw InputError(fmt::format("--reference-model {}: no such file (or not a regular file)", path));
  }
  const ModelInfo ref = inspect_model(path);  // InputError: not a GGUF, truncated
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& t : ref.tensors) shapes[t.name] = t.shape;
  for (const auto& t : source.tensors) {
    auto it = shapes.find(t.name);
    if (it == shapes.end() || it->second != t.shape) {
      throw MismatchError(fmt::format("--reference-model {} is not a version of {}: tensor {} {}", path, source.path,
                                      t.name, it == shapes.end() ? "is missing" : "has another shape"));
    }
  }
  if (ref.tensors.size() != source.tensors.size() || ref.arch != source.arch) {
    throw MismatchError(fmt::format("--reference-model {} is not a version of {}: {} {} tensors vs {} {}", path,
                                    source.path, ref.arch, ref.tensors.size(), source.arch, source.tensors.size()));
  }
}

}  // namespace cb::measure

namespace cb::measure {

std::optional<SweepTypes> sweep_around(const std::string& base_preset) {
  const auto mix = find_stock_mix(base_preset);
  if (!mix || mix->family != "k") return std::nullopt;
  const std::string lower = ascii_lower(mix->name);  // "q5_k_m" -> main type q5_K
  const std::string main = lower.size() >= 4 ? lower.substr(0, 2) + (lower[3] == 'k' ? "_K" : lower.substr(2, 2)) : "";
  const auto& ladder = k_ladder();
  const auto it = std::find(ladder.begin(), ladder.end(), main);
  if (it == ladder.end()) return std::nullopt;
  const auto at = it - ladder.begin();
  SweepTypes s;
  for (auto k = std::max<std::ptrdiff_t>(0, at - 2); k < at; ++k) s.targets.push_back(ladder[k]);
  for (auto k = at + 1; k < std::min<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(ladder.size()), at + 4); ++k) {
    s.promote.push_back(ladder[k]);
  }
  return s;
}

void check_measure_options(const MeasureOptions& o) {
  if (o.texts.empty()) throw UsageError("measure needs at least one --text");
  if (o.out_path.empty()) throw UsageError("measure needs --out");
  {
    std::vector<std::string> inputs = {o.source_path, o.reference_model};
    for (const auto& t : o.texts) inputs.push_back(t.path);
    check_output_path(o.out_path, inputs);
  }
  if (o.targets.empty() && o.promote.empty()) throw UsageError("no --targets and no --promote");
  if (!o.reference_model.empty() && o.mode != EvalMode::kResident) {
    throw UsageError("--reference-model needs --mode resident");
  }
  if (o.stop.min_chunks < 1 || o.stop.max_chunks < o.stop.min_chunks) {
    throw UsageError(fmt::format("chunks: need 1 <= min ({}) <= max ({})", o.stop.min_chunks,
                                 o.stop.max_chunks));
  }
  if (o.stop.blocks_per_chunk < 1) throw UsageError("--blocks must be >= 1");
  if (o.stop.step_chunks < 1) throw UsageError("--step-chunks must be >= 1");
  std::set<std::string> domains;
  for (const auto& t : o.texts) {
    if (!domains.insert(t.domain).second) throw UsageError("domain \"" + t.domain + "\" given twice");
  }
  for (const auto& t : o.targets) type_by_name(t);
  for (const auto& t : o.promote) type_by_name(t);
  if ((o.shard.sharded() || o.claim) && (o.plan == PlanLevel::kAuto || o.probes.enabled)) {
    // Both read other units' results (which groups to split, the top units).
    throw UsageError("--shard and MPI runs work with --plan tensors|groups|layers and without --probes");
  }
  for (const auto& t : o.texts) {  // before anything is built: the shared stores are there
    const std::string store = reference_store_path(o.shared_reference, t.domain);
    if (!o.shared_reference.empty() && !o.reference_only && !fs::exists(store)) {
      throw InputError(fmt::format("--shared-reference: no store {} (make it with `measure --reference-only --out {}` "
                                   "and the same settings)", store, o.shared_reference));
    }
  }
  if (o.shard.sharded() && o.reference_only) throw UsageError("--reference-only makes the stores every shard shares: run it without --shard");
}

MeasureOptions end_to_end_sweep() {
  MeasureOptions o;
  o.base = "auto";  // quantize: the k-quant mix at the budget (sweep_around)
  o.targets = {};   // empty: two rungs below and up to three above the base's type
  o.promote = {};
  o.stop.min_chunks = 4;
  o.stop.max_chunks = 16;
  return o;
}

// A journal whose header line itself was torn (killed while creating it)
// holds nothing: start over.
void drop_torn_header(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  const std::string text = read_file(path);
  if (text.find('\n') == std::string::npos) fs::remove(path, ec);
}

std::string reference_store_prefix(const MeasureOptions& o) {
  const fs::path out(o.out_path);
  const fs::path dir = o.reference_dir.empty() ? out.parent_path() : fs::path(o.reference_dir);
  return (dir / out.filename()).string();
}

std::string reference_store_path(const std::string& prefix, const std::string& domain) {
  return prefix + "." + domain + ".ref";
}

}  // namespace cb::measure
