// A small synthetic GGUF for unit tests of the engine and build pieces that
// need a file but no model: no vocab, no llama.cpp load.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cb::test {

struct SyntheticGguf {
  std::string path;
  std::vector<float> w;  // blk.0.ffn_up.weight, 512 x 8 (8 rows of 512), Gaussian, sd 0.02
};

// Writes blk.0.ffn_up.weight (F32 512x8, weights from `seed`),
// blk.0.ffn_norm.weight (F32, 512 ones) and blk.0.attn_k.weight (F32 96x4,
// zeros: rows fit no 256-element block) to `path`; `name` (when given) as
// general.name, to change the metadata size.
SyntheticGguf write_synthetic_gguf(const std::string& path, uint32_t seed = 7, const std::string& name = "");

}  // namespace cb::test
