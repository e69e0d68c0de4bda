// cb-gen-model: writes a GGUF of realistic shape with random weights, for
// time and memory benchmarks only (quality numbers from random weights mean
// nothing and are never reported as quality).
//
//   cb-gen-model --preset 8b --vocab-from ../shared/models/cb-dense-12l-F16.gguf --out m.gguf
//   cb-gen-model --arch qwen3moe --n-embd 1024 --n-layer 8 --n-expert 16 ... --out moe.gguf
//
// The tokenizer is copied from --vocab-from (a SentencePiece llama vocab) and
// padded with unused tokens to --n-vocab, so any text tokenizes as it does
// for that model and the embedding/output tensors have the real shapes.
// Weights are F16, uniform with the standard deviation of a 0.02 normal;
// norms are 1. Written tensor by tensor (memory: one tensor).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ggml.h"
#include "gguf.h"

namespace {

struct Shape {
  std::string arch = "llama";
  int64_t n_embd = 1024, n_ff = 2816, n_layer = 16, n_head = 16, n_head_kv = 8, n_vocab = 32000;
  int64_t n_expert = 0, n_expert_used = 0, n_ff_exp = 0;  // qwen3moe
  bool tied = false;  // no output.weight: the output layer reads token_embd (llama.cpp duplicates it)
};

// Named sizes (n_embd / n_ff / layers / heads / vocab of public models).
const std::map<std::string, Shape> kPresets = {
    {"0.2b", {"llama", 1024, 2816, 16, 16, 8, 32000}},
    {"0.8b", {"llama", 2048, 5632, 16, 16, 8, 32000}},
    {"8b", {"llama", 4096, 14336, 32, 32, 8, 128256}},     // Llama-3-8B
    {"14b", {"llama", 5120, 13824, 40, 40, 8, 152064}},    // Qwen2.5-14B-like
    {"24b", {"llama", 5120, 32768, 40, 32, 8, 131072}},    // Mistral-Small-24B
    {"moe-1b", {"qwen3moe", 1024, 0, 12, 16, 4, 32000, 32, 4, 512}},
    {"1b-tied", {"llama", 2048, 8192, 16, 32, 8, 128256, 0, 0, 0, true}},  // Llama-3.2-1B
};

struct TensorSpec {
  std::string name;
  std::vector<int64_t> ne;
  bool norm = false;
};

std::vector<TensorSpec> tensors_of(const Shape& s) {
  const int64_t head_dim = s.n_embd / s.n_head, kv = head_dim * s.n_head_kv;
  std::vector<TensorSpec> t = {{"token_embd.weight", {s.n_embd, s.n_vocab}}};
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    t.push_back({b + "attn_norm.weight", {s.n_embd}, true});
    t.push_back({b + "attn_q.weight", {s.n_embd, s.n_embd}});
    t.push_back({b + "attn_k.weight", {s.n_embd, kv}});
    t.push_back({b + "attn_v.weight", {s.n_embd, kv}});
    t.push_back({b + "attn_output.weight", {s.n_embd, s.n_embd}});
    t.push_back({b + "ffn_norm.weight", {s.n_embd}, true});
    if (s.arch == "qwen3moe") {
      t.push_back({b + "attn_q_norm.weight", {head_dim}, true});
      t.push_back({b + "attn_k_norm.weight", {head_dim}, true});
      t.push_back({b + "ffn_gate_inp.weight", {s.n_embd, s.n_expert}});
      t.push_back({b + "ffn_gate_exps.weight", {s.n_embd, s.n_ff_exp, s.n_expert}});
      t.push_back({b + "ffn_up_exps.weight", {s.n_embd, s.n_ff_exp, s.n_expert}});
      t.push_back({b + "ffn_down_exps.weight", {s.n_ff_exp, s.n_embd, s.n_expert}});
    } else {
      t.push_back({b + "ffn_gate.weight", {s.n_embd, s.n_ff}});
      t.push_back({b + "ffn_up.weight", {s.n_embd, s.n_ff}});
      t.push_back({b + "ffn_down.weight", {s.n_ff, s.n_embd}});
    }
  }
  t.push_back({"output_norm.weight", {s.n_embd}, true});
  if (!s.tied) t.push_back({"output.weight", {s.n_embd, s.n_vocab}});
  return t;
}

