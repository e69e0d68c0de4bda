#include "engine/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "common/parallel.h"
#include "engine/engine.h"
#include "ggml.h"
#include "gguf.h"

namespace cb::engine {
namespace {

struct GgufDeleter {
  void operator()(gguf_context* c) const { gguf_free(c); }
};
struct GgmlDeleter {
  void operator()(ggml_context* c) const { ggml_free(c); }
};

// Stock's chunk: at least 32*512 elements of whole rows per quantizer call.
constexpr int64_t kMinChunkElems = 32 * 512;

int parse_type(const std::string& name, const std::string& tensor) {
  for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
    const char* n = ggml_type_name(static_cast<ggml_type>(t));
    if (ggml_blck_size(static_cast<ggml_type>(t)) > 0 && n && name == n) return t;
  }
  throw RecipeError(fmt::format("tensor {}: unknown type '{}'", tensor, name));
}

// Tensor order of llama-quantize (llama_model_loader::weight_name_comparer).
bool stock_less(const std::string& a, const std::string& b) {
  int la = -1, lb = -1;
  std::sscanf(a.c_str(), "blk.%d.", &la);
  std::sscanf(b.c_str(), "blk.%d.", &lb);
  return la != lb ? la < lb : a < b;
}

struct TensorWork {
  int64_t src_index = 0;
  ggml_tensor* out = nullptr;  // shape + target type (no data)
  ggml_type from = GGML_TYPE_F32;
  size_t src_offset = 0;       // absolute, in the source file
  size_t src_bytes = 0;
};

class SourceFile {
 public:
  explicit SourceFile(const std::string& path) : path_(path), fd_(::open(path.c_str(), O_RDONLY)) {
    if (fd_ < 0) throw InputError(fmt::format("{}: cannot open ({})", path, std::strerror(errno)));
  }
  ~SourceFile() { ::close(fd_); }
  void read(size_t offset, size_t n, void* dst) const {
    size_t done = 0;
    while (done < n) {
      const ssize_t r = ::pread(fd_, static_cast<char*>(dst) + done, n - done, static_cast<off_t>(offset + done));
      if (r <= 0) throw InputError(fmt::format("{}: read failed at byte {}", path_, offset + done));
      done += static_cast<size_t>(r);
    }
  }

