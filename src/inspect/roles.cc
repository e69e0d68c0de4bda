// The role table: tensor-name patterns to roles, as data. Patterns match the
// name with its "blk.N." prefix and ".weight"/".bias" suffix removed.
// First match wins, so specific patterns come before general ones.
#include <regex>
#include <string>
#include <vector>

#include "cerebellum/inspect/inspect.h"

namespace cb {
namespace {

struct RoleRule {
  const char* pattern;
  const char* role;
};

constexpr RoleRule kRoleRules[] = {
    {"token_embd", "token_embd"},
    {"per_layer_token_embd", "token_embd"},
    {"output", "output"},
    {"output_norm", "norm"},
    {"rope_freqs", "rope"},
    {"attn_q", "attn_q"},
    {"attn_k", "attn_k"},
    {"attn_v", "attn_v"},
    {"attn_qkv", "attn_qkv"},
    {"attn_output", "attn_output"},
    {"attn_kv_b", "attn_kv_b"},
    {"attn_q_a|attn_q_b|attn_kv_a_mqa|attn_k_b|attn_v_b", "attn_mla"},
    {"ffn_gate_inp_shexp", "router_shexp"},
    {"ffn_gate_inp", "router"},
    {"exp_probs_b", "router"},
    {"ffn_gate_exps", "ffn_gate_exps"},
    {"ffn_up_exps", "ffn_up_exps"},
    {"ffn_down_exps", "ffn_down_exps"},
    {"ffn_gate_shexp", "ffn_gate_shexp"},
    {"ffn_up_shexp", "ffn_up_shexp"},
    {"ffn_down_shexp", "ffn_down_shexp"},
    {"ffn_gate", "ffn_gate"},
    {"ffn_up", "ffn_up"},
    {"ffn_down", "ffn_down"},
    {"ssm_in", "ssm_in"},
    {"ssm_out", "ssm_out"},
    {"ssm_conv1d", "ssm_conv1d"},
    {"ssm_x", "ssm_x"},
    {"ssm_dt", "ssm_dt"},
    {"ssm_a", "ssm_a"},
    {"ssm_d", "ssm_d"},
    {"ssm_norm", "norm"},
    {".*_norm.*|.*norm", "norm"},
};

struct CompiledRule {
  std::regex re;
  std::string role;
};

const std::vector<CompiledRule>& compiled_rules() {
  static const std::vector<CompiledRule> rules = [] {
    std::vector<CompiledRule> out;
    for (const auto& r : kRoleRules) out.push_back({std::regex(r.pattern), r.role});
    return out;
  }();
  return rules;
}

std::string stem_of(const std::string& name) {
  static const std::regex prefix(R"(^blk\.\d+\.)");
  std::string stem = std::regex_replace(name, prefix, "");
  for (const char* suffix : {".weight", ".bias"}) {
    const std::string s(suffix);
    if (stem.size() > s.size() && stem.compare(stem.size() - s.size(), s.size(), s) == 0) {
      stem.resize(stem.size() - s.size());
      break;
    }
  }
  return stem;
}

}  // namespace

std::string tensor_role(const std::string& name) {
  const std::string stem = stem_of(name);
  for (const auto& rule : compiled_rules()) {
    if (std::regex_match(stem, rule.re)) return rule.role;
  }
  return "other";
}

int tensor_layer(const std::string& name) {
  static const std::regex layer(R"(^blk\.(\d+)\.)");
  std::smatch m;
  if (std::regex_search(name, m, layer)) return std::stoi(m[1]);
  return -1;
}

}  // namespace cb
