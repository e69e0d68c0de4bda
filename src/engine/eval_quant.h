// Quantize / dequantize helpers over ggml's type traits, shared by the
// in-memory model loader (exact mode) and the in-place tensor swaps
// (simulated mode). Types are ggml_type values as ints.
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

// Copies the GGUF `src_path` to `dst_path` with the listed tensors converted
// to other types (name -> ggml type name); imatrix per tensor name optional.
// Throws RecipeError (unknown tensor / type does not fit), IoError.
void write_requantized_gguf(const std::string& src_path, const std::string& dst_path,
                            const std::map<std::string, std::string>& types,
                            const std::map<std::string, std::vector<float>>& imatrix);

}  // namespace cb::engine
