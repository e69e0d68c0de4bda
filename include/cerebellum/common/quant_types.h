// The type table: every ggml tensor type, its block geometry and traits,
// read from ggml itself (not duplicated here). Types are named by ggml's
// canonical names ("f16", "q4_K", "iq2_xs"); parsing is case-insensitive.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cb {

struct TypeInfo {
  int id = -1;                  // ggml_type value (opaque outside the engine)
  std::string name;             // canonical ggml name
  int64_t block_elems = 1;      // elements per block
  int64_t block_bytes = 0;      // bytes per block
  bool quantized = false;       // a block-quantized type
  bool can_quantize = false;    // ggml has a quantizer for it (from float)
  bool requires_imatrix = false;// ggml refuses to quantize it without an imatrix
  double bits_per_weight() const { return 8.0 * block_bytes / block_elems; }
};

// All types ggml knows, in ggml order.
const std::vector<TypeInfo>& all_types();

// Look up by name, case-insensitive ("Q4_K" == "q4_k" == "q4_K").
std::optional<TypeInfo> find_type(std::string_view name);

// As find_type but throws RecipeError naming the bad type.
const TypeInfo& type_by_name(std::string_view name);
const TypeInfo& type_by_id(int id);

// Bytes of one row of `n_per_row` elements; throws if not a multiple of the block.
int64_t row_size_bytes(const TypeInfo& type, int64_t n_per_row);

// Whether rows of this width fit the type's blocks.
inline bool row_fits(const TypeInfo& type, int64_t n_per_row) {
  return n_per_row % type.block_elems == 0;
}

// The "useful target" types a planner considers (k-quants, i-quants, legacy,
// q8_0, f16, bf16, f32), ordered by bits per weight.
std::vector<TypeInfo> target_types();

}  // namespace cb
