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

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
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
  // Puts every tensor back (and ends a view_file).
  void restore_all();

  // Every swappable tensor whose type differs from the GGUF at `path` (the
  // same names and shapes: the source, or a reference model made from it)
  // re-pointed, in place and without a copy, at that tensor's bytes in a
  // read-only mapping of the file: the loaded model then computes as that
  // file's model would (same types, same kernels), reading none of its own
  // weights, so a reference pass needs no second model in memory. Returns
  // the mapping's address range; its pages are the file's, which a page
  // releaser may give back layer by layer. Needs every tensor in host memory
  // (all_on_host). restore_all() ends it. Throws MismatchError (a tensor
  // missing or shaped otherwise), InputError (cannot map the file).
  std::pair<uintptr_t, uintptr_t> view_file(const std::string& path);
  // Whether every swappable tensor lies in host memory (none on a device).
  bool all_on_host() const;

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
  struct FileView;
  std::unique_ptr<FileView> view_;  // view_file's mapping, while it lasts
  int64_t n_prefetched_ = 0;
  std::unique_ptr<ConvertAhead> ahead_;  // declared last: its thread stops first
};

}  // namespace cb::engine
