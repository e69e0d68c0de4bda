#include "engine/engine.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "gguf.h"
#include "llama.h"

namespace cb::engine {
namespace {

std::mutex g_log_mutex;
ScopedLogCapture* g_capture = nullptr;

void engine_log_callback(ggml_log_level level, const char* text, void*) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  if (g_capture) g_capture->append(static_cast<int>(level), text);
}

}  // namespace

void ensure_backend() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Silence the engine by default; ScopedLogCapture re-routes it.
    llama_log_set(engine_log_callback, nullptr);
    ggml_log_set(engine_log_callback, nullptr);
    // In-place type swaps (eval_swap.h) change a weight's type and data under
    // a graph: never reuse a compute graph (llama.cpp) or a captured CUDA
    // graph across decodes. Set before any context reads them.
    setenv("LLAMA_GRAPH_REUSE_DISABLE", "1", 1);
    setenv("GGML_CUDA_DISABLE_GRAPHS", "1", 1);
    llama_backend_init();
  });
}

ScopedLogCapture::ScopedLogCapture(const Logger& logger) : logger_(&logger) {
  ensure_backend();
  std::lock_guard<std::mutex> lock(g_log_mutex);
  prev_ = g_capture;
  g_capture = this;
}

ScopedLogCapture::~ScopedLogCapture() {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  g_capture = prev_;
}

void ScopedLogCapture::append(int level, const char* msg) {
  text_ += msg;
  LogLevel lv = LogLevel::kDebug;
  if (level == GGML_LOG_LEVEL_WARN) lv = LogLevel::kWarn;
  if (level == GGML_LOG_LEVEL_ERROR) lv = LogLevel::kError;
  if (logger_) logger_->log(lv, msg);
}

DeviceMemory gpu_memory() {
  ensure_backend();
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    if (ggml_backend_dev_type(dev) != GGML_BACKEND_DEVICE_TYPE_GPU) continue;
    size_t free = 0, total = 0;
    ggml_backend_dev_memory(dev, &free, &total);
    return {static_cast<int64_t>(free), static_cast<int64_t>(total)};
  }
  return {};
}

ggml_backend_buffer_type_t cpu_repack_buffer_type() {
  ensure_backend();
  if (gpu_memory().total_bytes > 0) return nullptr;
  ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  if (!cpu) return nullptr;
  auto extra_bufts = reinterpret_cast<ggml_backend_dev_get_extra_bufts_t>(
      ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(cpu), "ggml_backend_dev_get_extra_bufts"));
  if (!extra_bufts) return nullptr;
  ggml_backend_buffer_type_t repack = nullptr;
  for (ggml_backend_buffer_type_t* b = extra_bufts(cpu); b && *b; ++b) {
    const std::string name = ggml_backend_buft_name(*b);
    if (name.find("AMX") != std::string::npos) return nullptr;
    if (name == "CPU_REPACK") repack = *b;
  }
  return repack;
}

void validate_gguf_header(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw InputError(fmt::format("{}: no such file", path));
  }
  const auto size = std::filesystem::file_size(path, ec);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open for reading", path));
  char magic[4] = {};
  uint32_t version = 0;
  uint64_t n_tensors = 0, n_kv = 0;
  in.read(magic, 4);
  if (in.gcount() < 4 || std::memcmp(magic, "GGUF", 4) != 0) {
    throw InputError(fmt::format("{}: not a GGUF file (bad magic)", path));
  }
  in.read(reinterpret_cast<char*>(&version), 4);
  if (!in) throw InputError(fmt::format("{}: truncated GGUF header", path));
  if (version == 1) {
    throw InputError(fmt::format(
        "{}: GGUF version 1 is obsolete and unsupported; re-convert the model "
        "with a current llama.cpp convert script", path));
  }
  if (version != 2 && version != 3) {
    throw InputError(fmt::format("{}: unsupported GGUF version {}", path, version));
  }
  in.read(reinterpret_cast<char*>(&n_tensors), 8);
  in.read(reinterpret_cast<char*>(&n_kv), 8);
  if (!in) throw InputError(fmt::format("{}: truncated GGUF header", path));
  // Each tensor needs > 24 bytes of header and each kv > 12: a cheap bound
  // that catches garbage counts before gguf tries to allocate for them.
  if (n_tensors * 24 + n_kv * 12 > size) {
    throw InputError(fmt::format(
        "{}: corrupt GGUF header ({} tensors, {} keys in a {}-byte file)", path,
        n_tensors, n_kv, size));
  }
}

GgufFile::GgufFile(const std::string& path) : path_(path) {
  ensure_backend();
  validate_gguf_header(path);
  file_size_bytes_ = std::filesystem::file_size(path);
  Logger quiet;
  ScopedLogCapture capture(quiet);
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  ctx_ = gguf_init_from_file(path.c_str(), params);
  if (!ctx_) {
    std::string why = capture.text();
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    throw InputError(fmt::format("{}: corrupt or truncated GGUF ({})", path,
                                 why.empty() ? "gguf reader failed" : why));
  }
  // The data section must hold every tensor: catches files cut short.
  const size_t data_end_needed = [&] {
    size_t end = 0;
    for (int64_t i = 0; i < gguf_get_n_tensors(ctx_); ++i) {
      end = std::max(end, gguf_get_tensor_offset(ctx_, i) + gguf_get_tensor_size(ctx_, i));
    }
    return gguf_get_data_offset(ctx_) + end;
  }();
  if (data_end_needed > file_size_bytes_) {
    gguf_free(ctx_);
    ctx_ = nullptr;
    throw InputError(fmt::format(
        "{}: truncated GGUF: tensor data needs {} bytes, file has {}", path,
        data_end_needed, file_size_bytes_));
  }
}

