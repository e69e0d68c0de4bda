#include "cerebellum/allocate/allocate.h"

#include <cmath>
#include <random>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/error.h"
#include "cerebellum/common/quant_types.h"
#include "test_paths.h"

namespace cb {
namespace {

const ModelInfo& dense() {
  static const ModelInfo m = inspect_model(test::model("cb-dense-12l-F16.gguf"));
  return m;
}

double proxy(const std::string& type) { return std::pow(2.0, -2.0 * type_by_name(type).bits_per_weight()); }

// A synthetic journal whose deltas follow a known per-tensor scale exactly, so
// the model's leave-one-type-out error must be ~0 and the curves are known.
Journal synthetic_journal(const ModelInfo& m, std::map<std::string, double>* true_scale) {
  Journal j;
  j.header.model_sha256 = "synthetic";
  j.header.base_name = "Q4_K_M";
  for (const auto& t : m.tensors) {
    if (t.stock_quantizable) j.header.base_types[t.name] = "q4_K";
  }
  j.baselines.push_back({"en", "base", {}});
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> scale_d(50, 4000);
  for (const auto& t : m.tensors) {
    if (t.role != "ffn_down" && t.role != "attn_v" && t.role != "attn_q") continue;
    const double s = scale_d(rng) * (t.role == "ffn_down" ? 3 : 1);
    (*true_scale)[t.name] = s;
    for (const char* type : {"q2_K", "q3_K"}) {
      JournalMeasurement meas;
      meas.domain = "en";
      meas.unit = {t.name, "tensor", {t.name}};
      meas.types = {{t.name, type}};
      meas.delta_kld = s * (proxy(type) - proxy("q4_K"));
      meas.delta_kld_se = 1e-6;
      j.measurements.push_back(meas);
    }
  }
  return j;
}

AllocationProblem dense_problem(std::map<std::string, double>* scales = nullptr) {
  std::map<std::string, double> local;
  const Journal j = synthetic_journal(dense(), scales ? scales : &local);
  return build_problem(dense(), j, parse_objective("general", j.domains()), Constraints{}, nullptr);
}

TEST(AllocateSizes, F16FileIsHeaderPlusPaddedTensors) {
  const ModelInfo& m = dense();
  EXPECT_EQ(model_size_bytes(m, {}, m.data_offset_bytes), m.file_size_bytes);
  const TensorInfo& t = *m.find("blk.0.attn_q.weight");
  EXPECT_EQ(tensor_bytes_at(t, "q4_K", 32), 256 * 144);  // 256 rows x one 144-byte block
  EXPECT_EQ(tensor_bytes_at(t, "q2_K", 32), 256 * 84);
}

TEST(AllocateSizes, UnfittingTypesArePricedAtStockFallback) {
  const ModelInfo m = inspect_model(test::model("stories260K.gguf"));
  const TensorInfo& down = *m.find("blk.0.ffn_down.weight");  // rows of 172: nothing 32-block fits
  EXPECT_EQ(stock_effective_type(down, "q4_K"), "f16");
  EXPECT_EQ(tensor_bytes_at(down, "q4_K", 1), down.n_elements * 2);
  const TensorInfo& q = *m.find("blk.0.attn_q.weight");  // rows of 64
  EXPECT_EQ(stock_effective_type(q, "q4_K"), "q5_0");
  EXPECT_EQ(stock_effective_type(q, "q2_K"), "q4_0");
  EXPECT_EQ(stock_effective_type(*m.find("blk.0.attn_norm.weight"), "q4_K"), "f32");
}

TEST(AllocateBudget, ParsesUnits) {
  EXPECT_EQ(parse_budget_bytes("7.4MB", 0), 7400000);
  EXPECT_EQ(parse_budget_bytes("7400000", 0), 7400000);
  EXPECT_EQ(parse_budget_bytes("1MiB", 0), 1048576);
  EXPECT_EQ(parse_budget_bytes("4bpw", 1000), 500);
  EXPECT_THROW(parse_budget_bytes("7 parsecs", 0), UsageError);
  EXPECT_THROW(parse_budget_bytes("-3MB", 0), UsageError);
  // Issue 15: these wrapped to a negative budget and allocate exited 0.
  for (const char* huge : {"1e99", "inf", "9223372036854775808", "nan", "1e30bpw"}) {
    EXPECT_THROW(parse_budget_bytes(huge, 1000), UsageError) << huge;
  }
}

TEST(AllocateObjective, WeightsNormaliseAndCheckDomains) {
  auto w = parse_objective("wiki:0.4,code:0.6", {"code", "wiki"});
  EXPECT_DOUBLE_EQ(w["code"], 0.6);
  w = parse_objective("general", {"code", "en"});
  EXPECT_DOUBLE_EQ(w["en"], 0.5);
  EXPECT_THROW(parse_objective("math", {"code", "en"}), UsageError);
}

TEST(AllocateModel, RecoversScalesAndPredictsHeldOutTypes) {
  std::map<std::string, double> scales;
  const AllocationProblem p = dense_problem(&scales);
  EXPECT_EQ(p.model_error.n_points, static_cast<int>(2 * scales.size()));
  EXPECT_EQ(p.model_error.n_loto, p.model_error.n_points);
  EXPECT_LT(p.model_error.loto_mae_kld, 1e-9 * p.model_error.mean_abs_measured_kld + 1e-12);
  for (const auto& c : p.tensors) {
    if (!scales.count(c.name)) continue;
    EXPECT_NEAR(c.scale, scales[c.name], 1e-6 * scales[c.name]) << c.name;
    for (const auto& cand : c.candidates) {  // unmeasured q5_K/q6_K follow the same scale
      EXPECT_NEAR(cand.damage_kld, scales[c.name] * (proxy(cand.type) - proxy("q4_K")), 1e-9);
    }
  }
  // Unmeasured roles borrow the global median; same-role tensors are predicted from others.
  EXPECT_EQ(p.tensors[0].scale_from, "global");  // output.weight
  EXPECT_GT(p.model_error.n_loo_tensor, 0);
}

TEST(AllocateModel, NoiseBandClampsSmallDeltas) {
  std::map<std::string, double> scales;
  Journal j = synthetic_journal(dense(), &scales);
  for (auto& m : j.measurements) m.delta_kld_se = 2 * std::abs(m.delta_kld);  // all within z·se (z = 1)
  const AllocationProblem p = build_problem(dense(), j, parse_objective("en", j.domains()), Constraints{}, nullptr,
                                            {.noise = NoisePolicy::kClamp});
  EXPECT_EQ(p.model_error.n_noise_clamped, p.model_error.n_points);
  for (const auto& c : p.tensors) {
    for (const auto& cand : c.candidates) EXPECT_EQ(cand.damage_kld, 0.0);
  }
}

TEST(AllocatePlan, OptimumIsWithinBudgetAndBeatsTheGreedy) {
  const AllocationProblem p = dense_problem();
  const int64_t overhead = dense().data_offset_bytes;
  const Plan base = base_plan(p, overhead);
  for (int64_t budget : {6'300'000LL, 7'363'136LL, 8'000'000LL, 9'500'000LL}) {
    const Plan opt = allocate_plan(p, budget, overhead);
    EXPECT_LE(opt.size_bytes, budget);
    EXPECT_EQ(opt.size_bytes, model_size_bytes(dense(), opt.types(), overhead));
    EXPECT_TRUE(opt.solver.exact);
    EXPECT_LE(opt.solver.lower_bound, opt.predicted_delta_kld + 1e-12);
    const Plan greedy = greedy_original_plan(p, budget, overhead);
    if (greedy.size_bytes <= budget) {
      EXPECT_LE(opt.predicted_delta_kld, greedy.predicted_delta_kld + 1e-12) << budget;
    }
    if (budget >= base.size_bytes) EXPECT_LE(opt.predicted_delta_kld, 1e-12);
  }
}

TEST(AllocatePlan, InfeasibleBudgetNamesSmallestFile) {
  const AllocationProblem p = dense_problem();
  try {
    allocate_plan(p, 1'000'000, dense().data_offset_bytes);
    FAIL();
  } catch (const BudgetError& e) {
    EXPECT_NE(std::string(e.what()).find("smallest feasible file is"), std::string::npos);
  }
}

TEST(AllocateConstraints, FloorsNeverQuantizeAndRouters) {
  std::map<std::string, double> scales;
  const Journal j = synthetic_journal(dense(), &scales);
  const Constraints c = constraints_from_json(
      nlohmann::json::parse(R"({"never_quantize":["output\\.weight"],
        "rules":[{"role":"ffn_.*","min_type":"q4_K"},{"name":"token_embd\\.weight","types":["q6_K","q8_0"]}],
        "allowed_types":["Q2_K","q4_K","q6_K","q8_0"]})"),
      "test");
  const AllocationProblem p = build_problem(dense(), j, {{"en", 1.0}}, c, nullptr);
  for (const auto& t : p.tensors) {
    for (const auto& cand : t.candidates) {
      if (t.role.rfind("ffn_", 0) == 0) EXPECT_GE(type_by_name(cand.type).bits_per_weight(), 4.5);
      if (t.name == "output.weight") EXPECT_EQ(cand.type, "f16");
      if (t.name == "token_embd.weight") EXPECT_TRUE(cand.type == "q6_K" || cand.type == "q8_0");
    }
  }
  // Routers keep their source type unless measured (dense model has none: a MoE check).
  const ModelInfo moe = inspect_model(test::model("cb-hybrid-moe-F16.gguf"));
  Journal mj;
  mj.header.model_sha256 = "x";
  const AllocationProblem mp = build_problem(moe, mj, {{"en", 1.0}}, Constraints{}, nullptr);
  int routers = 0;
  for (const auto& t : mp.tensors) {
    if (t.role != "router") continue;
    ++routers;
    ASSERT_EQ(t.candidates.size(), 1u);
    EXPECT_EQ(t.candidates[0].type, t.source_type);
  }
  EXPECT_GT(routers, 0);
  EXPECT_THROW(constraints_from_json(nlohmann::json::parse(R"({"rules":[{"min_type":"q9_Z"}]})"), "t"),
               RecipeError);
}

TEST(AllocatePlan, TensorTypesAreAnchoredAndSkipStockRefused) {
  const AllocationProblem p = dense_problem();
  const Plan plan = allocate_plan(p, 7'363'136, dense().data_offset_bytes);
  const std::string text = tensor_types_text(plan, "test");
  EXPECT_NE(text.find("^output\\.weight$="), std::string::npos);
  EXPECT_EQ(text.find("attn_norm"), std::string::npos);
  const auto lines = parse_recipe_text(text, "t").rules;
  EXPECT_EQ(lines.size(), 12u * 7 + 2);
  const nlohmann::json j = plan_to_json(plan, p);
  EXPECT_EQ(j["schema"], kPlanSchema);
  EXPECT_EQ(j["types"].size(), dense().tensors.size());
  EXPECT_TRUE(j["model_error"]["loto"].contains("mae_kld"));
}

TEST(AllocateTransfer, ProportionalDepthPreservesRoles) {
  ModelInfo target;
  target.n_layers = 6;
  for (int l = 0; l < 6; ++l) {
    for (const char* r : {"ffn_down", "attn_q"}) {
      TensorInfo t;
      t.name = fmt::format("blk.{}.{}.weight", l, r);
      t.shape = {256, 256};
      t.n_elements = 65536;
      t.stock_quantizable = true;
      t.type = "f16";
      target.tensors.push_back(t);
    }
  }
  std::vector<RecipeRule> recipe;
  for (int l = 0; l < 12; ++l) {
    recipe.push_back({fmt::format("^blk\\.{}\\.ffn_down\\.weight$", l), l % 2 ? "q6_K" : "q2_K"});
    recipe.push_back({fmt::format("blk.{}.attn_q.weight", l), "q4_K"});
  }
  recipe.push_back({"output.weight", "q8_0"});  // target has no output: dropped, noted
  const TransferResult r = transfer_recipe(recipe, 12, target);
  EXPECT_FALSE(r.verbatim);
  ASSERT_EQ(r.lines.size(), 12u);
  // target layer j <- source layer round(2j): even source layers, all q2_K.
  EXPECT_EQ(r.lines[0].pattern, "^blk\\.0\\.ffn_down\\.weight$");
  EXPECT_EQ(r.lines[2].pattern, "^blk\\.1\\.ffn_down\\.weight$");
  EXPECT_EQ(r.lines[2].type, "q2_K");
  EXPECT_EQ(r.lines[3].pattern, "blk.1.attn_q.weight");
  EXPECT_EQ(r.notes.size(), 1u);
  // Same depth: verbatim.
  const TransferResult same = transfer_recipe({{"blk.3.attn_q.weight", "q5_K"}}, 6, target);
  EXPECT_TRUE(same.verbatim);
  EXPECT_EQ(same.lines[0].pattern, "blk.3.attn_q.weight");
}

}  // namespace
}  // namespace cb
