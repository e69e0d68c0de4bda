// In-place type swaps on a loaded model. A swapped tensor is re-pointed at a
// scratch buffer of the same backend buffer type (host or device) holding the
// tensor converted from the source GGUF, with the new type and strides;
// restore() points it back at the loaded bytes, which are never written. So
// nothing is reloaded, no copy of the model is kept, and a measurement runs
// the real kernels of the real types.
//
// Two kinds of swap:
//   set_type       the real type (q2_K bytes, q2_K kernels);
//   set_simulated  the tensor keeps its loaded type but holds
//                  dequant(quant_type(source)) ("simulated" quantization).
//
// The process must not reuse compute graphs across a swap (a reused graph or
// CUDA graph could run a stale kernel for a changed type at an unchanged
// address): ensure_backend() turns llama.cpp's graph reuse and ggml-cuda's
// CUDA graphs off for this reason.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/llama_model.h"

namespace cb::engine {

class ConvertAhead;
class TensorSource;

class TensorSwapper {
 public:
  // `model` must have been loaded with ModelLoadOptions::swappable; tensors
  // are converted from the GGUF at `source_path` (same tensor names/shapes).
  TensorSwapper(LlamaModel& model, const std::string& source_path);
  ~TensorSwapper();
  TensorSwapper(const TensorSwapper&) = delete;
  TensorSwapper& operator=(const TensorSwapper&) = delete;

  // Throws RecipeError (unknown tensor, type does not fit, imatrix needed),
  // EngineError (no memory for the scratch buffer). A type equal to the
  // loaded type restores. imatrix: importance weights or null.
  void set_type(const std::string& name, const std::string& type_name,
                const std::vector<float>* imatrix = nullptr);
  void set_simulated(const std::string& name, const std::string& type_name,
                     const std::vector<float>* imatrix = nullptr);
  void restore(const std::string& name);
  void restore_all();

  // A tensor to convert ahead of its set_type: name, type, imatrix (or empty).
  struct Ahead {
    std::string name, type_name;
    std::vector<float> imatrix;
  };
  // The tensors the next units will swap in, in order (several units ahead):
  // converted from the source on a background thread while the caller
  // evaluates, so on a GPU the conversions overlap the evaluations and a
  // large unit's conversion can start units before it is due. A set_type
  // with the same name, type and imatrix takes the converted bytes (waiting
  // for them if they are in flight) instead of converting. At most
  // `max_bytes` are held; the list is converted from its start up to that.
  // Each call replaces the list (bytes converted and still listed are kept).
  // False if nothing of it is held or queued.
  bool prefetch(std::vector<Ahead> tensors, int64_t max_bytes);
  // Swaps served from a prefetch so far.
  int64_t prefetched_swaps() const { return n_prefetched_; }
  // Seconds the background converter has spent converting so far.
  double convert_ahead_s() const;
  // Names of swappable tensors (weights the graph reads) and their loaded types.
  std::map<std::string, std::string> tensor_types() const;
  std::vector<std::string> swapped() const;

 private:
  struct Swap;
  void swap_in(const std::string& name, int type, bool simulated, const std::vector<float>* imatrix);
  LlamaModel& model_;
  std::unique_ptr<TensorSource> source_;
  std::map<std::string, std::unique_ptr<Swap>> swaps_;
  int64_t n_prefetched_ = 0;
  std::unique_ptr<ConvertAhead> ahead_;  // declared last: its thread stops first
};

}  // namespace cb::engine
