// Engine side of `build` and `surgery`: writes a GGUF whose tensors are
// converted by ggml's own quantizers (ggml_quantize_chunk), streaming one
// slab of rows at a time. Tensor data is byte-identical to llama-quantize
// for the same per-tensor types (same row conversion, same imatrix slices).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cerebellum/common/log.h"

namespace cb::engine {

struct QuantizeJob {
  std::string source;                      // input GGUF
  std::string out;                         // output GGUF (unused for dry_run)
  std::map<std::string, std::string> types;  // target type per tensor; absent = unchanged
  // imatrix weights (sums/counts, expert-major) for a tensor; empty = none.
  std::function<std::vector<float>(const std::string&)> imatrix_for;
  bool stock_order = true;                 // llama-quantize's order (layer, then name); false = source order
  std::optional<int> ftype;                // general.file_type to set (with quantization_version)
  std::vector<std::pair<std::string, std::string>> string_kvs;  // set after the copied metadata
  std::vector<std::pair<std::string, uint32_t>> u32_kvs;        // (in this order: strings, then u32s)
  int n_threads = 0;                       // 0 = hardware threads
  int64_t max_slab_bytes = 64ll << 20;     // rows per slab = this / (source + output row bytes)
  bool dry_run = false;                    // compute sizes only
  // Eval builds (never a user's output: the key changes the bytes): write
  // kOriginKey, naming the source file and the imatrix the tensors came from.
  bool stamp_origin = false;
  // A GGUF stamped with the same origin (the same source and imatrix, e.g. the
  // base mix a sweep built): a tensor it holds with the same shape and target
  // type is copied from it instead of converted again; the same bytes, since
  // ggml's quantizers are deterministic. Any other donor is not read.
  std::string donor;
};

constexpr const char* kOriginKey = "cerebellum.quantized_from";

struct QuantizedTensor {
  std::string name;
  std::string from_type;
  std::string to_type;
  std::vector<int64_t> shape;
  int64_t size_bytes = 0;   // output data bytes (unpadded)
  bool used_imatrix = false;
};

struct WriteResult {
  int64_t output_size_bytes = 0;  // exact file size (written or predicted)
  int n_donated = 0;              // tensors copied from the donor
  int64_t meta_size_bytes = 0;    // header + metadata + tensor infos, padded
  std::vector<QuantizedTensor> tensors;  // in output order
};

// Throws InputError (bad source), RecipeError (type does not fit rows),
// MismatchError (imatrix size), EngineError (quantizer validation), IoError.
WriteResult quantize_gguf(const QuantizeJob& job, const Logger& logger, const ProgressFn& progress);

// Converts single tensors of a GGUF to other types, slab by slab (pread, the
// file is never mapped or read whole): the in-memory side of quantize_gguf,
// with the same bytes. Used for in-place type swaps on a loaded model.
class TensorSource {
 public:
  explicit TensorSource(const std::string& path);  // InputError: bad file
  ~TensorSource();
  TensorSource(const TensorSource&) = delete;
  TensorSource& operator=(const TensorSource&) = delete;
  const std::string& path() const;
  // Converts tensor `name` to `type` (ggml name); `sink` receives the output
  // bytes in order. imatrix: sums/counts (expert-major) or empty. Returns the
  // output size in bytes. Throws RecipeError (no such tensor, rows do not fit,
  // needs an imatrix), MismatchError (imatrix size), InputError (the file cut
  // short since it was opened), EngineError.
  int64_t convert(const std::string& name, const std::string& type, const std::vector<float>& imatrix,
                  int n_threads, const std::function<void(const void*, size_t)>& sink,
                  int64_t max_slab_bytes = 64ll << 20) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cb::engine
