#include "cerebellum/common/quant_types.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/strings.h"
#include "ggml.h"

namespace cb {
namespace {

std::vector<TypeInfo> build_table() {
  std::vector<TypeInfo> table;
  for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
    const auto type = static_cast<ggml_type>(t);
    const auto* traits = ggml_get_type_traits(type);
    // Removed types keep a slot in the enum with a zero block size.
    if (!traits || ggml_blck_size(type) == 0 || !traits->type_name) continue;
    TypeInfo info;
    info.id = t;
    info.name = ggml_type_name(type);
    info.block_elems = ggml_blck_size(type);
    info.block_bytes = static_cast<int64_t>(ggml_type_size(type));
    info.quantized = ggml_is_quantized(type);
    info.can_quantize = info.quantized ? traits->from_float_ref != nullptr
                                       : (type == GGML_TYPE_F16 || type == GGML_TYPE_BF16 ||
                                          type == GGML_TYPE_F32);
    info.requires_imatrix = ggml_quantize_requires_imatrix(type);
    table.push_back(info);
  }
  return table;
}

}  // namespace

const std::vector<TypeInfo>& all_types() {
  static const std::vector<TypeInfo> table = build_table();
  return table;
}

std::optional<TypeInfo> find_type(std::string_view name) {
  const std::string key = ascii_lower(name);
  for (const auto& t : all_types()) {
    if (ascii_lower(t.name) == key) return t;
  }
  return std::nullopt;
}

const TypeInfo& type_by_name(std::string_view name) {
  const std::string key = ascii_lower(name);
  for (const auto& t : all_types()) {
    if (ascii_lower(t.name) == key) return t;
  }
  throw RecipeError(fmt::format("unknown tensor type '{}'", name));
}

const TypeInfo& type_by_id(int id) {
  for (const auto& t : all_types()) {
    if (t.id == id) return t;
  }
  throw RecipeError(fmt::format("unknown ggml type id {}", id));
}

int64_t row_size_bytes(const TypeInfo& type, int64_t n_per_row) {
  if (!row_fits(type, n_per_row)) {
    throw RecipeError(fmt::format("rows of {} elements do not fit {} blocks of {}", n_per_row,
                                  type.name, type.block_elems));
  }
  return n_per_row / type.block_elems * type.block_bytes;
}

std::vector<TypeInfo> target_types() {
  // Types a user would target with llama-quantize; data, not logic.
  static const char* const kTargets[] = {
      "iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq2_s", "q2_K", "iq3_xxs", "iq3_s", "q3_K",
      "iq4_xs", "iq4_nl", "q4_0", "q4_1", "q4_K", "q5_0", "q5_1", "q5_K", "q6_K",
      "q8_0", "bf16", "f16", "f32"};
  std::vector<TypeInfo> out;
  for (const char* n : kTargets) {
    if (auto t = find_type(n)) out.push_back(*t);
  }
  std::stable_sort(out.begin(), out.end(), [](const TypeInfo& a, const TypeInfo& b) {
    return a.bits_per_weight() < b.bits_per_weight();
  });
  return out;
}

}  // namespace cb
