// Constraints and objective specs: parsing and validation (data in, data out).
#include <cmath>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/common/pattern.h"
#include "cerebellum/common/quant_types.h"

namespace cb {
namespace {

using nlohmann::json;

std::string canonical_type(const std::string& name, const std::string& where) {
  auto t = find_type(name);
  if (!t) throw RecipeError(fmt::format("{}: unknown tensor type '{}'", where, name));
  return t->name;
}

void check_regex(const std::string& re, const std::string& where) { check_pattern(re, where); }

std::vector<std::string> string_list(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) return {};
  if (!j[key].is_array()) throw RecipeError(fmt::format("{}: \"{}\" must be a list", where, key));
  return j[key].get<std::vector<std::string>>();
}

TypeRule rule_from_json(const json& r, const std::string& where) {
  TypeRule rule;
  rule.name_regex = r.value("name", "");
  rule.role_regex = r.value("role", "");
  if (!rule.name_regex.empty()) check_regex(rule.name_regex, where);
  if (!rule.role_regex.empty()) check_regex(rule.role_regex, where);
  if (r.contains("min_type")) rule.min_type = canonical_type(r["min_type"], where);
  if (r.contains("max_type")) rule.max_type = canonical_type(r["max_type"], where);
  for (const auto& t : string_list(r, "types", where)) rule.types.push_back(canonical_type(t, where));
  return rule;
}

}  // namespace

namespace {
Constraints parse_constraints(const json& j, const std::string& where);
}  // namespace

// A value of the wrong JSON type is the file's fault, not an internal error.
Constraints constraints_from_json(const json& j, const std::string& where) {
  try {
    return parse_constraints(j, where);
  } catch (const json::exception& e) {
    throw RecipeError(fmt::format("{}: malformed constraints ({})", where, e.what()));
  }
}

namespace {
Constraints parse_constraints(const json& j, const std::string& where) {
  if (!j.is_object()) throw RecipeError(fmt::format("{}: constraints must be a JSON object", where));
  const std::string schema = j.value("schema", kConstraintsSchema);
  if (schema != kConstraintsSchema) {
    throw MismatchError(fmt::format("{}: schema {} is not {}", where, schema, kConstraintsSchema));
  }
  Constraints c;
  if (j.contains("allowed_types")) {
    c.allowed_types.clear();
    for (const auto& t : string_list(j, "allowed_types", where)) {
      c.allowed_types.push_back(canonical_type(t, where));
    }
  }
  c.never_quantize = string_list(j, "never_quantize", where);
  for (const auto& re : c.never_quantize) check_regex(re, where);
  if (j.contains("keep_source_unless_measured_roles")) {
    c.keep_source_unless_measured_roles = string_list(j, "keep_source_unless_measured_roles", where);
  }
  if (j.contains("rules")) {
    for (size_t i = 0; i < j["rules"].size(); ++i) {
      c.rules.push_back(rule_from_json(j["rules"][i], fmt::format("{}: rules[{}]", where, i)));
    }
  }
  c.allow_stock_refused = j.value("allow_stock_refused", false);
  return c;
}
}  // namespace

json to_json(const Constraints& c) {
  json rules = json::array();
  for (const auto& r : c.rules) {
    json jr = json::object();
    if (!r.name_regex.empty()) jr["name"] = r.name_regex;
    if (!r.role_regex.empty()) jr["role"] = r.role_regex;
    if (!r.min_type.empty()) jr["min_type"] = r.min_type;
    if (!r.max_type.empty()) jr["max_type"] = r.max_type;
    if (!r.types.empty()) jr["types"] = r.types;
    rules.push_back(jr);
  }
  return json{{"schema", kConstraintsSchema},
              {"allowed_types", c.allowed_types},
              {"never_quantize", c.never_quantize},
              {"keep_source_unless_measured_roles", c.keep_source_unless_measured_roles},
              {"rules", rules},
              {"allow_stock_refused", c.allow_stock_refused}};
}

std::map<std::string, double> parse_objective(const std::string& spec,
                                              const std::vector<std::string>& domains) {
  std::map<std::string, double> w;
  if (spec.empty() || spec == "general") {
    for (const auto& d : domains) w[d] = 1.0;
  } else if (spec.find(':') == std::string::npos) {
    w[spec] = 1.0;
  } else {
    std::stringstream ss(spec);
    std::string part;
    while (std::getline(ss, part, ',')) {
      const auto colon = part.find(':');
      if (colon == std::string::npos) {
        throw UsageError(fmt::format("objective '{}': expected domain:weight, got '{}'", spec, part));
      }
      try {
        w[part.substr(0, colon)] = std::stod(part.substr(colon + 1));
      } catch (const std::exception&) {
        throw UsageError(fmt::format("objective '{}': bad weight in '{}'", spec, part));
      }
    }
  }
  double total = 0;
  for (const auto& [d, v] : w) {
    if (v < 0) throw UsageError(fmt::format("objective '{}': negative weight for {}", spec, d));
    if (v > 0 && std::find(domains.begin(), domains.end(), d) == domains.end()) {
      throw UsageError(fmt::format("objective '{}': the journal has no '{}' measurements", spec, d));
    }
    total += v;
  }
  if (!(total > 0)) throw UsageError(fmt::format("objective '{}': no weight on any measured domain", spec));
  for (auto& [d, v] : w) v /= total;
  return w;
}

Constraints load_constraints(const std::string& path) {
  if (path.empty()) return {};
  const json j = json::parse(read_file(path), nullptr, false);
  if (j.is_discarded()) throw InputError(fmt::format("{}: not valid JSON", path));
  return constraints_from_json(j, path);
}

}  // namespace cb
