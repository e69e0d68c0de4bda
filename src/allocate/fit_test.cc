// --fit's pure parts: the spec grammar, llama.cpp's placement rule, and the
// per-pool solve (include/cerebellum/allocate/fit.h).
#include "cerebellum/allocate/fit.h"

#include <gtest/gtest.h>

#include "cerebellum/common/error.h"

namespace cb {
namespace {

TEST(FitSpec, DeviceOrPoolsAtAContext) {
  const FitSpec one = parse_fit_spec("16GiB@8192");
  EXPECT_EQ(one.pool_bytes.at("device"), int64_t{16} << 30);
  EXPECT_EQ(one.n_ctx_tokens, 8192);
  const FitSpec two = parse_fit_spec("gpu=24GiB,cpu=48GiB@8k");
  EXPECT_EQ(two.pool_bytes.at("gpu"), int64_t{24} << 30);
  EXPECT_EQ(two.pool_bytes.at("cpu"), int64_t{48} << 30);
  EXPECT_EQ(two.n_ctx_tokens, 8192);
  EXPECT_EQ(parse_fit_spec("gpu=6GiB@4096").pool_bytes.size(), 1u);
  for (const char* bad : {"16GiB", "@8192", "16GiB@", "16GiB@-5", "16GiB@8x", "tpu=1GiB@10", "gpu=1GiB,gpu=2GiB@10",
                          "gpu=@10", "16 parsecs@10", "16GiB@99999999999"}) {
    EXPECT_THROW(parse_fit_spec(bad), UsageError) << bad;
  }
}

ModelInfo four_layer_model() {
  ModelInfo m;
  m.n_layers = 4;
  for (const char* n : {"token_embd.weight", "output_norm.weight", "output.weight"}) m.tensors.push_back({.name = n});
  for (int l = 0; l < 4; ++l) {
    m.tensors.push_back({.name = "blk." + std::to_string(l) + ".attn_q.weight", .layer = l});
    m.tensors.push_back({.name = "blk." + std::to_string(l) + ".ffn_up_exps.weight", .layer = l});
  }
  return m;
}

TEST(FitPlacement, FollowsLlamaCppLayerRules) {
  const ModelInfo m = four_layer_model();
  DeploySettings s;
  s.n_gpu_layers = 2;  // the output layer and blk.3 (llama.cpp offloads the last layers)
  auto pool = place_tensors(m, s, /*have_gpu=*/true);
  EXPECT_EQ(pool.at("token_embd.weight"), "cpu");
  EXPECT_EQ(pool.at("output.weight"), "gpu");
  EXPECT_EQ(pool.at("blk.3.attn_q.weight"), "gpu");
  EXPECT_EQ(pool.at("blk.2.attn_q.weight"), "cpu");
  s.n_gpu_layers = 1;  // only the output layer
  EXPECT_EQ(place_tensors(m, s, true).at("blk.3.attn_q.weight"), "cpu");
  EXPECT_EQ(place_tensors(m, s, true).at("output.weight"), "gpu");
  s.n_gpu_layers = -1;
  s.cpu_tensor_regex = "\\.ffn_[a-z_]*_exps\\.";
  pool = place_tensors(m, s, true);
  EXPECT_EQ(pool.at("blk.0.attn_q.weight"), "gpu");
  EXPECT_EQ(pool.at("blk.0.ffn_up_exps.weight"), "cpu");
  for (const auto& [name, p] : place_tensors(m, s, /*have_gpu=*/false)) EXPECT_EQ(p, "cpu") << name;
}

// Two tensors per pool, each with a small/damaging and a large/clean option.
AllocationProblem two_by_two() {
  AllocationProblem p;
  for (const char* n : {"g1", "g2", "c1", "c2"}) {
    TensorCurve c;
    c.name = n;
    const double hurt = n[1] == '1' ? 0.5 : 0.1;  // the "1" tensors matter more
    c.candidates = {{"q2_K", 100, hurt, true}, {"q8_0", 300, 0.0, true}};
    p.tensors.push_back(c);
  }
  return p;
}

FitPlacement pools(std::optional<int64_t> gpu_cap, std::optional<int64_t> cpu_cap) {
  FitPlacement pl;
  pl.pools = {{.name = "gpu", .capacity_bytes = gpu_cap, .context_bytes = 50, .compute_bytes = 30, .margin_bytes = 20},
              {.name = "cpu", .capacity_bytes = cpu_cap}};
  pl.pool_of = {{"g1", "gpu"}, {"g2", "gpu"}, {"c1", "cpu"}, {"c2", "cpu"}};
  return pl;
}

TEST(FitSolve, EachPoolIsItsOwnKnapsack) {
  const AllocationProblem p = two_by_two();
  // GPU: 500 - 100 reserved = 400 of weights: one q8_0 (the tensor that matters) + one q2_K.
  // CPU: 400: the same trade there, whatever the GPU had left over.
  const FitSolution s = solve_fit(p, {pools(500, 400)}, 1000);
  const auto types = s.plan.types();
  EXPECT_EQ(types.at("g1"), "q8_0");
  EXPECT_EQ(types.at("g2"), "q2_K");
  EXPECT_EQ(types.at("c1"), "q8_0");
  EXPECT_EQ(types.at("c2"), "q2_K");
  EXPECT_EQ(s.weight_bytes.at("gpu"), 400);
  EXPECT_EQ(s.plan.size_bytes, 1000 + 800);
  // An unbounded pool's tensors take their least-damage type.
  EXPECT_EQ(solve_fit(p, {pools(500, std::nullopt)}, 0).plan.types().at("c2"), "q8_0");
}

TEST(FitSolve, BestPlacementWinsAndNothingFittingIsABudgetError) {
  const AllocationProblem p = two_by_two();
  const FitSolution s = solve_fit(p, {pools(250, 400), pools(500, 400)}, 0);  // the first cannot hold 2x100 + 100
  EXPECT_EQ(s.placement_index, 1u);
  EXPECT_EQ(s.n_infeasible, 1);
  try {
    solve_fit(p, {pools(250, 400)}, 0);
    FAIL() << "expected a BudgetError";
  } catch (const BudgetError& e) {
    EXPECT_NE(std::string(e.what()).find("gpu"), std::string::npos) << e.what();
  }
}

// A tied output layer (no output.weight): llama.cpp loads token_embd again on
// the output layer's device; the copy's bytes count there.
TEST(FitPlacement, TiedOutputCopiesTokenEmbdToTheOutputDevice) {
  ModelInfo m = four_layer_model();
  std::erase_if(m.tensors, [](const TensorInfo& t) { return t.name == "output.weight"; });
  DeploySettings s;
  s.n_gpu_layers = 1;
  const auto pool_of = place_tensors(m, s, true);
  const auto copies = tied_output_copies(m, pool_of, s, true);
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies.at("token_embd.weight"), "gpu");
  s.n_gpu_layers = 0;  // the output layer on the CPU too: one buffer, no copy
  EXPECT_TRUE(tied_output_copies(m, place_tensors(m, s, true), s, true).empty());
  EXPECT_TRUE(tied_output_copies(m, place_tensors(m, s, false), s, false).empty());
  s.n_gpu_layers = -1;
  s.cpu_tensor_regex = "token_embd";  // -ot sees the duplicate under token_embd's name
  EXPECT_TRUE(tied_output_copies(m, place_tensors(m, s, true), s, true).empty());
  EXPECT_TRUE(tied_output_copies(four_layer_model(), place_tensors(four_layer_model(), s, true), s, true).empty());
}

TEST(FitSolve, TiedCopyIsChosenWhereItIsBoundedAndCountsInBothPools) {
  const AllocationProblem p = two_by_two();
  FitPlacement pl = pools(500, std::nullopt);
  pl.copy_in = {{"c1", "gpu"}};  // c1 lives on the CPU and is copied to the GPU
  // GPU: 400 of weights for g1, g2 and the copy of c1; c1 at q8_0 leaves 100
  // for two tensors of at least 100 each, so every one takes q2_K.
  const FitSolution s = solve_fit(p, {pl}, 0);
  const auto types = s.plan.types();
  EXPECT_EQ(types.at("g1"), "q2_K");
  EXPECT_EQ(types.at("g2"), "q2_K");
  EXPECT_EQ(types.at("c1"), "q2_K");
  EXPECT_EQ(types.at("c2"), "q8_0");  // the unbounded pool's own tensor: least damage
  EXPECT_EQ(s.weight_bytes.at("gpu"), 300);
  EXPECT_EQ(s.weight_bytes.at("cpu"), 100 + 300);
  // Both bounded (GPU 500 of weights, CPU 300): c1 at q8_0 would leave the CPU
  // nothing for c2, so c1 takes q2_K and the GPU's room goes to g1. Solving
  // the GPU first and the CPU after would have picked c1 = q8_0 (a tie with
  // g1 there) and found no room for c2.
  pl = pools(600, 300);
  pl.copy_in = {{"c1", "gpu"}};
  const auto both = solve_fit(p, {pl}, 0).plan.types();
  const FitSolution b = solve_fit(p, {pl}, 0);
  EXPECT_EQ(both.at("c1"), "q2_K");
  EXPECT_EQ(both.at("g1"), "q8_0");
  EXPECT_EQ(both.at("g2"), "q2_K");
  EXPECT_EQ(both.at("c2"), "q2_K");
  EXPECT_EQ(b.weight_bytes.at("gpu"), 500);
  EXPECT_EQ(b.weight_bytes.at("cpu"), 200);
}

}  // namespace
}  // namespace cb
