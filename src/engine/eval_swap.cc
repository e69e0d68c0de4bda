#include "engine/eval_swap.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "engine/convert_ahead.h"
#include "engine/eval_quant.h"
#include "engine/gguf_writer.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"

namespace cb::engine {

// One loaded tensor handle and what it pointed at before the swap.
struct Saved {
  ggml_tensor* t = nullptr;
  ggml_type type = GGML_TYPE_F32;
  size_t nb[GGML_MAX_DIMS] = {};
  void* data = nullptr;
  void* extra = nullptr;  // a repacked weight's layout (CPU_REPACK)
  ggml_backend_buffer_t buffer = nullptr;
  ggml_backend_buffer_t scratch = nullptr;
};

struct TensorSwapper::Swap {
  std::vector<Saved> handles;
};

// A GGUF mapped read-only (no MAP_POPULATE: pages come in as layers read
// them), wrapped as a host buffer of weights so the scheduler places the
// ops that read it as it places the loaded model's.
struct TensorSwapper::FileView {
  explicit FileView(const std::string& path) : gguf(path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw InputError(fmt::format("{}: cannot open ({})", path, std::strerror(errno)));
    size = static_cast<size_t>(gguf.file_size_bytes());
    addr = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);  // the mapping keeps the file
    if (addr == MAP_FAILED) throw InputError(fmt::format("{}: cannot map ({})", path, std::strerror(errno)));
    buffer = ggml_backend_cpu_buffer_from_ptr(addr, size);
    ggml_backend_buffer_set_usage(buffer, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
  }
  ~FileView() {
    ggml_backend_buffer_free(buffer);  // frees the handle, not the mapping
    ::munmap(addr, size);
  }
  FileView(const FileView&) = delete;
  FileView& operator=(const FileView&) = delete;

