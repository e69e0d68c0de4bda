// The type and preset facts, as data in one place: every ggml tensor type
// (block geometry, traits, the file type a file mostly of it is labelled),
// the k-quant ladder, and llama-quantize's stock mixes. Type ids and file
// types are GGUF format values (`general.file_type`, tensor types), so they
// are written here; engine/type_table_test.cc checks every row against the
// pinned ggml / llama.h, so the table cannot drift from the engine.
// Types are named by ggml's canonical names ("f16", "q4_K", "iq2_xs");
// parsing is case-insensitive.
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
  int mostly_ftype = -1;        // llama_ftype of a file mostly of this type; -1 = none
  double bits_per_weight() const { return 8.0 * block_bytes / block_elems; }
};

// All types ggml knows (removed ones excluded), in ggml order.
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

// The k-quant ladder q2_K < q3_K < q4_K < q5_K < q6_K < q8_0: the types the
// bpw proxy prices and the original project's greedy plan steps through.
const std::vector<std::string>& k_ladder();

// A llama-quantize preset (QUANT_OPTIONS of the pinned tools/quantize, minus COPY).
struct StockMix {
  std::string name;            // as llama-quantize spells it, e.g. "Q4_K_M"
  int ftype = -1;              // llama_ftype, what general.file_type records
  // A candidate for the same-size stock baseline: the mixes llama-quantize
  // makes without an importance matrix (k-quant mixes and Q8_0).
  bool size_baseline = false;
  // "k" (Q2_K .. Q8_0), "iq" (IQ1_S .. IQ4_XS), "legacy" (Q4_0 .. Q5_1, Q1_0,
  // Q2_0), "ternary" (TQ*: for ternary-trained models), "mxfp4", "float".
  // Within a family a larger file is the better one (llama.cpp's published
  // KLD-vs-size tables), so the best of a family within a budget is its
  // largest member that fits.
  std::string family;
  // llama-quantize's short names ("Q4_K") for a full one ("Q4_K_M"): the same
  // mix. Lists of distinct options skip them.
  std::string alias_of;
};

// In llama-quantize's order; aliases ("Q4_K" = Q4_K_M) included.
const std::vector<StockMix>& stock_mixes();
// Case-insensitive lookup ("q4_k_m" == "Q4_K_M").
std::optional<StockMix> find_stock_mix(std::string_view name);

}  // namespace cb
