// The adapter layer: the only place that includes llama.h / ggml.h / gguf.h.
// Everything else in the library talks to the engine through these helpers
// (and the stage-specific adapters in src/engine/), never directly.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cerebellum/common/log.h"

struct gguf_context;
struct ggml_context;
struct ggml_backend_buffer_type;

namespace cb::engine {

// Initialise llama/ggml backends once per process (thread-safe).
void ensure_backend();

// Routes llama.cpp / ggml log output to `logger` while alive (debug level for
// info chatter, warn/error as such). Nested scopes restore the previous sink.
class ScopedLogCapture {
 public:
  explicit ScopedLogCapture(const Logger& logger);
  ~ScopedLogCapture();
  ScopedLogCapture(const ScopedLogCapture&) = delete;
  ScopedLogCapture& operator=(const ScopedLogCapture&) = delete;
  // Everything the engine logged while this scope was active.
  const std::string& text() const { return text_; }
  void append(int level, const char* msg);

 private:
  const Logger* logger_;
  std::string text_;
  ScopedLogCapture* prev_;
};

// Device bytes a loader keeps free of weights for the KV cache and compute
// buffers when it fits layers under a cap (ModelLoadOptions::device_reserve_bytes).
constexpr int64_t kDeviceReserveBytes = int64_t{3} << 29;  // 1.5 GiB

// Free and total bytes of the first GPU device; {0, 0} without one.
struct DeviceMemory {
  int64_t free_bytes = 0, total_bytes = 0;
};
DeviceMemory gpu_memory();

// llama.cpp's CPU repacking buffer type ("CPU_REPACK": weights interleaved for
// the AVX2 / AVX-512 matrix kernels, as stock tools use by default), where a
// run may use it: no GPU device (a partial offload's op offload cannot read
// repacked weights) and no AMX buffer type (AMX repacking segfaults on
// quantized models). nullptr otherwise.
::ggml_backend_buffer_type* cpu_repack_buffer_type();

// A GGUF file opened for reading metadata (tensor data is not loaded).
// Validates the header before handing it to gguf so that truncated,
// corrupt and v1 files get a precise InputError.
class GgufFile {
 public:
  explicit GgufFile(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  gguf_context* ctx() const { return ctx_; }
  uint64_t file_size_bytes() const { return file_size_bytes_; }
  size_t data_offset() const;
  size_t alignment() const;

  int64_t n_tensors() const;
  int64_t find_tensor(const std::string& name) const;  // -1 if absent
  std::string tensor_name(int64_t i) const;
  int tensor_type(int64_t i) const;                    // ggml_type
  std::vector<int64_t> tensor_shape(int64_t i) const;  // ne[0..n_dims)
  size_t tensor_offset(int64_t i) const;               // relative to data_offset
  size_t tensor_size_bytes(int64_t i) const;

  std::string get_string(const std::string& key, const std::string& fallback = "") const;
  int64_t get_int(const std::string& key, int64_t fallback = -1) const;
  bool has_key(const std::string& key) const;

 private:
  std::string path_;
  gguf_context* ctx_ = nullptr;
  uint64_t file_size_bytes_ = 0;
};

// Checks magic, version and bounds of a GGUF file header; throws InputError.
void validate_gguf_header(const std::string& path);

// A model's metadata as llama.cpp will use it: layer count against the
// tensors, positive sizes, a vocab without duplicates that covers every byte.
// InputError naming the key (llama.cpp would abort or throw mid-run).
void check_model_metadata(const GgufFile& file);
// The header, then the metadata: what every llama.cpp entry point calls first.
void validate_model_file(const std::string& path);
// The first metadata key, other than descriptions and quantization stamps
// (general.* but the architecture, quantize.*, cerebellum.*, split.*), that
// `a` and `b` do not hold alike; "" when every such key matches: two files
// of one model in other types, whose graphs llama.cpp builds alike.
std::string graph_metadata_difference(const GgufFile& a, const GgufFile& b);
// The first tensor whose data holds NaN/Inf (ggml_validate_row_data: floats and
// quantized blocks' scales), nullopt when all are finite. Reads the whole file:
// for the error path (non-finite logits), not for every load.
std::optional<std::string> first_non_finite_tensor(const std::string& path);

}  // namespace cb::engine