  GgufFile gguf;
  void* addr = nullptr;
  size_t size = 0;
  ggml_backend_buffer_t buffer = nullptr;
};

namespace {

// Host memory of the CPU backend: plain, or one of its extra (repacking) types.
bool on_cpu(ggml_backend_buffer_type_t buft) {
  if (ggml_backend_buft_is_host(buft)) return true;
  ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
  return dev && ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU;
}

ggml_backend_buffer_t alloc_weights(ggml_backend_buffer_type_t buft, const ggml_tensor* t, size_t bytes) {
  ggml_backend_buffer_t buf = ggml_backend_buft_alloc_buffer(buft, bytes);
  if (!buf) {
    throw EngineError(fmt::format("no memory for a {}-byte swap buffer of {} ({})", bytes, t->name,
                                  ggml_backend_buft_name(buft)));
  }
  // The scheduler places a weight's ops by the usage of its buffer.
  ggml_backend_buffer_set_usage(buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
  return buf;
}

// A buffer of `bytes` next to where `t` lives: device memory for a device
// tensor, host memory for a host (mmap'd, copied or repacked) one.
ggml_backend_buffer_t scratch_like(const ggml_tensor* t, size_t bytes) {
  ggml_backend_buffer_type_t buft = ggml_backend_buffer_get_type(t->buffer);
  if (on_cpu(buft)) buft = ggml_backend_cpu_buffer_type();
  return alloc_weights(buft, t, bytes);
}

void point_at(ggml_tensor* t, ggml_type type, ggml_backend_buffer_t buf) {
  t->type = type;
  t->nb[0] = ggml_type_size(type);
  t->nb[1] = ggml_row_size(type, t->ne[0]);
  for (int i = 2; i < GGML_MAX_DIMS; ++i) t->nb[i] = t->nb[i - 1] * t->ne[i - 1];
  t->data = ggml_backend_buffer_get_base(buf);
  t->buffer = buf;
  // A host tensor's extra is a repacked layout, which only a repacking
  // buffer's init_tensor sets (a device's, e.g. a split, is kept).
  if (on_cpu(ggml_backend_buffer_get_type(buf))) {
    t->extra = nullptr;
    if (!ggml_backend_buffer_is_host(buf)) ggml_backend_buffer_init_tensor(buf, t);
  }
}

// In a model loaded with repacking, a swap goes where a fresh load with
// `type` would put the tensor, so that it runs the same kernels: a repacking
// buffer when the repacking takes the type and shape (llama.cpp's loader),
// returned; else nullptr. `t` is left as it was.
ggml_backend_buffer_t repacked_scratch(ggml_backend_buffer_type_t repack, ggml_tensor* t, ggml_type type,
                                       size_t bytes) {
  ggml_backend_buffer_t buf = alloc_weights(repack, t, bytes);
  const ggml_type was_type = t->type;
  size_t was_nb[GGML_MAX_DIMS];
  std::memcpy(was_nb, t->nb, sizeof(was_nb));
  void* was_data = t->data;
  void* was_extra = t->extra;
  ggml_backend_buffer_t was_buffer = t->buffer;
  point_at(t, type, buf);
  const bool takes = t->extra != nullptr;
  t->type = was_type;  // a probe: the swap points the handle at it later
  std::memcpy(t->nb, was_nb, sizeof(was_nb));
  t->data = was_data;
  t->extra = was_extra;
  t->buffer = was_buffer;
  if (takes) return buf;
  ggml_backend_buffer_free(buf);  // the repacking does not take this type or shape
  return nullptr;
}

void put_back(Saved& s) {
  s.t->type = s.type;
  std::memcpy(s.t->nb, s.nb, sizeof(s.nb));
  s.t->data = s.data;
  s.t->extra = s.extra;
  s.t->buffer = s.buffer;
  if (s.scratch) ggml_backend_buffer_free(s.scratch);
  s.scratch = nullptr;
}

}  // namespace

TensorSwapper::TensorSwapper(LlamaModel& model, const std::string& source_path)
    : model_(model), source_(std::make_unique<TensorSource>(source_path)) {
  ahead_ = std::make_unique<ConvertAhead>([this](const ConvertAhead::Job& j, const auto& sink) {
    source_->convert(j.name, j.type_name, j.imatrix, model_.n_threads(), sink);
  });
}

TensorSwapper::~TensorSwapper() {
  ahead_.reset();  // its thread reads the source and the model
  restore_all();
}

void TensorSwapper::set_type(const std::string& name, const std::string& type_name,
                             const std::vector<float>* imatrix) {
  swap_in(name, ggml_type_id(type_name), false, imatrix);
}

void TensorSwapper::set_simulated(const std::string& name, const std::string& type_name,
                                  const std::vector<float>* imatrix) {
  swap_in(name, ggml_type_id(type_name), true, imatrix);
}

double TensorSwapper::convert_ahead_s() const { return ahead_->busy_s(); }

void TensorSwapper::swap_in(const std::string& name, int type, bool simulated,
                            const std::vector<float>* imatrix) {
  const std::vector<ggml_tensor*> handles = model_.tensor_handles(name);
  if (handles.empty()) {
    throw RecipeError(fmt::format("no swappable tensor named {} (model loaded swappable?)", name));
  }
  restore(name);
  const ggml_type loaded = handles.front()->type;
  if (type == static_cast<int>(loaded)) return;
  if (!simulated && !model_.takes_any_type(name)) {
    throw RecipeError(fmt::format("tensor {} feeds an op that needs a float type; it cannot run as {}", name,
                                  ggml_type_name(static_cast<ggml_type>(type))));
  }
  const ggml_type stored = simulated ? loaded : static_cast<ggml_type>(type);
  const ggml_tensor* t0 = handles.front();
  const size_t bytes = ggml_row_size(stored, t0->ne[0]) * ggml_nrows(t0);
  auto swap = std::make_unique<Swap>();
  bool repacked = false;  // then each handle takes the whole tensor at once
  for (ggml_tensor* h : handles) {
    Saved s{h, h->type, {}, h->data, h->extra, h->buffer, nullptr};
    std::memcpy(s.nb, h->nb, sizeof(s.nb));
    if (!simulated && model_.repackable(name)) {
      s.scratch = repacked_scratch(model_.repack_buffer_type(), h, stored, bytes);
    }
    repacked = repacked || s.scratch;
    if (!s.scratch) s.scratch = scratch_like(h, bytes);
    swap->handles.push_back(s);
  }
  auto fail = [&] {
    for (Saved& s : swap->handles) put_back(s);
  };
  try {
    for (Saved& s : swap->handles) point_at(s.t, stored, s.scratch);
    const std::vector<float> im = imatrix ? *imatrix : std::vector<float>{};
    const char* type_name = ggml_type_name(static_cast<ggml_type>(type));
    if (!simulated) {
      size_t offset = 0;
      std::vector<uint8_t> whole;  // a repacking buffer takes one set of all bytes
      auto sink = [&](const void* data, size_t n) {
        if (repacked) {
          whole.insert(whole.end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + n);
        } else {
          for (Saved& s : swap->handles) ggml_backend_tensor_set(s.t, data, offset, n);
        }
        offset += n;
      };
      auto ready = ahead_->take(name, type_name, im);
      if (ready) {
        ++n_prefetched_;
        if (repacked) {
          whole = std::move(*ready);
          offset = whole.size();
        } else {
          sink(ready->data(), ready->size());
        }
      } else {
        if (repacked) whole.reserve(bytes);
        source_->convert(name, type_name, im, model_.n_threads(), sink);
      }
      if (offset != bytes) throw EngineError(fmt::format("{}: source gave {} bytes, expected {}", name, offset, bytes));
      if (repacked) {
        for (Saved& s : swap->handles) ggml_backend_tensor_set(s.t, whole.data(), 0, whole.size());
      }
    } else {
      std::vector<uint8_t> q;
      source_->convert(name, type_name, im, model_.n_threads(), [&](const void* data, size_t n) {
        q.insert(q.end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + n);
      });
      const int64_t n = ggml_nelements(t0);
      const std::vector<float> back = dequantize_to_f32(type, q.data(), n);
      // Back to the loaded type (F16 rounding of the dequantized values is far
      // below the quantization error being simulated).
      const std::vector<uint8_t> out = convert_from_f32(stored, back.data(), t0->ne[0], ggml_nrows(t0), t0->ne[1],
                                                        nullptr, model_.n_threads());
      for (Saved& s : swap->handles) ggml_backend_tensor_set(s.t, out.data(), 0, out.size());
    }
  } catch (...) {
    fail();
    throw;
  }
  swaps_[name] = std::move(swap);
}

bool TensorSwapper::prefetch(std::vector<Ahead> tensors, int64_t max_bytes) {
  std::vector<ConvertAhead::Job> jobs;
  for (Ahead& a : tensors) {
    const std::vector<ggml_tensor*> handles = model_.tensor_handles(a.name);
    if (handles.empty()) break;  // set_type names the problem, for the unit it belongs to
    const ggml_tensor* t = handles.front();
    ggml_type type;
    try {
      type = static_cast<ggml_type>(ggml_type_id(a.type_name));
    } catch (const Error&) {
      break;
    }
    if (type == t->type) continue;  // a restore: nothing to convert
    jobs.push_back({a.name, ggml_type_name(type), std::move(a.imatrix), ggml_row_size(type, t->ne[0]) * ggml_nrows(t)});
  }
  return ahead_->plan(std::move(jobs), max_bytes);
}

void TensorSwapper::restore(const std::string& name) {
  auto it = swaps_.find(name);
  if (it == swaps_.end()) return;
  for (Saved& s : it->second->handles) put_back(s);
  swaps_.erase(it);
}

void TensorSwapper::restore_all() {
  for (auto& [name, swap] : swaps_) {
    for (Saved& s : swap->handles) put_back(s);
  }
  swaps_.clear();
  view_.reset();  // nothing points into it now
}

bool TensorSwapper::all_on_host() const {
  for (const auto& [name, handles] : model_.all_tensor_handles()) {
    for (const ggml_tensor* h : handles) {
      if (!on_cpu(ggml_backend_buffer_get_type(h->buffer))) return false;
    }
  }
  return true;
}

std::pair<uintptr_t, uintptr_t> TensorSwapper::view_file(const std::string& path) {
  restore_all();
  if (!all_on_host()) throw EngineError("a file view needs every weight in host memory (none on a device)");
  auto view = std::make_unique<FileView>(path);
  auto* base = static_cast<uint8_t*>(view->addr) + view->gguf.data_offset();
  std::map<std::string, std::unique_ptr<Swap>> swaps;
  for (const auto& [name, handles] : model_.all_tensor_handles()) {
    const int64_t i = view->gguf.find_tensor(name);
    const ggml_tensor* t0 = handles.front();
    const std::vector<int64_t> shape = i < 0 ? std::vector<int64_t>{} : view->gguf.tensor_shape(i);
    bool same = i >= 0 && static_cast<int>(shape.size()) <= GGML_MAX_DIMS;
    for (int d = 0; same && d < GGML_MAX_DIMS; ++d) {
      same = (d < static_cast<int>(shape.size()) ? shape[d] : 1) == t0->ne[d];
    }
    if (!same) {
      for (auto& [n, sw] : swaps) for (Saved& s : sw->handles) put_back(s);
      throw MismatchError(i < 0 ? fmt::format("{}: no tensor {} (the model reads one)", path, name)
                                : fmt::format("{}: tensor {} is shaped otherwise than the model's", path, name));
    }
    // Every tensor, also one of the same type: its bytes may differ (another
    // imatrix), and the model's own pages then stay unread.
    auto swap = std::make_unique<Swap>();
    for (ggml_tensor* h : handles) {
      Saved s{h, h->type, {}, h->data, h->extra, h->buffer, nullptr};
      std::memcpy(s.nb, h->nb, sizeof(s.nb));
      swap->handles.push_back(s);
      point_at(h, static_cast<ggml_type>(view->gguf.tensor_type(i)), view->buffer);
      h->data = base + view->gguf.tensor_offset(i);
    }
    swaps[name] = std::move(swap);
  }
  swaps_ = std::move(swaps);
  view_ = std::move(view);
  const auto b = reinterpret_cast<uintptr_t>(view_->addr);
  return {b, b + view_->size};
}

std::map<std::string, std::string> TensorSwapper::tensor_types() const {
  std::map<std::string, std::string> out;
  for (const auto& [name, handles] : model_.all_tensor_handles()) {
    auto it = swaps_.find(name);
    const ggml_type t = it == swaps_.end() ? handles.front()->type : it->second->handles.front().type;
    out[name] = ggml_type_name(t);
  }
  return out;
}

std::vector<std::string> TensorSwapper::swapped() const {
  std::vector<std::string> out;
  for (const auto& [name, s] : swaps_) out.push_back(name);
  return out;
}

}  // namespace cb::engine
