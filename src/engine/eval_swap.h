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

 private:
  struct Original {
    std::vector<uint8_t> bytes;
  };
  LlamaModel& model_;
  std::map<std::string, Original> originals_;
};

}  // namespace cb::engine
