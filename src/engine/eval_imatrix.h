// Activation statistics for importance matrices, collected through the
// context's eval callback exactly as llama-imatrix's collect_imatrix: for
// every matrix multiplication by a "blk.*" weight (and output.weight when
// asked), the sum over tokens of each input column's squared activation,
// per expert for MUL_MAT_ID, with the token counts.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/llama_model.h"

namespace cb::engine {

struct ActivationStats {
  std::vector<float> sums;      // expert-major: sums[e * n_cols + c]
  std::vector<int64_t> counts;  // rows seen, per matrix / expert
};

class ImatrixCollector {
 public:
  explicit ImatrixCollector(bool include_output = false) : include_output_(include_output) {}
  // Pass as ContextOptions::cb_eval with this as user data.
  static bool callback(ggml_tensor* t, bool ask, void* user_data);
  const std::map<std::string, ActivationStats>& stats() const { return stats_; }
  const std::string& error() const { return error_; }

 private:
  bool wanted(const ggml_tensor* t) const;
  void collect(const ggml_tensor* t);
  void collect_mul_mat_id(const ggml_tensor* t, const float* src1);
  void collect_mul_mat(const ggml_tensor* t, const float* src1);

  bool include_output_;
  std::map<std::string, ActivationStats> stats_;
  std::vector<uint8_t> staging_;
  std::string error_;
};

}  // namespace cb::engine
