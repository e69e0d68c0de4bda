// Model metadata checked before llama.cpp sees a file: values it would trip a
// GGML_ASSERT on (abort), divide by, or look up with .at() (issue 15) become an
// InputError naming the key. Shapes against hparams are llama.cpp's own check
// (it throws, and the load fails cleanly).
#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
#include <vector>
#include <map>
#include <set>
#include <string>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "engine/engine.h"
#include "ggml.h"
#include "gguf.h"

namespace cb::engine {
namespace {

constexpr int64_t kMaxLayers = 512;  // LLAMA_MAX_LAYERS in the pinned llama-hparams.h

// "blk.<n>." -> n, -1 otherwise.
int64_t layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  size_t i = 4;
  int64_t n = 0;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])) && n < 1'000'000) {
    n = n * 10 + (name[i++] - '0');
  }
  return i > 4 && i < name.size() && name[i] == '.' ? n : -1;
}

void check_layers(const GgufFile& f, const std::string& arch) {
  int64_t max_layer = -1;
  for (int64_t i = 0; i < f.n_tensors(); ++i) max_layer = std::max(max_layer, layer_of(f.tensor_name(i)));
  const std::string key = arch + ".block_count";
  const int64_t n = f.get_int(key, -1);
  if (max_layer < 0 && !f.has_key(key)) return;  // not a layered model (e.g. a vocab-only file)
  if (n < 1 || n > kMaxLayers) {
    throw InputError(fmt::format("{}: {} is {} (must be 1..{})", f.path(), key, n, kMaxLayers));
  }
  if (max_layer + 1 != n) {
    throw InputError(fmt::format("{}: {} is {} but the tensors have {} layers (blk.0 .. blk.{})", f.path(), key, n,
                                 max_layer + 1, max_layer));
  }
}

void check_positive(const GgufFile& f, const std::string& key) {
  const int64_t id = gguf_find_key(f.ctx(), key.c_str());
  if (id < 0 || gguf_get_kv_type(f.ctx(), id) == GGUF_TYPE_ARRAY) return;  // per-layer arrays: llama.cpp's check
  if (f.get_int(key, 0) < 1) {
    throw InputError(fmt::format("{}: {} is {} (must be positive)", f.path(), key, f.get_int(key, 0)));
  }
}

// GPT-2's byte-to-symbol map (bytes_to_unicode): printable bytes stand for
// themselves, the rest for code points 256 + n, as llama.cpp's unicode.cpp.
std::string gpt2_byte_symbol(int byte, int* next_extra) {
  const bool printable = (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || byte >= 174;
  const int cp = printable ? byte : 256 + (*next_extra)++;
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

void check_vocab(const GgufFile& f) {
  const int64_t id = gguf_find_key(f.ctx(), "tokenizer.ggml.tokens");
  if (id < 0) return;
  const std::string key = "tokenizer.ggml.tokens";
  if (gguf_get_kv_type(f.ctx(), id) != GGUF_TYPE_ARRAY || gguf_get_arr_type(f.ctx(), id) != GGUF_TYPE_STRING) {
    throw InputError(fmt::format("{}: {} is not an array of strings", f.path(), key));
  }
  const size_t n = gguf_get_arr_n(f.ctx(), id);
  if (n == 0) throw InputError(fmt::format("{}: {} is empty", f.path(), key));
  std::map<std::string, size_t> ids;
  for (size_t i = 0; i < n; ++i) {
    const auto [it, fresh] = ids.emplace(gguf_get_arr_str(f.ctx(), id, i), i);
    if (!fresh) {
      throw InputError(fmt::format("{}: {} has token '{}' twice (ids {} and {})", f.path(), key, it->first,
                                   it->second, i));
    }
  }
  for (const char* k : {"tokenizer.ggml.scores", "tokenizer.ggml.token_type"}) {
    const int64_t a = gguf_find_key(f.ctx(), k);
    if (a >= 0 && (gguf_get_kv_type(f.ctx(), a) != GGUF_TYPE_ARRAY || gguf_get_arr_n(f.ctx(), a) != n)) {
      throw InputError(fmt::format("{}: {} does not have one entry per token ({})", f.path(), k, n));
    }
  }
  // Byte fallback: llama.cpp looks bytes up with .at() (SPM: "<0xXX>" or the
  // byte itself; BPE: its GPT-2 symbol); a missing one threw mid-run.
  const std::string model = f.get_string("tokenizer.ggml.model", "");
  if (model != "llama" && model != "gpt2") return;
  int next_extra = 0;
  for (int b = 0; b < 256; ++b) {
    const std::string sym = gpt2_byte_symbol(b, &next_extra);
    const bool ok = model == "gpt2" ? ids.count(sym) > 0
                                    : ids.count(fmt::format("<0x{:02X}>", b)) > 0 ||
                                          (b < 0x80 && ids.count(std::string(1, static_cast<char>(b))) > 0);
    if (!ok) {
      throw InputError(fmt::format("{}: {} ({} tokenizer) has no token for byte 0x{:02X}", f.path(), key, model, b));
    }
  }
}

}  // namespace

void check_model_metadata(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture", "");
  if (arch.empty()) throw InputError(fmt::format("{}: general.architecture is missing", f.path()));
  check_layers(f, arch);
  for (const char* k : {".embedding_length", ".attention.head_count", ".attention.head_count_kv",
                        ".context_length", ".feed_forward_length", ".vocab_size"}) {
    check_positive(f, arch + k);
  }
  check_vocab(f);
}

void validate_model_file(const std::string& path) { check_model_metadata(GgufFile(path)); }

namespace {

// Whether every value of a tensor's bytes decodes to a finite float (ggml's
// own dequantizer: a NaN block scale shows as NaN values).
bool all_finite(ggml_type type, const std::vector<char>& bytes, int64_t n_elements) {
  if (type == GGML_TYPE_F32) {
    const auto* v = reinterpret_cast<const float*>(bytes.data());
    return std::all_of(v, v + n_elements, [](float x) { return std::isfinite(x); });
  }
  const auto* traits = ggml_get_type_traits(type);
  if (!traits->to_float) return true;  // integer types
  const int64_t block = ggml_blck_size(type), chunk = block * 4096;
  std::vector<float> out(static_cast<size_t>(chunk));
  for (int64_t done = 0; done < n_elements; done += chunk) {
    const int64_t n = std::min(chunk, n_elements - done);
    traits->to_float(bytes.data() + done / block * ggml_type_size(type), out.data(), n);
    if (!std::all_of(out.begin(), out.begin() + n, [](float x) { return std::isfinite(x); })) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> first_non_finite_tensor(const std::string& path) {
  const GgufFile f(path);
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf;
  for (int64_t i = 0; i < f.n_tensors(); ++i) {
    buf.resize(f.tensor_size_bytes(i));
    in.seekg(static_cast<std::streamoff>(f.data_offset() + f.tensor_offset(i)));
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (!in) throw InputError(fmt::format("{}: cannot read tensor {}", path, f.tensor_name(i)));
    int64_t n = 1;
    for (const int64_t d : f.tensor_shape(i)) n *= d;
    if (!all_finite(static_cast<ggml_type>(f.tensor_type(i)), buf, n)) return f.tensor_name(i);
  }
  return std::nullopt;
}

}  // namespace cb::engine
