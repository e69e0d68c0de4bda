#include "cerebellum/measure/original.h"

#include <cctype>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/error.h"
#include "cerebellum/common/pattern.h"
#include "cerebellum/common/quant_types.h"

namespace cb::measure {
namespace {

using nlohmann::json;

constexpr const char* kImportedFrom = "cerebellum-original";

bool looks_like_regex(const std::string& s) { return s.find_first_of("^$|()[]{}*+?\\") != s.npos; }

// "blk.5.ffn_down.weight" -> "blk_5_ffn_down" (the original's key style).
std::string test_key(const JournalUnit& u) {
  std::string k = u.id;
  if (looks_like_regex(k)) {
    std::string clean;
    for (char c : k) clean += std::isalnum(static_cast<unsigned char>(c)) || c == '_' ? c : '_';
    return clean;
  }
  if (k.size() > 7 && k.ends_with(".weight")) k.resize(k.size() - 7);
  for (char& c : k) c = c == '.' ? '_' : c;
  return k;
}

std::string unit_pattern(const JournalUnit& u) {
  if (looks_like_regex(u.id)) return u.id;  // imported regex group: kept verbatim
  if (u.level == "tensor" && u.tensors.size() <= 1) return u.tensors.empty() ? u.id : u.tensors[0];
  std::vector<std::string> parts;
  for (const auto& t : u.tensors) parts.push_back(escape_pattern(t));
  return fmt::format("^({})$", fmt::join(parts, "|"));
}

std::string first_ablation_type(const Journal& j) {
  for (const auto& m : j.measurements) {
    if (m.direction == "ablate" && !m.types.empty()) return m.types.begin()->second;
  }
  throw InputError("journal has no ablation measurement to export");
}

double round4(double x) { return std::round(x * 1e4) / 1e4; }

}  // namespace

bool is_imported(const Journal& journal) {
  const json s = json::parse(journal.header.settings_json, nullptr, false);
  return s.is_object() && s.value("imported_from", "") == kImportedFrom;
}

json export_original(const Journal& journal, const ExportOriginalOptions& options) {
  const std::string type =
      options.type.empty() ? first_ablation_type(journal) : type_by_name(options.type).name;
  std::map<std::string, double> base_ppl;
  for (const auto& b : journal.baselines) {
    if (b.metrics.ppl) base_ppl[b.domain] = *b.metrics.ppl;
  }
  if (base_ppl.empty()) throw InputError("journal has no baseline with a PPL");
  const bool multi = options.force_multi_domain || base_ppl.size() > 1;
  json out;
  if (multi) {
    out["baseline_ppl"] = json::object();
    for (const auto& [d, p] : base_ppl) out["baseline_ppl"][d] = round4(p);
    out["base_type"] = journal.header.base_name;
    out["ablate_type"] = type;
  } else {
    out["baseline_ppl"] = round4(base_ppl.begin()->second);
  }
  json tests = json::object();
  for (const auto& m : journal.measurements) {
    if (m.direction != "ablate" || !base_ppl.count(m.domain) || !m.delta_ln_ppl) continue;
    bool all_type = !m.types.empty();
    for (const auto& [t, ty] : m.types) all_type = all_type && type_by_name(ty).name == type;
    if (!all_type) continue;  // fallbacks to other types: kept, unless nothing matches
    const double ppl = round4(base_ppl.at(m.domain) * std::exp(*m.delta_ln_ppl));
    json& t = tests[test_key(m.unit)];
    t["gguf_tensor"] = unit_pattern(m.unit);
    if (!multi) {
      t["ppl"] = ppl;
      continue;
    }
    const double b = base_ppl.at(m.domain);
    t["tensor_count"] = m.unit.tensors.size();
    t["ppl"][m.domain] = ppl;
    t["delta"][m.domain] = round4(ppl - b);
    t["delta_pct"][m.domain] = std::round(100 * 100 * (ppl / b - 1)) / 100;
  }
  if (tests.empty()) throw InputError(fmt::format("journal has no ablation to {} with a PPL", type));
  out["tests"] = tests;
  return out;
}

namespace {

JournalUnit import_unit(const std::string& key, const std::string& pattern,
                        const ModelInfo* model) {
  JournalUnit u;
  if (!looks_like_regex(pattern)) {
    u.id = pattern, u.level = "tensor", u.tensors = {pattern};
    return u;
  }
  u.id = pattern, u.level = "group";
  if (model) {
    const Pattern re(pattern, key);
    for (const auto& t : model->tensors) {
      if (re.search(t.name)) u.tensors.push_back(t.name);
    }
  }
  return u;
}

void add_test(Journal& j, const std::string& key, const json& t, const std::string& domain,
              double ppl, double base_ppl, const std::string& type, const ModelInfo* model) {
  JournalMeasurement m;
  m.domain = domain;
  m.unit = import_unit(key, t.at("gguf_tensor").get<std::string>(), model);
  for (const auto& name : m.unit.tensors) m.types[name] = type;
  if (m.types.empty()) m.types[m.unit.id] = type;  // an unresolved group: keep its type
  m.metrics.ppl = ppl;
  m.delta_ln_ppl = std::log(ppl) - std::log(base_ppl);
  m.stopped = "imported";
  j.measurements.push_back(std::move(m));
}

}  // namespace

namespace {
Journal import_checked(const json& original, const ImportOriginalOptions& o);
}  // namespace

Journal import_original(const json& original, const ImportOriginalOptions& o) {
  try {
    return import_checked(original, o);
  } catch (const json::exception& e) {
    throw InputError(fmt::format("malformed ablation_results.json ({})", e.what()));
  }
}

namespace {
Journal import_checked(const json& original, const ImportOriginalOptions& o) {
  if (!original.is_object() || !original.contains("baseline_ppl") || !original.contains("tests") ||
      !original["tests"].is_object()) {
    throw InputError("not an original ablation_results.json (needs baseline_ppl and tests)");
  }
  const std::string type =
      type_by_name(original.value("ablate_type", o.type)).name;  // upper-case names accepted
  Journal j;
  j.header.tool_version = "import";
  j.header.model_sha256 = o.model_sha256;
  if (o.model) j.header.model_path = o.model->path;
  j.header.base_name = original.value("base_type", o.base);
  j.header.settings_json =
      json{{"imported_from", kImportedFrom}, {"metrics", {"ppl"}}, {"ablate_type", type}}.dump();
  std::map<std::string, double> base;
  const json& bp = original["baseline_ppl"];
  if (bp.is_number()) {
    base[o.domain] = bp.get<double>();
  } else if (bp.is_object()) {
    for (const auto& [d, v] : bp.items()) base[d] = v.get<double>();
  } else {
    throw InputError("baseline_ppl is neither a number nor {domain: ppl}");
  }
  for (const auto& [d, p] : base) {
    JournalBaseline b;
    b.domain = d;
    b.metrics.ppl = p;
    j.baselines.push_back(b);
    j.header.texts.push_back({d, "", ""});
  }
  try {
    for (const auto& [key, t] : original["tests"].items()) {
      if (t.contains("error") || !t.contains("ppl") || !t.contains("gguf_tensor")) continue;
      if (t["ppl"].is_number()) {
        add_test(j, key, t, base.begin()->first, t["ppl"].get<double>(), base.begin()->second,
                 type, o.model);
      } else {
        for (const auto& [d, v] : t["ppl"].items()) {
          if (base.count(d) && v.is_number()) {
            add_test(j, key, t, d, v.get<double>(), base.at(d), type, o.model);
          }
        }
      }
    }
  } catch (const json::exception& e) {
    throw InputError(fmt::format("malformed original ablation file: {}", e.what()));
  }
  return j;
}
}  // namespace

}  // namespace cb::measure
