#include "synthetic_gguf.h"

#include <cstring>
#include <random>
#include <stdexcept>

#include "ggml.h"
#include "gguf.h"

namespace cb::test {

SyntheticGguf write_synthetic_gguf(const std::string& path, uint32_t seed, const std::string& name) {
  SyntheticGguf s;
  s.path = path;
  ggml_init_params ip{1 << 20, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* w = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 512, 8);
  ggml_set_name(w, "blk.0.ffn_up.weight");
  ggml_tensor* n = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 512);
  ggml_set_name(n, "blk.0.ffn_norm.weight");
  ggml_tensor* k = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 96, 4);
  ggml_set_name(k, "blk.0.attn_k.weight");
  std::memset(k->data, 0, ggml_nbytes(k));
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 0.02f);
  s.w.resize(512 * 8);
  for (float& x : s.w) x = gauss(rng);
  std::memcpy(w->data, s.w.data(), s.w.size() * sizeof(float));
  for (int i = 0; i < 512; ++i) static_cast<float*>(n->data)[i] = 1.0f;
  gguf_context* g = gguf_init_empty();
  gguf_set_val_str(g, "general.architecture", "llama");
  if (!name.empty()) gguf_set_val_str(g, "general.name", name.c_str());
  gguf_add_tensor(g, w);
  gguf_add_tensor(g, n);
  gguf_add_tensor(g, k);
  const bool ok = gguf_write_to_file(g, path.c_str(), false);
  gguf_free(g);
  ggml_free(ctx);
  if (!ok) throw std::runtime_error("cannot write " + path);
  return s;
}

}  // namespace cb::test
