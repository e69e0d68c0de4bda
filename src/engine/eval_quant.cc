#include "engine/eval_quant.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/quant_types.h"
#include "ggml.h"

namespace cb::engine {

int ggml_type_id(const std::string& name) { return type_by_name(name).id; }

std::vector<float> dequantize_to_f32(int type, const void* data, int64_t n_elements) {
  std::vector<float> out(n_elements);
  const auto t = static_cast<ggml_type>(type);
  if (t == GGML_TYPE_F32) {
    std::memcpy(out.data(), data, n_elements * sizeof(float));
    return out;
  }
  const ggml_type_traits* traits = ggml_get_type_traits(t);
  if (!traits->to_float) {
    throw RecipeError(fmt::format("type {} cannot be dequantized", ggml_type_name(t)));
  }
  traits->to_float(data, out.data(), n_elements);
  return out;
}

namespace {

// Rows [first_row, first_row + n_rows) of one matrix, split over threads:
// ggml_quantize_chunk writes disjoint row ranges, so the bytes do not depend
// on the split.
void quantize_rows(ggml_type t, const float* src, uint8_t* dst, int64_t first_row, int64_t n_rows,
                   int64_t n_per_row, const float* im, int n_threads) {
  ggml_quantize_init(t);  // once, before the threads (i-quant tables)
  const int64_t per = std::max<int64_t>(1, (n_rows + std::max(1, n_threads) - 1) / std::max(1, n_threads));
  std::vector<std::thread> workers;
  for (int64_t lo = 0; lo < n_rows; lo += per) {
    const int64_t count = std::min(per, n_rows - lo);
    // `start` is in elements: ggml offsets both src and dst by it.
    auto job = [=] { ggml_quantize_chunk(t, src, dst, (first_row + lo) * n_per_row, count, n_per_row, im); };
    if (lo + per >= n_rows && workers.empty()) {
      job();
    } else {
      workers.emplace_back(job);
    }
  }
  for (auto& w : workers) w.join();
}

}  // namespace

std::vector<uint8_t> quantize_from_f32(int type, const float* src, int64_t n_per_row,
                                       int64_t n_rows, int64_t rows_per_matrix,
                                       const std::vector<float>* imatrix, int n_threads) {
  const auto t = static_cast<ggml_type>(type);
  if (n_per_row % ggml_blck_size(t) != 0) {
    throw RecipeError(fmt::format("rows of {} do not fit {} blocks of {}", n_per_row,
                                  ggml_type_name(t), ggml_blck_size(t)));
  }
  if (rows_per_matrix <= 0) rows_per_matrix = n_rows;
  const int64_t n_matrices = n_rows / rows_per_matrix;
  if (imatrix && static_cast<int64_t>(imatrix->size()) != n_per_row &&
      static_cast<int64_t>(imatrix->size()) != n_per_row * n_matrices) {
    throw RecipeError(fmt::format("imatrix has {} values, expected {} or {}", imatrix->size(),
                                  n_per_row, n_per_row * n_matrices));
  }
  if (ggml_quantize_requires_imatrix(t) && !imatrix) {
    throw RecipeError(fmt::format("type {} needs an importance matrix", ggml_type_name(t)));
  }
  const size_t row_bytes = ggml_row_size(t, n_per_row);
  std::vector<uint8_t> out(row_bytes * n_rows);
  for (int64_t m = 0; m < n_matrices; ++m) {
    const float* im = nullptr;
    if (imatrix) {
      im = imatrix->data() +
           (static_cast<int64_t>(imatrix->size()) == n_per_row ? 0 : m * n_per_row);
    }
    quantize_rows(t, src, out.data(), m * rows_per_matrix, rows_per_matrix, n_per_row, im,
                  n_threads);
  }
  return out;
}

std::vector<uint8_t> convert_from_f32(int type, const float* src, int64_t n_per_row,
                                      int64_t n_rows, int64_t rows_per_matrix,
                                      const std::vector<float>* imatrix, int n_threads) {
  const auto t = static_cast<ggml_type>(type);
  const int64_t n = n_per_row * n_rows;
  if (t == GGML_TYPE_F32) {
    std::vector<uint8_t> out(n * sizeof(float));
    std::memcpy(out.data(), src, out.size());
    return out;
  }
  if (t == GGML_TYPE_F16 || t == GGML_TYPE_BF16) {
    std::vector<uint8_t> out(ggml_row_size(t, n_per_row) * n_rows);
    // ggml_quantize_chunk handles f16/bf16 as plain conversions.
    ggml_quantize_chunk(t, src, out.data(), 0, n_rows, n_per_row, nullptr);
    return out;
  }
  return quantize_from_f32(type, src, n_per_row, n_rows, rows_per_matrix, imatrix, n_threads);
}

}  // namespace cb::engine