void set_hparams(gguf_context* g, const Shape& s) {
  const std::string a = s.arch;
  auto k = [&](const char* key) { return a + "." + key; };
  gguf_set_val_str(g, "general.architecture", a.c_str());
  gguf_set_val_str(g, "general.name", ("cb-gen-" + a + " random weights").c_str());
  gguf_set_val_u32(g, "general.file_type", 1);  // MOSTLY_F16
  gguf_set_val_u32(g, k("context_length").c_str(), 8192);
  gguf_set_val_u32(g, k("embedding_length").c_str(), static_cast<uint32_t>(s.n_embd));
  gguf_set_val_u32(g, k("block_count").c_str(), static_cast<uint32_t>(s.n_layer));
  gguf_set_val_u32(g, k("attention.head_count").c_str(), static_cast<uint32_t>(s.n_head));
  gguf_set_val_u32(g, k("attention.head_count_kv").c_str(), static_cast<uint32_t>(s.n_head_kv));
  gguf_set_val_u32(g, k("rope.dimension_count").c_str(), static_cast<uint32_t>(s.n_embd / s.n_head));
  gguf_set_val_f32(g, k("attention.layer_norm_rms_epsilon").c_str(), 1e-5f);
  gguf_set_val_f32(g, k("rope.freq_base").c_str(), 10000.0f);
  if (a == "qwen3moe") {
    gguf_set_val_u32(g, k("expert_count").c_str(), static_cast<uint32_t>(s.n_expert));
    gguf_set_val_u32(g, k("expert_used_count").c_str(), static_cast<uint32_t>(s.n_expert_used));
    gguf_set_val_u32(g, k("expert_feed_forward_length").c_str(), static_cast<uint32_t>(s.n_ff_exp));
    gguf_set_val_u32(g, k("feed_forward_length").c_str(), static_cast<uint32_t>(s.n_ff_exp));
    gguf_set_val_u32(g, k("attention.key_length").c_str(), static_cast<uint32_t>(s.n_embd / s.n_head));
    gguf_set_val_u32(g, k("attention.value_length").c_str(), static_cast<uint32_t>(s.n_embd / s.n_head));
  } else {
    gguf_set_val_u32(g, k("feed_forward_length").c_str(), static_cast<uint32_t>(s.n_ff));
  }
}

// Copies the tokenizer keys of `from`, padding the token arrays to n_vocab.
void copy_vocab(gguf_context* g, const std::string& from, int64_t n_vocab) {
  gguf_init_params p{/*no_alloc=*/true, nullptr};
  gguf_context* src = gguf_init_from_file(from.c_str(), p);
  if (!src) throw std::runtime_error("cannot read " + from);
  for (int64_t i = 0; i < gguf_get_n_kv(src); ++i) {
    const std::string key = gguf_get_key(src, i);
    if (key.rfind("tokenizer.", 0) != 0 || gguf_get_kv_type(src, i) == GGUF_TYPE_ARRAY) continue;
    if (gguf_get_kv_type(src, i) == GGUF_TYPE_STRING) gguf_set_val_str(g, key.c_str(), gguf_get_val_str(src, i));
    if (gguf_get_kv_type(src, i) == GGUF_TYPE_UINT32) gguf_set_val_u32(g, key.c_str(), gguf_get_val_u32(src, i));
    if (gguf_get_kv_type(src, i) == GGUF_TYPE_BOOL) gguf_set_val_bool(g, key.c_str(), gguf_get_val_bool(src, i));
  }
  const int64_t kt = gguf_find_key(src, "tokenizer.ggml.tokens");
  const int64_t n_src = static_cast<int64_t>(gguf_get_arr_n(src, kt));
  if (n_vocab < n_src) throw std::runtime_error("--n-vocab is smaller than the source vocab");
  std::vector<std::string> texts;
  for (int64_t i = 0; i < n_src; ++i) texts.push_back(gguf_get_arr_str(src, kt, i));
  for (int64_t i = n_src; i < n_vocab; ++i) texts.push_back("<unused_" + std::to_string(i) + ">");
  std::vector<const char*> ptrs;
  for (const auto& t : texts) ptrs.push_back(t.c_str());
  gguf_set_arr_str(g, "tokenizer.ggml.tokens", ptrs.data(), static_cast<int>(ptrs.size()));
  std::vector<float> scores(n_vocab, -1e4f);
  std::vector<int32_t> types(n_vocab, 5);  // LLAMA_TOKEN_TYPE_UNUSED
  const int64_t ks = gguf_find_key(src, "tokenizer.ggml.scores"), ky = gguf_find_key(src, "tokenizer.ggml.token_type");
  std::memcpy(scores.data(), gguf_get_arr_data(src, ks), n_src * sizeof(float));
  std::memcpy(types.data(), gguf_get_arr_data(src, ky), n_src * sizeof(int32_t));
  gguf_set_arr_data(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores.data(), n_vocab);
  gguf_set_arr_data(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types.data(), n_vocab);
  gguf_free(src);
}

// n random F16 values (uniform, sd 0.02), split over threads.
void fill_random(uint16_t* out, int64_t n, uint64_t seed, int n_threads) {
  const float a = 0.02f * 1.7320508f;
  std::vector<std::thread> pool;
  const int64_t per = (n + n_threads - 1) / n_threads;
  for (int t = 0; t < n_threads; ++t) {
    pool.emplace_back([=] {
      std::mt19937_64 rng(seed * 1315423911u + t);
      std::vector<float> buf(4096);
      for (int64_t i = t * per; i < std::min(n, (t + 1) * per); i += 4096) {
        const int64_t m = std::min<int64_t>(4096, std::min(n, (t + 1) * per) - i);
        for (int64_t j = 0; j < m; ++j) buf[j] = a * (static_cast<float>(rng() >> 40) / 8388608.0f - 1.0f);
        ggml_fp32_to_fp16_row(buf.data(), reinterpret_cast<ggml_fp16_t*>(out + i), m);
      }
    });
  }
  for (auto& th : pool) th.join();
}

