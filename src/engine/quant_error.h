// Engine side of the quantization-error table: for each tensor and type,
// quantize with ggml_quantize_chunk (imatrix-weighted when weights are given)
// and dequantize with the type traits' to_float, then
//   rel_mse = Σ w·(x − x̂)² / Σ w·x²   (w = imatrix column weights, else 1).
// Large tensors are priced on an evenly spaced sample of rows (quantization is
// row-independent, so a row sample is an unbiased estimate).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cerebellum/common/log.h"

namespace cb::engine {

struct QuantErrorJob {
  std::string source;  // GGUF with the full-precision (or any dequantizable) weights
  // tensor -> ggml type names to price; types whose blocks do not fit the rows,
  // or that ggml cannot quantize without an imatrix when there is none, are skipped.
  std::map<std::string, std::vector<std::string>> types;
  // imatrix weights (sums/counts, expert-major) of a tensor; empty = none.
  std::function<std::vector<float>(const std::string&)> imatrix_for;
  int n_threads = 0;                          // 0 = hardware threads
  int64_t max_elements_per_tensor = 1 << 22;  // above this, rows are sampled evenly
};

struct QuantErrorValue {
  double rel_mse = 0;
  int64_t rows_used = 0, rows_total = 0;
  bool weighted = false;  // imatrix weights were used (quantizer and metric)
};

// tensor -> type -> value. Throws InputError (bad source / unknown tensor),
// RecipeError (unknown type), MismatchError (imatrix size).
std::map<std::string, std::map<std::string, QuantErrorValue>> compute_quant_error(
    const QuantErrorJob& job, const Logger& logger, const ProgressFn& progress);

}  // namespace cb::engine