 private:
  std::string path_;
  int fd_;
};

void to_f32(ggml_type from, const void* src, float* dst, int64_t n) {
  if (from == GGML_TYPE_F16) {
    ggml_fp16_to_fp32_row(static_cast<const ggml_fp16_t*>(src), dst, n);
  } else if (from == GGML_TYPE_BF16) {
    ggml_bf16_to_fp32_row(static_cast<const ggml_bf16_t*>(src), dst, n);
  } else if (from == GGML_TYPE_F32) {
    std::memcpy(dst, src, n * sizeof(float));
  } else {
    const auto* traits = ggml_get_type_traits(from);
    if (!traits->to_float) throw EngineError(fmt::format("cannot dequantize type {}", ggml_type_name(from)));
    traits->to_float(src, dst, n);
  }
}

struct SlabArgs {
  const TensorWork* w;
  const SourceFile* src;       // the rows are read from here by the workers
  uint8_t* dst;                // slab of output rows
  int64_t first_row;           // global row index of the slab's first row
  int64_t n_rows;
  const std::vector<float>* imatrix;  // n_cols * n_experts, or empty
};

// Quantizes one slab with `n_threads` workers pulling chunks of rows that
// never cross an expert boundary (each expert has its own imatrix slice).
// Each worker reads its own chunk's source rows: no phase where one thread
// reads and the rest wait (which showed when several converters share a
// host's cores, issue 16).
void quantize_slab(const SlabArgs& a, int n_threads) {
  const ggml_type to = a.w->out->type;
  const int64_t n_cols = a.w->out->ne[0];
  const int64_t rows_per_expert = a.w->out->ne[1];
  const size_t src_row = ggml_row_size(a.w->from, n_cols), dst_row = ggml_row_size(to, n_cols);
  const int64_t rows_per_chunk = std::max<int64_t>(1, (kMinChunkElems + n_cols - 1) / n_cols);
  std::atomic<int64_t> next{0};
  std::atomic<bool> valid{true}, failed{false};
  std::exception_ptr error;  // the first worker's failure (a read), rethrown here after the join
  auto worker = [&] {
    std::vector<uint8_t> raw;
    std::vector<float> f32;
    for (;;) {
      const int64_t row = next.load();
      if (row >= a.n_rows || failed) return;
      const int64_t global = a.first_row + row;
      const int64_t n = std::min({a.n_rows - row, rows_per_chunk, rows_per_expert - global % rows_per_expert});
      int64_t expected = row;
      if (!next.compare_exchange_weak(expected, row + n)) continue;
      try {
        raw.resize(static_cast<size_t>(n) * src_row);
        a.src->read(a.w->src_offset + static_cast<size_t>(global) * src_row, raw.size(), raw.data());
      } catch (...) {
        if (!failed.exchange(true)) error = std::current_exception();  // only the first writes it
        return;
      }
      f32.resize(static_cast<size_t>(n * n_cols));
      to_f32(a.w->from, raw.data(), f32.data(), n * n_cols);
      const float* im = a.imatrix->empty() ? nullptr : a.imatrix->data() + (global / rows_per_expert) * n_cols;
      void* out = a.dst + row * dst_row;
      const size_t bytes = ggml_quantize_chunk(to, f32.data(), out, 0, n, n_cols, im);
      if (!ggml_validate_row_data(to, out, bytes)) valid = false;
    }
  };
  run_workers(n_threads, worker);
  if (error) std::rethrow_exception(error);
  if (!valid) throw EngineError(fmt::format("tensor {}: quantized data failed validation", a.w->out->name));
}

std::vector<float> checked_imatrix(std::vector<float> im, const TensorWork& w, const Logger& logger) {
  if (!ggml_is_quantized(w.out->type)) return {};
  const size_t expected = static_cast<size_t>(w.out->ne[0] * w.out->ne[2]);
  if (im.empty() || im.size() == expected) return im;
  // As stock: a size mismatch is fatal except for token_embd (never collected).
  if (std::string(w.out->name) == "token_embd.weight") {
    logger.warn(fmt::format("imatrix for {} has {} values, tensor needs {}: ignored", w.out->name, im.size(), expected));
    return {};
  }
  throw MismatchError(fmt::format("imatrix entry {} has {} values, tensor needs {} (imatrix of another model?)",
                                  w.out->name, im.size(), expected));
}

// Rows [first_row, n) of `w` from the source, slab by slab, to `sink` in
// order: copied byte for byte when the type is unchanged (then first_row is
// 0), else converted.
void convert_tensor(const SourceFile& src, const TensorWork& w, const std::vector<float>& im, int n_threads,
                    int64_t max_slab_bytes, const std::function<void(const void*, size_t)>& sink,
                    int64_t first_row = 0) {
  const ggml_type to = w.out->type;
  if (to == w.from) {  // copied byte for byte, in slabs
    assert(first_row == 0);  // only a donor's fallback starts later, and a donor never holds these
    std::vector<uint8_t> buf(std::min<size_t>(w.src_bytes, static_cast<size_t>(max_slab_bytes)));
    for (size_t off = 0; off < w.src_bytes; off += buf.size()) {
      const size_t n = std::min(buf.size(), w.src_bytes - off);
      src.read(w.src_offset + off, n, buf.data());
      sink(buf.data(), n);
    }
    return;
  }
  if (ggml_quantize_requires_imatrix(to) && im.empty()) {
    throw RecipeError(fmt::format("tensor {}: type {} needs an imatrix entry for it", w.out->name, ggml_type_name(to)));
  }
  const int64_t n_cols = w.out->ne[0];
  const int64_t n_rows = ggml_nrows(w.out);
  const size_t src_row = ggml_row_size(w.from, n_cols), dst_row = ggml_row_size(to, n_cols);
  // Slabs sized as when the source rows were held too (the same sink calls);
  // now only the output rows are, the workers reading the source chunk by chunk.
  const int64_t slab_rows = std::clamp<int64_t>(max_slab_bytes / static_cast<int64_t>(src_row + dst_row), 1, n_rows);
  std::vector<uint8_t> dbuf(slab_rows * dst_row);
  for (int64_t r = first_row; r < n_rows; r += slab_rows) {
    const int64_t n = std::min(slab_rows, n_rows - r);
    quantize_slab({&w, &src, dbuf.data(), r, n, &im}, n_threads);
    sink(dbuf.data(), n * dst_row);
  }
}

// The source file and imatrix the tensors come from, as a key: two jobs with
// the same key convert a tensor to a type into the same bytes.
std::string origin_key(const QuantizeJob& job, const GgufFile& src) {
  std::string k = file_identity(job.source);
  for (int64_t i = 0; job.imatrix_for && i < src.n_tensors(); ++i) {
    const std::string name = src.tensor_name(i);
    const std::vector<float> im = job.imatrix_for(name);
    if (!im.empty()) k += "|" + name + ":" + sha256_bytes(im.data(), im.size() * sizeof(float));
  }
  return sha256_bytes(k.data(), k.size());
}

// The job's donor, when its origin is the job's: where its tensors are.
struct Donor {
  std::unique_ptr<GgufFile> gguf;
  std::unique_ptr<SourceFile> file;
  // Where the donor holds `w`'s output (same name, type, shape); nullopt = convert.
  std::optional<size_t> find(const TensorWork& w) const {
    if (!gguf || w.out->type == w.from) return std::nullopt;
    const int64_t i = gguf->find_tensor(w.out->name);
    if (i < 0 || gguf->tensor_type(i) != w.out->type) return std::nullopt;
    const std::vector<int64_t> shape = gguf->tensor_shape(i);
    for (int d = 0; d < GGML_MAX_DIMS; ++d) {
      if ((d < static_cast<int>(shape.size()) ? shape[d] : 1) != w.out->ne[d]) return std::nullopt;
    }
    return gguf->data_offset() + gguf->tensor_offset(i);
  }
};

Donor open_donor(const QuantizeJob& job, const std::string& key, const Logger& logger) {
  Donor d;
  if (job.donor.empty() || !std::filesystem::exists(job.donor)) return d;
  try {
    auto g = std::make_unique<GgufFile>(job.donor);
    if (g->get_string(kOriginKey) != key) {
      logger.info(job.donor + " comes from another source or imatrix: converting every tensor");
      return d;
    }
    d.file = std::make_unique<SourceFile>(job.donor);
    d.gguf = std::move(g);
  } catch (const Error& e) {
    logger.warn(fmt::format("{}: not used as a donor ({})", job.donor, e.what()));
  }
  return d;
}

// The donor's bytes of `w` in slabs of whole rows, each checked as a
// conversion's output is (a donor is a file on disk: it can rot) before it
// goes to the sink. Returns the first row of a slab that fails, -1 when all
// were copied. Rows convert independently, so the caller converts the rest
// from there and the file is still what a full conversion writes.
int64_t copy_donor_rows(const SourceFile& donor, size_t offset, const TensorWork& w, int64_t max_slab_bytes,
                        const std::function<void(const void*, size_t)>& sink) {
  const ggml_type type = w.out->type;
  const size_t row_bytes = ggml_row_size(type, w.out->ne[0]);
  const int64_t n_rows = ggml_nrows(w.out);
  const int64_t slab_rows = std::clamp<int64_t>(max_slab_bytes / static_cast<int64_t>(row_bytes), 1, n_rows);
  std::vector<uint8_t> buf(static_cast<size_t>(slab_rows) * row_bytes);
  for (int64_t r = 0; r < n_rows; r += slab_rows) {
    const size_t n = static_cast<size_t>(std::min(slab_rows, n_rows - r)) * row_bytes;
    donor.read(offset + static_cast<size_t>(r) * row_bytes, n, buf.data());
    if (!ggml_validate_row_data(type, buf.data(), n)) return r;
    sink(buf.data(), n);
  }
  return -1;
}

void write_tensor(const QuantizeJob& job, const SourceFile& src, const Donor& donor, const TensorWork& w,
                  AtomicOutputFile& out, int n_threads, const Logger& logger, QuantizedTensor& t, int& n_donated) {
  std::vector<float> im;
  if (w.out->type != w.from && job.imatrix_for) im = checked_imatrix(job.imatrix_for(w.out->name), w, logger);
  t.used_imatrix = !im.empty();
  const auto sink = [&](const void* data, size_t n) { out.write(data, n); };
  if (const auto offset = donor.find(w)) {  // the same bytes: copied as they are, in slabs
    const int64_t bad_row = copy_donor_rows(*donor.file, *offset, w, job.max_slab_bytes, sink);
    if (bad_row < 0) {
      ++n_donated;
      return;
    }
    logger.warn(fmt::format("{}: tensor {} holds invalid data from row {}; converted from the source instead",
                            job.donor, w.out->name, bad_row));
    convert_tensor(src, w, im, n_threads, job.max_slab_bytes, sink, bad_row);
    return;
  }
  convert_tensor(src, w, im, n_threads, job.max_slab_bytes, sink);
}

// Source tensor `i` going to type `to` (nullopt = unchanged): its output
// descriptor in `ctx` (shape and type, no data) and where its bytes are.
// Throws RecipeError (type does not fit the rows), InputError (no converter).
TensorWork describe_tensor(const GgufFile& src, int64_t i, const std::optional<std::string>& to_name,
                           ggml_context* ctx) {
  const std::string name = src.tensor_name(i);
  const auto from = static_cast<ggml_type>(src.tensor_type(i));
  const ggml_type to = to_name ? static_cast<ggml_type>(parse_type(*to_name, name)) : from;
  const int64_t* ne = gguf_get_tensor_ne(src.ctx(), i);
  if (ne[0] % ggml_blck_size(to) != 0) {
    throw RecipeError(fmt::format("tensor {}: rows of {} elements do not fit {} blocks of {}", name, ne[0],
                                  ggml_type_name(to), ggml_blck_size(to)));
  }
  if (to != from && ggml_blck_size(from) > 1 && !ggml_get_type_traits(from)->to_float) {
    throw InputError(fmt::format("tensor {}: cannot convert from type {}", name, ggml_type_name(from)));
  }
  ggml_tensor* t = ggml_new_tensor(ctx, to, GGML_MAX_DIMS, ne);
  ggml_set_name(t, name.c_str());
  return {i, t, from, src.data_offset() + src.tensor_offset(i), src.tensor_size_bytes(i)};
}

std::vector<TensorWork> plan_tensors(const QuantizeJob& job, const GgufFile& src, ggml_context* ctx) {
  std::vector<TensorWork> work;
  for (int64_t i = 0; i < src.n_tensors(); ++i) {
    auto it = job.types.find(src.tensor_name(i));
    work.push_back(describe_tensor(src, i, it == job.types.end() ? std::nullopt : std::optional(it->second), ctx));
  }
  for (const auto& [name, type] : job.types) {
    if (src.find_tensor(name) < 0) throw RecipeError(fmt::format("{}: no tensor named {}", job.source, name));
  }
  if (job.stock_order) {
    std::stable_sort(work.begin(), work.end(),
                     [](const TensorWork& a, const TensorWork& b) { return stock_less(a.out->name, b.out->name); });
  }
  return work;
}

std::unique_ptr<gguf_context, GgufDeleter> make_meta(const QuantizeJob& job, const GgufFile& src,
                                                     const std::vector<TensorWork>& work, const std::string& origin) {
  std::unique_ptr<gguf_context, GgufDeleter> meta(gguf_init_empty());
  gguf_set_kv(meta.get(), src.ctx());
  if (job.ftype) {  // what llama-quantize sets, in its order
    gguf_set_val_u32(meta.get(), "general.quantization_version", GGML_QNT_VERSION);
    gguf_set_val_u32(meta.get(), "general.file_type", static_cast<uint32_t>(*job.ftype));
  }
  for (const char* key : {"split.no", "split.count", "split.tensors.count"}) gguf_remove_key(meta.get(), key);
  for (const auto& [k, v] : job.string_kvs) gguf_set_val_str(meta.get(), k.c_str(), v.c_str());
  if (job.stamp_origin) gguf_set_val_str(meta.get(), kOriginKey, origin.c_str());
  for (const auto& [k, v] : job.u32_kvs) gguf_set_val_u32(meta.get(), k.c_str(), v);
  for (const auto& w : work) gguf_add_tensor(meta.get(), w.out);
  return meta;
}

}  // namespace