void usage() {
  std::fprintf(stderr,
               "usage: cb-gen-model (--preset 0.2b|0.8b|8b|14b|24b|moe-1b|1b-tied | --arch llama|qwen3moe --n-embd N "
               "--n-ff N --n-layer N --n-head N --n-head-kv N [--n-expert N --n-expert-used N --n-ff-exp N]) "
               "[--n-vocab N] [--tied] --vocab-from VOCAB.gguf --out OUT.gguf [--seed S] [--threads T]\n");
}

struct Args {
  Shape s;
  std::string out, vocab_from;
  uint64_t seed = 1;
  int n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
};

Args parse_args(int argc, char** argv) {
  Args r;
  Shape& s = r.s;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    auto num = [&] { return std::stoll(next()); };
    if (a == "--preset") {
      const std::string p = next();
      if (!kPresets.count(p)) throw std::runtime_error("unknown preset " + p);
      s = kPresets.at(p);
    } else if (a == "--arch") s.arch = next();
    else if (a == "--n-embd") s.n_embd = num();
    else if (a == "--n-ff") s.n_ff = num();
    else if (a == "--n-layer") s.n_layer = num();
    else if (a == "--n-head") s.n_head = num();
    else if (a == "--n-head-kv") s.n_head_kv = num();
    else if (a == "--n-vocab") s.n_vocab = num();
    else if (a == "--n-expert") s.n_expert = num();
    else if (a == "--n-expert-used") s.n_expert_used = num();
    else if (a == "--n-ff-exp") s.n_ff_exp = num();
    else if (a == "--tied") s.tied = true;
    else if (a == "--vocab-from") r.vocab_from = next();
    else if (a == "--out") r.out = next();
    else if (a == "--seed") r.seed = static_cast<uint64_t>(num());
    else if (a == "--threads") r.n_threads = static_cast<int>(num());
    else throw std::runtime_error("unknown option " + a);
  }
  if (r.out.empty() || r.vocab_from.empty()) throw std::runtime_error("--out and --vocab-from are required");
  if (s.arch != "llama" && s.arch != "qwen3moe") throw std::runtime_error("--arch: llama or qwen3moe");
  return r;
}

// Header, then each tensor's data (norms 1.0, the rest random), into a
// temporary renamed over `out`; false on a write error.
bool write_model(const Args& a, const std::vector<TensorSpec>& specs, gguf_context* g, ggml_context* ctx) {
  const std::string tmp = a.out + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return false;
  std::vector<uint8_t> meta(gguf_get_meta_size(g));
  gguf_get_meta_data(g, meta.data());
  bool ok = std::fwrite(meta.data(), 1, meta.size(), f) == meta.size();
  const size_t align = gguf_get_alignment(g);
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < specs.size() && ok; ++i) {
    const ggml_tensor* x = ggml_get_tensor(ctx, specs[i].name.c_str());
    buf.assign(GGML_PAD(ggml_nbytes(x), align), 0);
    if (specs[i].norm) {
      for (int64_t j = 0; j < ggml_nelements(x); ++j) reinterpret_cast<float*>(buf.data())[j] = 1.0f;
    } else {
      fill_random(reinterpret_cast<uint16_t*>(buf.data()), ggml_nelements(x), a.seed + i, a.n_threads);
    }
    ok = std::fwrite(buf.data(), 1, buf.size(), f) == buf.size();
  }
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), a.out.c_str()) != 0) {
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  try {
    a = parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cb-gen-model: %s\n", e.what());
    usage();
    return 2;
  }
  const std::vector<TensorSpec> specs = tensors_of(a.s);
  ggml_context* ctx = ggml_init({(specs.size() + 1) * ggml_tensor_overhead(), nullptr, true});
  gguf_context* g = gguf_init_empty();
  set_hparams(g, a.s);
  try {
    copy_vocab(g, a.vocab_from, a.s.n_vocab);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cb-gen-model: %s\n", e.what());
    return 1;
  }
  int64_t n_params = 0;
  for (const auto& t : specs) {
    ggml_tensor* x = ggml_new_tensor(ctx, t.norm ? GGML_TYPE_F32 : GGML_TYPE_F16, static_cast<int>(t.ne.size()),
                                     t.ne.data());
    ggml_set_name(x, t.name.c_str());
    gguf_add_tensor(g, x);
    n_params += ggml_nelements(x);
  }
  if (!write_model(a, specs, g, ctx)) {
    std::fprintf(stderr, "cb-gen-model: writing %s failed\n", a.out.c_str());
    return 1;
  }
  std::printf("{\"out\": \"%s\", \"arch\": \"%s\", \"n_params\": %lld, \"n_tensors\": %zu}\n", a.out.c_str(),
              a.s.arch.c_str(), static_cast<long long>(n_params), specs.size());
  gguf_free(g);
  ggml_free(ctx);
  return 0;
}
