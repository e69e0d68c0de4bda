// Quantize / dequantize helpers over ggml's type traits, shared by the
// quantization-error table and the simulated in-place swaps. Types are ggml_type values as ints.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cb::engine {

// ggml_type of a name ("q4_K", case-insensitive); throws RecipeError.
int ggml_type_id(const std::string& name);

// Any ggml type (f32, f16, bf16, quantized) -> F32; n_elements values.
std::vector<float> dequantize_to_f32(int type, const void* data, int64_t n_elements);

// F32 rows -> `type` bytes via ggml_quantize_chunk. `rows_per_matrix` splits
// 3-D (expert) tensors so each expert gets its own imatrix slice; imatrix
// (optional) holds n_per_row values per matrix. Throws RecipeError when the
// row does not fit the type's blocks or the type needs an imatrix and has none.
// n_threads > 1 splits each matrix's rows over threads (same bytes).
std::vector<uint8_t> quantize_from_f32(int type, const float* src, int64_t n_per_row,
                                       int64_t n_rows, int64_t rows_per_matrix,
                                       const std::vector<float>* imatrix, int n_threads = 1);

// F32 -> `type` bytes (quantize or convert for f16/bf16/f32).
std::vector<uint8_t> convert_from_f32(int type, const float* src, int64_t n_per_row,
                                      int64_t n_rows, int64_t rows_per_matrix,
                                      const std::vector<float>* imatrix, int n_threads = 1);

}  // namespace cb::engine