WriteResult quantize_gguf(const QuantizeJob& job, const Logger& logger, const ProgressFn& progress) {
  const GgufFile src(job.source);
  ensure_backend();
  const size_t ctx_bytes = static_cast<size_t>(src.n_tensors() + 1) * ggml_tensor_overhead();
  std::unique_ptr<ggml_context, GgmlDeleter> ctx(ggml_init({ctx_bytes, nullptr, /*no_alloc=*/true}));
  const std::vector<TensorWork> work = plan_tensors(job, src, ctx.get());
  const bool need_origin = job.stamp_origin || !job.donor.empty();
  const std::string origin = need_origin ? origin_key(job, src) : "";
  const auto meta = make_meta(job, src, work, origin);
  const size_t align = gguf_get_alignment(meta.get());

  WriteResult result;
  result.meta_size_bytes = static_cast<int64_t>(gguf_get_meta_size(meta.get()));
  result.output_size_bytes = result.meta_size_bytes;
  for (const auto& w : work) {
    const int64_t bytes = static_cast<int64_t>(ggml_nbytes(w.out));
    result.output_size_bytes += static_cast<int64_t>(GGML_PAD(bytes, align));
    result.tensors.push_back({w.out->name, ggml_type_name(w.from), ggml_type_name(w.out->type),
                              src.tensor_shape(w.src_index), bytes, false});
  }
  if (job.dry_run) return result;
  check_output_path(job.out, {job.source});

  const int n_threads = thread_count(job.n_threads);
  const SourceFile in(job.source);
  const Donor donor = open_donor(job, origin, logger);
  AtomicOutputFile out(job.out);
  std::vector<uint8_t> header(static_cast<size_t>(result.meta_size_bytes));
  gguf_get_meta_data(meta.get(), header.data());
  out.write(header.data(), header.size());
  const std::vector<uint8_t> zeros(align, 0);
  for (size_t i = 0; i < work.size(); ++i) {
    if (progress) progress({"build", static_cast<int64_t>(i), static_cast<int64_t>(work.size()), work[i].out->name});
    write_tensor(job, in, donor, work[i], out, n_threads, logger, result.tensors[i], result.n_donated);
    const size_t bytes = static_cast<size_t>(result.tensors[i].size_bytes);
    out.write(zeros.data(), GGML_PAD(bytes, align) - bytes);
  }
  if (out.tell() != static_cast<uint64_t>(result.output_size_bytes)) {
    throw EngineError(fmt::format("{}: wrote {} bytes, expected {}", job.out, out.tell(), result.output_size_bytes));
  }
  out.commit();
  if (donor.gguf) logger.info(fmt::format("{} of {} tensors copied from {}", result.n_donated, work.size(), job.donor));
  if (progress) progress({"build", static_cast<int64_t>(work.size()), static_cast<int64_t>(work.size()), ""});
  return result;
}

