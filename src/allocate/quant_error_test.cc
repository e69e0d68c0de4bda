// The damage model with a quantization-error table: parsing, candidate types
// (table vs proxy ladder, imatrix-only types) and extrapolation through x_i(t).
#include <cmath>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/quant_types.h"
#include "test_paths.h"

namespace cb {
namespace {

const ModelInfo& dense() {
  static const ModelInfo m = inspect_model(test::model("cb-dense-12l-F16.gguf"));
  return m;
}

// A journal measuring q2_K on blk.*.attn_v with delta = 10 · (x(q2_K) − x(q4_K)).
Journal journal_with(const QuantErrorTable& table) {
  Journal j;
  j.header.model_sha256 = "synthetic";
  for (const auto& t : dense().tensors) {
    if (t.stock_quantizable) j.header.base_types[t.name] = "q4_K";
  }
  for (const auto& t : dense().tensors) {
    if (t.role != "attn_v") continue;
    JournalMeasurement m;
    m.domain = "en";
    m.unit = {t.name, "tensor", {t.name}};
    m.types = {{t.name, "q2_K"}};
    m.delta_kld = 10 * (*table.find(t.name, "q2_K") - *table.find(t.name, "q4_K"));
    m.delta_kld_se = 1e-9;
    j.measurements.push_back(m);
  }
  return j;
}

// Per tensor, a different curve: x(t) = k_i · 2^(−2·bpw) with k_i = 1 + layer/4,
// and iq4_xs deliberately worse than its bpw says.
QuantErrorTable synthetic_table() {
  QuantErrorTable t;
  for (const auto& ti : dense().tensors) {
    if (!ti.stock_quantizable) continue;
    const double k = 1.0 + std::max(0, ti.layer) / 4.0;
    for (const auto& type : Constraints{}.allowed_types) {
      t.rel_mse[ti.name][type] = k * std::pow(2.0, -2.0 * type_by_name(type).bits_per_weight());
    }
    t.rel_mse[ti.name]["iq4_xs"] *= 3;
  }
  return t;
}

const CandidateType* find(const TensorCurve& c, const std::string& type) {
  for (const auto& cand : c.candidates) {
    if (cand.type == type) return &cand;
  }
  return nullptr;
}

TEST(AllocateQuantError, ParsesBothFormsAndRejectsBadValues) {
  const auto full = quant_error_from_json(
      nlohmann::json::parse(R"({"schema":"cerebellum.qerror/1","weighting":"imatrix",
                               "rel_mse":{"a.weight":{"Q4_K":0.005,"iq4_xs":0.006}}})"), "t");
  EXPECT_EQ(full.weighting, "imatrix");
  EXPECT_DOUBLE_EQ(*full.find("a.weight", "q4_K"), 0.005);  // canonical type names
  EXPECT_FALSE(full.find("a.weight", "q2_K"));
  EXPECT_FALSE(full.find("b.weight", "q4_K"));
  const auto bare = quant_error_from_json(nlohmann::json::parse(R"({"a.weight":{"q8_0":3e-5}})"), "t");
  EXPECT_EQ(bare.weighting, "uniform");
  EXPECT_DOUBLE_EQ(*bare.find("a.weight", "q8_0"), 3e-5);
  EXPECT_THROW(quant_error_from_json(nlohmann::json::parse(R"({"a":{"q4_K":-1}})"), "t"), RecipeError);
  EXPECT_THROW(quant_error_from_json(nlohmann::json::parse(R"({"a":{"q4_K":"x"}})"), "t"), RecipeError);
  EXPECT_THROW(quant_error_from_json(nlohmann::json::parse(R"({"a":{"q9_Z":0.1}})"), "t"), RecipeError);
  EXPECT_THROW(quant_error_from_json(nlohmann::json::parse(R"([1,2])"), "t"), InputError);
  EXPECT_THROW(quant_error_from_json(nlohmann::json::parse(R"({"a":[0.1]})"), "t"), InputError);
  EXPECT_THROW(quant_error_from_json(nlohmann::json::parse(R"({"schema":"other/1","rel_mse":{}})"), "t"),
               MismatchError);
}

TEST(AllocateQuantError, TableShapesUnmeasuredTypesPerTensor) {
  const QuantErrorTable table = synthetic_table();
  const Journal j = journal_with(table);
  const AllocationProblem p = build_problem(dense(), j, {{"en", 1.0}}, Constraints{}, &table);
  EXPECT_EQ(p.model_error.mse_source, "table:uniform");
  EXPECT_LT(p.model_error.loto_mae_kld + p.model_error.loo_tensor_mae_kld, 1e-12);  // exact scale 10
  const nlohmann::json curves = curves_to_json(p);
  ASSERT_EQ(curves["tensors"].size(), p.tensors.size());
  EXPECT_EQ(curves["mse_source"], "table:uniform");
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const auto& jc = curves["tensors"][i]["candidates"];
    ASSERT_EQ(jc.size(), p.tensors[i].candidates.size());
    for (size_t k = 0; k < jc.size(); ++k) EXPECT_EQ(jc[k]["damage_kld"], p.tensors[i].candidates[k].damage_kld);
  }
  for (const auto& c : p.tensors) {
    if (c.role != "attn_v") continue;
    EXPECT_NEAR(c.scale, 10.0, 1e-9) << c.name;
    for (const char* type : {"iq4_xs", "q5_K", "q3_K", "f16"}) {
      const CandidateType* cand = find(c, type);
      ASSERT_NE(cand, nullptr) << c.name << " " << type;
      EXPECT_FALSE(cand->measured);
      EXPECT_NEAR(cand->damage_kld, 10 * (*table.find(c.name, type) - *table.find(c.name, "q4_K")), 1e-12);
    }
  }
}

TEST(AllocateQuantError, ProxyPricesOnlyTheLadderAndImatrixTypesNeedCoverage) {
  const QuantErrorTable table = synthetic_table();
  const Journal j = journal_with(table);
  const AllocationProblem proxy = build_problem(dense(), j, {{"en", 1.0}}, Constraints{}, nullptr);
  for (const auto& c : proxy.tensors) {
    for (const auto& cand : c.candidates) {
      const bool ladder = std::find(k_ladder().begin(), k_ladder().end(), cand.type) != k_ladder().end();
      EXPECT_TRUE(ladder || cand.type == c.source_type) << c.name << " " << cand.type;
    }
  }
  const AllocationProblem plain = build_problem(dense(), j, {{"en", 1.0}}, Constraints{}, &table);
  DamageOptions with_im;
  with_im.imatrix_tensors = {"blk.3.attn_q.weight"};
  const AllocationProblem im = build_problem(dense(), j, {{"en", 1.0}}, Constraints{}, &table, with_im);
  for (size_t i = 0; i < plain.tensors.size(); ++i) {
    const TensorCurve& c = plain.tensors[i];
    if (!c.stock_quantizable) continue;
    EXPECT_NE(find(c, "iq4_xs"), nullptr) << c.name;
    EXPECT_NE(find(c, "iq3_s"), nullptr) << c.name;
    // Stock exempts token_embd/output from its imatrix rule; ggml's own rule (iq2_xs) still holds.
    const bool exempt = c.name == "token_embd.weight" || c.name == "output.weight";
    EXPECT_EQ(find(c, "iq3_xxs") != nullptr, exempt) << c.name;
    EXPECT_EQ(find(c, "iq2_xs"), nullptr) << c.name;
    const bool covered = c.name == "blk.3.attn_q.weight";
    EXPECT_EQ(find(im.tensors[i], "iq2_xs") != nullptr, covered) << c.name;
    EXPECT_EQ(find(im.tensors[i], "iq3_xxs") != nullptr, covered || exempt) << c.name;
  }
}

}  // namespace
}  // namespace cb
