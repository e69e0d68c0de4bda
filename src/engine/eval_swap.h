// In-place tensor swaps on a loaded model ("simulated" quantization): a
// tensor keeps its in-memory type (F16/F32) but its data becomes
// dequant(quant(original)); restore() puts the original bytes back. Nothing
// is reloaded, so one measurement costs only the evaluation.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/llama_model.h"

namespace cb::engine {

class TensorSwapper {
 public:
  // `model` must be loaded with ModelLoadOptions::in_memory.
  explicit TensorSwapper(LlamaModel& model);

  // Simulates `type_name` on tensor `name`, always from the original data
  // (so swaps do not compound). Type equal to the stored type restores.
  // imatrix: optional importance weights for the quantizer.
  // Throws RecipeError (unknown tensor, type does not fit), EngineError.
  void set_simulated(const std::string& name, const std::string& type_name,
                     const std::vector<float>* imatrix = nullptr);
  void restore(const std::string& name);
  void restore_all();
  // Names of swappable tensors (weights the graph reads) and their types.
  std::map<std::string, std::string> tensor_types() const;
  std::vector<std::string> swapped() const;

  // Quantized bytes are memoised per (tensor, type) up to this many bytes, so
  // a tensor going back to its base type after a measurement (and the whole
  // model going back to the base after the reference) is a dequantization,
  // not a re-quantization. Assumes a tensor's importance weights do not
  // change between calls (true for one evaluator).
  void set_cache_limit_bytes(int64_t limit_bytes) { cache_limit_bytes_ = limit_bytes; }
  int64_t cache_bytes() const { return cache_bytes_; }

 private:
  struct Original {
    std::vector<uint8_t> bytes;
  };
  LlamaModel& model_;
  std::map<std::string, Original> originals_;
  std::map<std::pair<std::string, int>, std::vector<uint8_t>> cache_;
  int64_t cache_bytes_ = 0;
  int64_t cache_limit_bytes_ = int64_t{2} << 30;
};

}  // namespace cb::engine