struct TensorSource::Impl {
  explicit Impl(const std::string& path) : gguf(path), file(path) {
    const size_t bytes = 2 * ggml_tensor_overhead();
    ctx.reset(ggml_init({bytes, nullptr, /*no_alloc=*/true}));
  }
  GgufFile gguf;
  SourceFile file;
  std::unique_ptr<ggml_context, GgmlDeleter> ctx;
  std::mutex mutex;  // guards ctx (one descriptor at a time)
};

TensorSource::TensorSource(const std::string& path) : impl_(std::make_unique<Impl>(path)) { ensure_backend(); }
TensorSource::~TensorSource() = default;
const std::string& TensorSource::path() const { return impl_->gguf.path(); }

int64_t TensorSource::convert(const std::string& name, const std::string& type, const std::vector<float>& imatrix,
                              int n_threads, const std::function<void(const void*, size_t)>& sink,
                              int64_t max_slab_bytes) const {
  const int64_t i = impl_->gguf.find_tensor(name);
  if (i < 0) throw RecipeError(fmt::format("{}: no tensor named {}", impl_->gguf.path(), name));
  std::lock_guard<std::mutex> lock(impl_->mutex);
  ggml_reset(impl_->ctx.get());
  const TensorWork w = describe_tensor(impl_->gguf, i, type, impl_->ctx.get());
  const std::vector<float> im = w.out->type == w.from ? std::vector<float>{} : checked_imatrix(imatrix, w, Logger{});
  convert_tensor(impl_->file, w, im, n_threads > 0 ? n_threads : 1, max_slab_bytes, sink);
  return static_cast<int64_t>(ggml_nbytes(w.out));
}

}  // namespace cb::engine
