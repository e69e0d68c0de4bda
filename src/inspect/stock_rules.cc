#include "inspect/stock_rules.h"

namespace cb {
namespace {

// Substrings that exclude a tensor (llama-quant.cpp, tensor_allows_quantization).
constexpr const char* kExcludedSubstrings[] = {
    "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
    "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
    "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight",
    "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
    "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
    "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
    ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd",
    ".patch_merger", "a.rvq.codebook", "mm.a.code_embd"};

// Exact names excluded (positional embeddings, BERT token types).
constexpr const char* kExcludedNames[] = {"position_embd.weight", "token_types.weight"};

}  // namespace

bool stock_would_quantize(const std::string& name, int n_dims) {
  if (n_dims < 2) return false;
  const std::string suffix = "weight";
  if (name.size() < suffix.size() ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  for (const char* s : kExcludedSubstrings) {
    if (name.find(s) != std::string::npos) return false;
  }
  for (const char* s : kExcludedNames) {
    if (name == s) return false;
  }
  return true;
}

}  // namespace cb
