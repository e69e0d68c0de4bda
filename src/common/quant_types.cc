#include "cerebellum/common/quant_types.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/strings.h"

namespace cb {
namespace {

// {id, name, block elems, block bytes, quantized, can_quantize, requires_imatrix, mostly_ftype}
// ggml's traits at the pinned commit; removed ids (4, 5, 31-33, 36-38) are absent.
const std::vector<TypeInfo> kTypes = {
    {0, "f32", 1, 4, false, true, false, 0},          {1, "f16", 1, 2, false, true, false, 1},
    {2, "q4_0", 32, 18, true, true, false, 2},        {3, "q4_1", 32, 20, true, true, false, 3},
    {6, "q5_0", 32, 22, true, true, false, 8},        {7, "q5_1", 32, 24, true, true, false, 9},
    {8, "q8_0", 32, 34, true, true, false, 7},        {9, "q8_1", 32, 36, true, true, false, -1},
    {10, "q2_K", 256, 84, true, true, false, 10},     {11, "q3_K", 256, 110, true, true, false, 12},
    {12, "q4_K", 256, 144, true, true, false, 15},    {13, "q5_K", 256, 176, true, true, false, 17},
    {14, "q6_K", 256, 210, true, true, false, 18},    {15, "q8_K", 256, 292, true, false, false, -1},
    {16, "iq2_xxs", 256, 66, true, false, true, 19},  {17, "iq2_xs", 256, 74, true, false, true, 20},
    {18, "iq3_xxs", 256, 98, true, true, false, 23},  {19, "iq1_s", 256, 50, true, false, true, 24},
    {20, "iq4_nl", 32, 18, true, true, false, 25},    {21, "iq3_s", 256, 110, true, true, false, 26},
    // iq2_s files are labelled IQ2_M: stock's IQ2_S mix has no single-type label.
    {22, "iq2_s", 256, 82, true, true, false, 29},    {23, "iq4_xs", 256, 136, true, true, false, 30},
    {24, "i8", 1, 1, false, false, false, -1},        {25, "i16", 1, 2, false, false, false, -1},
    {26, "i32", 1, 4, false, false, false, -1},       {27, "i64", 1, 8, false, false, false, -1},
    {28, "f64", 1, 8, false, false, false, -1},       {29, "iq1_m", 256, 56, true, false, false, 31},
    {30, "bf16", 1, 2, false, true, false, 32},       {34, "tq1_0", 256, 54, true, true, false, 36},
    {35, "tq2_0", 256, 66, true, true, false, 37},    {39, "mxfp4", 32, 17, true, true, false, -1},
    {40, "nvfp4", 64, 36, true, true, false, -1},     {41, "q1_0", 128, 18, true, true, false, -1},
    {42, "q2_0", 64, 18, true, true, false, -1},
};

const std::vector<StockMix> kStockMixes = {
    {"Q1_0", 40, false, "legacy"},     {"Q2_0", 41, false, "legacy"},     {"Q4_0", 2, false, "legacy"},
    {"Q4_1", 3, false, "legacy"},      {"MXFP4_MOE", 38, false, "mxfp4"}, {"Q5_0", 8, false, "legacy"},
    {"Q5_1", 9, false, "legacy"},      {"IQ2_XXS", 19, false, "iq"},      {"IQ2_XS", 20, false, "iq"},
    {"IQ2_S", 28, false, "iq"},        {"IQ2_M", 29, false, "iq"},        {"IQ1_S", 24, false, "iq"},
    {"IQ1_M", 31, false, "iq"},        {"TQ1_0", 36, false, "ternary"},   {"TQ2_0", 37, false, "ternary"},
    {"Q2_K", 10, true, "k"},           {"Q2_K_S", 21, false, "k"},        {"IQ3_XXS", 23, false, "iq"},
    {"IQ3_S", 26, false, "iq"},        {"IQ3_M", 27, false, "iq"},        {"Q3_K", 12, false, "k", "Q3_K_M"},
    {"IQ3_XS", 22, false, "iq"},       {"Q3_K_S", 11, true, "k"},         {"Q3_K_M", 12, true, "k"},
    {"Q3_K_L", 13, true, "k"},         {"IQ4_NL", 25, false, "iq"},       {"IQ4_XS", 30, false, "iq"},
    {"Q4_K", 15, false, "k", "Q4_K_M"},          {"Q4_K_S", 14, true, "k"},         {"Q4_K_M", 15, true, "k"},
    {"Q5_K", 17, false, "k", "Q5_K_M"},          {"Q5_K_S", 16, true, "k"},         {"Q5_K_M", 17, true, "k"},
    {"Q6_K", 18, true, "k"},           {"Q8_0", 7, true, "k"},            {"F16", 1, false, "float"},
    {"BF16", 32, false, "float"},      {"F32", 0, false, "float"},
};

}  // namespace

const std::vector<TypeInfo>& all_types() { return kTypes; }

const std::vector<std::string>& k_ladder() {
  static const std::vector<std::string> ladder{"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_0"};
  return ladder;
}

const std::vector<StockMix>& stock_mixes() { return kStockMixes; }

std::optional<StockMix> find_stock_mix(std::string_view name) {
  const std::string key = ascii_upper(name);
  for (const auto& m : kStockMixes) {
    if (m.name == key) return m;
  }
  return std::nullopt;
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
