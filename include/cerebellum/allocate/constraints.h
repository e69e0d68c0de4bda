// Constraints (data, cerebellum.constraints/1) and the objective's domain weights.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace cb {


struct TypeRule {
  std::string name_regex;   // matches the whole tensor name; empty = any
  std::string role_regex;   // matches the whole role; empty = any
  std::string min_type;     // floor by bits per weight; empty = none
  std::string max_type;     // ceiling by bits per weight; empty = none
  std::vector<std::string> types;  // if non-empty, only these
};

struct Constraints {
  // Candidate types for every tensor (the base type is always added): the
  // k-quant ladder, the i-quants and legacy types stock llama-quantize writes
  // and runs on CPU, f16. Types that need an imatrix (iq3_xxs, iq2_*: see
  // type_needs_imatrix) are candidates only for tensors the build's imatrix
  // covers (DamageOptions::imatrix_tensors). Without a quantization-error table
  // only the ladder (kProxyLadder) is priced: the bpw proxy cannot tell type
  // families of one size apart.
  std::vector<std::string> allowed_types{"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_0",
                                         "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s",
                                         "iq4_xs", "iq4_nl", "q4_0", "q4_1", "q5_0", "q5_1", "f16"};
  std::vector<std::string> never_quantize;  // name regexes: keep the source type
  // Roles that keep their source type unless the journal measured them (routers
  // steer every token; an unmeasured change there is a blind bet).
  std::vector<std::string> keep_source_unless_measured_roles{"router", "router_shexp"};
  std::vector<TypeRule> rules;  // all matching rules apply (intersection)
  // Let tensors stock llama-quantize refuses (norms, routers, conv1d) change type;
  // such types go only to plan.json / our build, never to tensor_types.txt.
  bool allow_stock_refused = false;
};

Constraints constraints_from_json(const nlohmann::json& j, const std::string& where);
// A constraints JSON file ("" = the defaults); RecipeError / InputError naming it.
Constraints load_constraints(const std::string& path);
nlohmann::json to_json(const Constraints& c);

// ---- objective ----------------------------------------------------------------

// Domain weights, normalised to sum 1. "general" = every domain in the journal,
// equal weights; a domain name = that domain alone; "wiki:0.4,code:0.6" = explicit.
std::map<std::string, double> parse_objective(const std::string& spec,
                                              const std::vector<std::string>& journal_domains);

}  // namespace cb