GgufFile::~GgufFile() {
  if (ctx_) gguf_free(ctx_);
}

size_t GgufFile::data_offset() const { return gguf_get_data_offset(ctx_); }
size_t GgufFile::alignment() const { return gguf_get_alignment(ctx_); }
int64_t GgufFile::n_tensors() const { return gguf_get_n_tensors(ctx_); }
int64_t GgufFile::find_tensor(const std::string& name) const {
  return gguf_find_tensor(ctx_, name.c_str());
}
std::string GgufFile::tensor_name(int64_t i) const { return gguf_get_tensor_name(ctx_, i); }
int GgufFile::tensor_type(int64_t i) const { return gguf_get_tensor_type(ctx_, i); }
size_t GgufFile::tensor_offset(int64_t i) const { return gguf_get_tensor_offset(ctx_, i); }
size_t GgufFile::tensor_size_bytes(int64_t i) const { return gguf_get_tensor_size(ctx_, i); }

std::vector<int64_t> GgufFile::tensor_shape(int64_t i) const {
  const int64_t* ne = gguf_get_tensor_ne(ctx_, i);
  int n_dims = GGML_MAX_DIMS;
  while (n_dims > 1 && ne[n_dims - 1] == 1) --n_dims;
  return std::vector<int64_t>(ne, ne + n_dims);
}

bool GgufFile::has_key(const std::string& key) const {
  return gguf_find_key(ctx_, key.c_str()) >= 0;
}

std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
  const int64_t id = gguf_find_key(ctx_, key.c_str());
  if (id < 0 || gguf_get_kv_type(ctx_, id) != GGUF_TYPE_STRING) return fallback;
  return gguf_get_val_str(ctx_, id);
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const {
  const int64_t id = gguf_find_key(ctx_, key.c_str());
  if (id < 0) return fallback;
  switch (gguf_get_kv_type(ctx_, id)) {
    case GGUF_TYPE_UINT8: return gguf_get_val_u8(ctx_, id);
    case GGUF_TYPE_INT8: return gguf_get_val_i8(ctx_, id);
    case GGUF_TYPE_UINT16: return gguf_get_val_u16(ctx_, id);
    case GGUF_TYPE_INT16: return gguf_get_val_i16(ctx_, id);
    case GGUF_TYPE_UINT32: return gguf_get_val_u32(ctx_, id);
    case GGUF_TYPE_INT32: return gguf_get_val_i32(ctx_, id);
    case GGUF_TYPE_UINT64: return static_cast<int64_t>(gguf_get_val_u64(ctx_, id));
    case GGUF_TYPE_INT64: return gguf_get_val_i64(ctx_, id);
    default: return fallback;
  }
}

namespace {

bool shapes_the_graph(const std::string& key) {
  for (const char* prefix : {"general.", "quantize.", "cerebellum.", "split."}) {
    if (key.rfind(prefix, 0) == 0) return key == "general.architecture";
  }
  return true;
}

size_t scalar_bytes(gguf_type t) {
  switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    default: return 8;  // UINT64, INT64, FLOAT64
  }
}

// A key's type and value as bytes (strings and arrays of them spelled out).
std::string kv_bytes(gguf_context* ctx, int64_t id) {
  const gguf_type type = gguf_get_kv_type(ctx, id);
  std::string out(1, static_cast<char>(type));
  if (type == GGUF_TYPE_STRING) return out + gguf_get_val_str(ctx, id);
  if (type != GGUF_TYPE_ARRAY) {
    return out.append(static_cast<const char*>(gguf_get_val_data(ctx, id)), scalar_bytes(type));
  }
  const gguf_type item = gguf_get_arr_type(ctx, id);
  const size_t n = gguf_get_arr_n(ctx, id);
  out += static_cast<char>(item) + std::to_string(n) + ':';
  if (item == GGUF_TYPE_STRING) {
    for (size_t i = 0; i < n; ++i) out.append(gguf_get_arr_str(ctx, id, i)).push_back('\0');
    return out;
  }
  return out.append(static_cast<const char*>(gguf_get_arr_data(ctx, id)), n * scalar_bytes(item));
}

std::map<std::string, std::string> graph_metadata(const GgufFile& f) {
  std::map<std::string, std::string> out;
  for (int64_t id = 0; id < gguf_get_n_kv(f.ctx()); ++id) {
    const std::string key = gguf_get_key(f.ctx(), id);
    if (shapes_the_graph(key)) out[key] = kv_bytes(f.ctx(), id);
  }
  return out;
}

}  // namespace

std::string graph_metadata_difference(const GgufFile& a, const GgufFile& b) {
  const auto ma = graph_metadata(a), mb = graph_metadata(b);
  for (const auto& [key, value] : ma) {
    const auto it = mb.find(key);
    if (it == mb.end() || it->second != value) return key;
  }
  for (const auto& [key, value] : mb) {
    if (!ma.count(key)) return key;
  }
  return "";
}

}  // namespace cb::engine
