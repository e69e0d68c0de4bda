// The quantization-error table the allocator's damage model extrapolates
// with: for each stock-quantizable tensor and each type whose blocks fit its
// rows, the relative MSE of quantize → dequantize through ggml's own
// quantizers (imatrix-weighted when an imatrix is given):
//   rel_mse = Σ w·(W − deq(q(W)))² / Σ w·W²,  w = imatrix column weights, else 1.
// `cerebellum qerror` writes it; `allocate --quant-error auto` and `quantize`
// compute it on the fly. See docs/allocate.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/common/log.h"

namespace cb {

struct QuantErrorOptions {
  // Types to price; empty = Constraints{}.allowed_types. Types that need an
  // imatrix (type_needs_imatrix) are priced only on tensors it covers.
  std::vector<std::string> types;
  std::string imatrix_path;                   // "" = uniform weights, no imatrix
  int n_threads = 0;                          // 0 = every CPU this run may use (its affinity)
  // Row sampling (quantization is row-independent): each tensor is priced on
  // about min_elements of evenly spaced rows, doubled while some type's
  // relative standard error is above target_rel_se, up to max_elements.
  // min = max: a fixed sample (min = max = 1 << 30: every row, exact).
  // Defaults checked against the exact table in docs/allocate.md.
  int64_t min_elements_per_tensor = 1 << 16;
  int64_t max_elements_per_tensor = 1 << 22;
  double target_rel_se = 0.02;
  const ModelInfo* source_model = nullptr;    // the source's inspection if the caller has it; null = inspect
};

struct QuantErrorReport {
  QuantErrorTable table;
  std::string source, source_sha256, imatrix_path;
  int n_tensors = 0, n_values = 0;
  int n_sampled_tensors = 0;                  // priced on a row sample
  int64_t min_elements_per_tensor = 0, max_elements_per_tensor = 0;
  double target_rel_se = 0;
  double max_rel_se = 0;                      // largest se/value over the table
  std::map<std::string, std::map<std::string, double>> rel_mse_se;  // tensor -> type -> se
  double elapsed_s = 0;
};

// Throws InputError (bad source / imatrix), MismatchError (imatrix of another
// model), RecipeError (unknown type).
QuantErrorReport compute_quant_error_table(const std::string& source, const QuantErrorOptions& options,
                                           const Logger& logger = {}, const ProgressFn& progress = {});

// cerebellum.qerror/1: {"schema", "source", "source_sha256", "weighting",
// "imatrix", "elapsed_s", ..., "rel_mse": {tensor: {type: value}}}.
nlohmann::json to_json(const QuantErrorReport& report);

}  // namespace cb
