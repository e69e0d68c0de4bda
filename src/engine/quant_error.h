// Engine side of the quantization-error table: for each tensor and type,
// quantize with ggml_quantize_chunk (imatrix-weighted when weights are given)
// and dequantize with the type traits' to_float, then
//   rel_mse = Σ w·(x − x̂)² / Σ w·x²   (w = imatrix column weights, else 1).
// Large tensors are priced on an evenly spaced sample of rows (quantization is
// row-independent), grown until the estimate's standard error is within a
// stated bound.
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
  // Row sampling: start with about min_elements of evenly spaced rows; while
  // some type's relative standard error exceeds target_rel_se, double the
  // rows, up to max_elements (above that, a sample is final). min = 0: start
  // at max (a fixed sample).
  int64_t min_elements_per_tensor = 0;
  int64_t max_elements_per_tensor = 1 << 22;
  double target_rel_se = 0.02;
};

struct QuantErrorValue {
  double rel_mse = 0;
  // Standard error of rel_mse from the row sample (ratio estimator with the
  // finite-population correction): 0 when every row was used.
  double rel_mse_se = 0;
  int64_t rows_used = 0, rows_total = 0;
  bool weighted = false;  // imatrix weights were used (quantizer and metric)
};

// tensor -> type -> value. Throws InputError (bad source / unknown tensor),
// RecipeError (unknown type), MismatchError (imatrix size).
std::map<std::string, std::map<std::string, QuantErrorValue>> compute_quant_error(
    const QuantErrorJob& job, const Logger& logger, const ProgressFn& progress);

}  // namespace cb::engine
