// The type and preset table (common/quant_types.cc) is data; these tests hold
// it to the pinned ggml / llama.h, row by row, so an engine update that moves
// a type or a file type fails here instead of mislabelling files.
#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "cerebellum/common/quant_types.h"
#include "ggml.h"
#include "llama.h"

namespace cb {
namespace {

TEST(TypeTable, EveryRowMatchesGgmlAndEveryGgmlTypeHasARow) {
  std::set<int> ids;
  for (const TypeInfo& t : all_types()) {
    SCOPED_TRACE(t.name);
    ASSERT_GE(t.id, 0);
    ASSERT_LT(t.id, GGML_TYPE_COUNT);
    const auto type = static_cast<ggml_type>(t.id);
    EXPECT_EQ(t.name, ggml_type_name(type));
    EXPECT_EQ(t.block_elems, ggml_blck_size(type));
    EXPECT_EQ(t.block_bytes, static_cast<int64_t>(ggml_type_size(type)));
    EXPECT_EQ(t.quantized, ggml_is_quantized(type));
    EXPECT_EQ(t.requires_imatrix, ggml_quantize_requires_imatrix(type));
    const bool can = t.quantized ? ggml_get_type_traits(type)->from_float_ref != nullptr
                                 : (type == GGML_TYPE_F16 || type == GGML_TYPE_BF16 || type == GGML_TYPE_F32);
    EXPECT_EQ(t.can_quantize, can);
    ids.insert(t.id);
  }
  for (int id = 0; id < GGML_TYPE_COUNT; ++id) {
    const auto type = static_cast<ggml_type>(id);
    const auto* traits = ggml_get_type_traits(type);
    const bool live = traits && ggml_blck_size(type) != 0 && traits->type_name;
    EXPECT_EQ(live, ids.count(id) == 1) << "ggml type " << id;
  }
}

// llama.h's names for the integers the table holds (the compiler checks these).
const std::map<std::string, int> kFtypes = {
    {"Q1_0", LLAMA_FTYPE_MOSTLY_Q1_0},       {"Q2_0", LLAMA_FTYPE_MOSTLY_Q2_0},
    {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},       {"Q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},
    {"MXFP4_MOE", LLAMA_FTYPE_MOSTLY_MXFP4_MOE},
    {"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},       {"Q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},
    {"IQ2_XXS", LLAMA_FTYPE_MOSTLY_IQ2_XXS}, {"IQ2_XS", LLAMA_FTYPE_MOSTLY_IQ2_XS},
    {"IQ2_S", LLAMA_FTYPE_MOSTLY_IQ2_S},     {"IQ2_M", LLAMA_FTYPE_MOSTLY_IQ2_M},
    {"IQ1_S", LLAMA_FTYPE_MOSTLY_IQ1_S},     {"IQ1_M", LLAMA_FTYPE_MOSTLY_IQ1_M},
    {"TQ1_0", LLAMA_FTYPE_MOSTLY_TQ1_0},     {"TQ2_0", LLAMA_FTYPE_MOSTLY_TQ2_0},
    {"Q2_K", LLAMA_FTYPE_MOSTLY_Q2_K},       {"Q2_K_S", LLAMA_FTYPE_MOSTLY_Q2_K_S},
    {"IQ3_XXS", LLAMA_FTYPE_MOSTLY_IQ3_XXS}, {"IQ3_S", LLAMA_FTYPE_MOSTLY_IQ3_S},
    {"IQ3_M", LLAMA_FTYPE_MOSTLY_IQ3_M},     {"Q3_K", LLAMA_FTYPE_MOSTLY_Q3_K_M},
    {"IQ3_XS", LLAMA_FTYPE_MOSTLY_IQ3_XS},   {"Q3_K_S", LLAMA_FTYPE_MOSTLY_Q3_K_S},
    {"Q3_K_M", LLAMA_FTYPE_MOSTLY_Q3_K_M},   {"Q3_K_L", LLAMA_FTYPE_MOSTLY_Q3_K_L},
    {"IQ4_NL", LLAMA_FTYPE_MOSTLY_IQ4_NL},   {"IQ4_XS", LLAMA_FTYPE_MOSTLY_IQ4_XS},
    {"Q4_K", LLAMA_FTYPE_MOSTLY_Q4_K_M},     {"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S},
    {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M},   {"Q5_K", LLAMA_FTYPE_MOSTLY_Q5_K_M},
    {"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S},   {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M},
    {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K},       {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},
    {"F16", LLAMA_FTYPE_MOSTLY_F16},         {"BF16", LLAMA_FTYPE_MOSTLY_BF16},
    {"F32", LLAMA_FTYPE_ALL_F32},
};

TEST(TypeTable, StockMixesAreLlamaQuantizesPresetsWithTheirFileTypes) {
  std::set<std::string> seen;
  for (const StockMix& m : stock_mixes()) {
    ASSERT_TRUE(kFtypes.count(m.name)) << m.name;
    EXPECT_EQ(m.ftype, kFtypes.at(m.name)) << m.name;
    seen.insert(m.name);
  }
  EXPECT_EQ(seen.size(), kFtypes.size());
  // Two names for one file type: exactly one is the alias of the other.
  std::map<int, std::vector<StockMix>> by_ftype;
  for (const StockMix& m : stock_mixes()) by_ftype[m.ftype].push_back(m);
  for (const auto& [ftype, mixes] : by_ftype) {
    int aliases = 0;
    for (const StockMix& m : mixes) {
      if (m.alias_of.empty()) continue;
      ++aliases;
      ASSERT_TRUE(find_stock_mix(m.alias_of)) << m.name;
      EXPECT_EQ(find_stock_mix(m.alias_of)->ftype, ftype) << m.name;
      EXPECT_TRUE(find_stock_mix(m.alias_of)->alias_of.empty()) << m.name;
    }
    EXPECT_EQ(aliases, static_cast<int>(mixes.size()) - 1) << "file type " << ftype;
  }
  ASSERT_TRUE(find_stock_mix("q4_k_m"));
  EXPECT_EQ(find_stock_mix("q4_k_m")->name, "Q4_K_M");
  EXPECT_FALSE(find_stock_mix("Q4_K_X"));
}

TEST(TypeTable, MostlyFileTypesAndTheLadder) {
  EXPECT_EQ(type_by_name("q4_K").mostly_ftype, LLAMA_FTYPE_MOSTLY_Q4_K_M);
  EXPECT_EQ(type_by_name("q3_K").mostly_ftype, LLAMA_FTYPE_MOSTLY_Q3_K_M);
  EXPECT_EQ(type_by_name("iq2_s").mostly_ftype, LLAMA_FTYPE_MOSTLY_IQ2_M);
  EXPECT_EQ(type_by_name("bf16").mostly_ftype, LLAMA_FTYPE_MOSTLY_BF16);
  EXPECT_EQ(type_by_name("q8_K").mostly_ftype, -1);
  double last_bpw = 0;
  for (const auto& name : k_ladder()) {  // strictly increasing bits per weight
    const double bpw = type_by_name(name).bits_per_weight();
    EXPECT_GT(bpw, last_bpw) << name;
    last_bpw = bpw;
  }
  int n_baseline = 0;
  for (const StockMix& m : stock_mixes()) n_baseline += m.size_baseline;
  EXPECT_EQ(n_baseline, 10);  // Q2_K .. Q8_0 without the imatrix-only and legacy mixes
}

}  // namespace
}  // namespace cb
