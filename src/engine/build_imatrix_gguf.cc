#include "engine/build_imatrix_gguf.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "engine/engine.h"
#include "ggml.h"
#include "gguf.h"

namespace cb::engine {
namespace {

constexpr const char* kSumsSuffix = ".in_sum2";
constexpr const char* kCountsSuffix = ".counts";

bool strip_suffix(std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  s.resize(s.size() - suffix.size());
  return true;
}

struct GgufDeleter {
  void operator()(gguf_context* c) const { gguf_free(c); }
};
struct GgmlDeleter {
  void operator()(ggml_context* c) const { ggml_free(c); }
};

void read_metadata(const std::string& path, gguf_context* g, Imatrix& out) {
  const int64_t ds = gguf_find_key(g, "imatrix.datasets");
  if (ds >= 0 && gguf_get_kv_type(g, ds) == GGUF_TYPE_ARRAY &&
      gguf_get_arr_type(g, ds) == GGUF_TYPE_STRING) {
    for (size_t i = 0; i < gguf_get_arr_n(g, ds); ++i) out.datasets.push_back(gguf_get_arr_str(g, ds, i));
  }
  const int64_t cc = gguf_find_key(g, "imatrix.chunk_count");
  const int64_t cs = gguf_find_key(g, "imatrix.chunk_size");
  if (ds < 0 || cc < 0 || cs < 0) {
    // Stock llama-quantize refuses such files ("missing imatrix metadata").
    throw InputError(fmt::format("{}: GGUF imatrix lacks imatrix.datasets/chunk_count/chunk_size", path));
  }
  // gguf aborts on a getter of the wrong type: check what the file says first.
  for (const int64_t k : {cc, cs}) {
    if (gguf_get_kv_type(g, k) != GGUF_TYPE_UINT32) {
      throw InputError(fmt::format("{}: imatrix key {} is not a u32", path, gguf_get_key(g, k)));
    }
  }
  out.chunk_count = gguf_get_val_u32(g, cc);
  out.chunk_size = gguf_get_val_u32(g, cs);
}

}  // namespace

bool is_gguf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

void read_imatrix_gguf(const std::string& path, Imatrix& out) {
  ensure_backend();
  // Metadata first, without allocating: the tensor data it declares must be in
  // the file (a fuzzed header asked gguf to allocate 256 GiB up front).
  { const GgufFile probe(path); }
  ggml_context* raw_ctx = nullptr;
  Logger quiet;
  ScopedLogCapture capture(quiet);
  std::unique_ptr<gguf_context, GgufDeleter> g(
      gguf_init_from_file(path.c_str(), gguf_init_params{/*no_alloc=*/false, &raw_ctx}));
  std::unique_ptr<ggml_context, GgmlDeleter> ctx(raw_ctx);
  if (!g) throw InputError(fmt::format("{}: corrupt or truncated GGUF imatrix", path));
  if (gguf_get_n_tensors(g.get()) < 1) throw InputError(fmt::format("{}: imatrix has no entries", path));
  read_metadata(path, g.get(), out);

  std::map<std::string, std::pair<ggml_tensor*, ggml_tensor*>> pairs;
  for (ggml_tensor* t = ggml_get_first_tensor(ctx.get()); t; t = ggml_get_next_tensor(ctx.get(), t)) {
    std::string name = t->name;
    if (strip_suffix(name, kSumsSuffix)) pairs[name].first = t;
    else if (strip_suffix(name, kCountsSuffix)) pairs[name].second = t;
  }
  for (const auto& [name, sc] : pairs) {
    auto [sums, counts] = sc;
    if (!sums || !counts) throw InputError(fmt::format("{}: imatrix entry {} lacks sums or counts", path, name));
    if (sums->type != GGML_TYPE_F32 || counts->type != GGML_TYPE_F32) {
      throw InputError(fmt::format("{}: imatrix entry {} is not F32", path, name));
    }
    const int64_t n_sums = ggml_nelements(sums), n_counts = ggml_nelements(counts);
    if (n_counts < 1 || n_sums % n_counts != 0) {
      throw InputError(fmt::format("{}: imatrix entry {}: {} sums do not split into {} matrices", path,
                                   name, n_sums, n_counts));
    }
    auto& e = out.entries[name];
    const float* s = static_cast<const float*>(sums->data);
    const float* c = static_cast<const float*>(counts->data);
    e.sums.assign(s, s + n_sums);
    e.counts.resize(n_counts);
    for (int64_t j = 0; j < n_counts; ++j) e.counts[j] = std::lround(c[j]);
  }
}

void write_imatrix_gguf_file(const Imatrix& imatrix, const std::string& path) {
  ensure_backend();
  size_t mem_bytes = 1024;
  for (const auto& [name, e] : imatrix.entries) {
    mem_bytes += 2 * ggml_tensor_overhead() + sizeof(float) * (e.sums.size() + e.counts.size()) + 2 * GGML_MEM_ALIGN;
  }
  std::unique_ptr<ggml_context, GgmlDeleter> ctx(ggml_init({mem_bytes, nullptr, /*no_alloc=*/false}));
  std::unique_ptr<gguf_context, GgufDeleter> g(gguf_init_empty());
  std::vector<const char*> datasets;
  for (const auto& d : imatrix.datasets) datasets.push_back(d.c_str());
  gguf_set_val_str(g.get(), "general.type", "imatrix");
  gguf_set_arr_str(g.get(), "imatrix.datasets", datasets.data(), datasets.size());
  gguf_set_val_u32(g.get(), "imatrix.chunk_count", static_cast<uint32_t>(imatrix.chunk_count));
  gguf_set_val_u32(g.get(), "imatrix.chunk_size", static_cast<uint32_t>(imatrix.chunk_size));

  std::vector<ggml_tensor*> tensors;
  for (const auto& [name, e] : imatrix.entries) {  // std::map: sorted, like llama-imatrix
    const int64_t n_mat = e.n_matrices();
    if (n_mat < 1 || e.sums.empty()) continue;
    ggml_tensor* sums = ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, e.n_cols(), n_mat);
    ggml_tensor* counts = ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, 1, n_mat);
    ggml_format_name(sums, "%s%s", name.c_str(), kSumsSuffix);
    ggml_format_name(counts, "%s%s", name.c_str(), kCountsSuffix);
    std::memcpy(sums->data, e.sums.data(), e.sums.size() * sizeof(float));
    for (int64_t j = 0; j < n_mat; ++j) static_cast<float*>(counts->data)[j] = static_cast<float>(e.counts[j]);
    gguf_add_tensor(g.get(), sums);
    gguf_add_tensor(g.get(), counts);
    tensors.push_back(sums);
    tensors.push_back(counts);
  }
  AtomicOutputFile out(path);
  std::vector<uint8_t> meta(gguf_get_meta_size(g.get()));
  gguf_get_meta_data(g.get(), meta.data());
  out.write(meta.data(), meta.size());
  const size_t align = gguf_get_alignment(g.get());
  const std::vector<uint8_t> zeros(align, 0);
  for (ggml_tensor* t : tensors) {
    const size_t n = ggml_nbytes(t);
    out.write(t->data, n);
    out.write(zeros.data(), GGML_PAD(n, align) - n);
  }
  out.commit();
}

}  // namespace cb::engine
