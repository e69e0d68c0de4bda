// --fit on the CPU engine (issue 17): the projection of a plan equals llama.cpp's
// own breakdown of the built file with a real context, within 1%; impossible
// fits name what would fit.
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cerebellum/allocate/constraints.h"
#include "cerebellum/allocate/plan_for.h"
#include "cerebellum/build/build.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "test_paths.h"

namespace cb {
namespace {

struct Built {
  Allocation allocation;
  std::string path;
};

Built fit_and_build(const std::string& model_name, const std::string& spec, const std::string& tag) {
  const ModelInfo model = inspect_model(test::model(model_name));
  AllocateOptions o;
  o.fit.spec = spec;
  o.fit.margin = "0";
  o.weight_error_only = true;
  o.greedy_baseline = false;
  Built b{plan_for(weight_error_journal(model, "Q4_K_M"), model, o), test::temp_dir(tag) + "/fit.gguf"};
  BuildOptions bo;
  bo.source = model.path;
  bo.source_model = &model;
  bo.out = b.path;
  for (const auto& [name, type] : b.allocation.plan.types()) bo.recipe.rules.push_back({name, type, 0});
  const BuildReport r = build_model(bo);
  EXPECT_EQ(r.output_size_bytes, b.allocation.plan.size_bytes);
  return b;
}

void expect_projection_holds(const std::string& model_name, const std::string& spec) {
  const Built b = fit_and_build(model_name, spec, "fit-" + model_name);
  ASSERT_TRUE(b.allocation.fit);
  const FitReport& fit = *b.allocation.fit;
  ASSERT_EQ(fit.placement.pools.size(), 1u);  // the CPU engine: host memory is the device
  const FitPool& pool = fit.placement.pools.front();
  const int64_t budget = pool.weight_budget_bytes() + pool.fixed_bytes;
  const int64_t weights = fit.solution.weight_bytes.at("cpu");
  EXPECT_LE(weights, budget);
  EXPECT_GE(static_cast<double>(weights), 0.97 * static_cast<double>(budget)) << "the weight budget is spent";
  const FitCheck check = verify_fit(b.path, fit, {1024, 2048});
  ASSERT_EQ(check.pools.size(), 1u);
  const FitCheck::Pool& p = check.pools.front();
  // The 1%: llama.cpp counts the mapped file range, we count padded tensors.
  EXPECT_NEAR(static_cast<double>(p.projected_bytes), static_cast<double>(p.measured_bytes()),
              0.01 * static_cast<double>(p.measured_bytes()))
      << model_name << ": projected " << p.projected_bytes << ", llama.cpp " << p.measured_bytes();
  EXPECT_EQ(p.context_bytes, pool.context_bytes);  // KV/state does not depend on the weights' types
  EXPECT_NEAR(static_cast<double>(p.compute_bytes), static_cast<double>(pool.compute_bytes),
              0.01 * static_cast<double>(p.compute_bytes));
  EXPECT_TRUE(check.fits());
  ASSERT_EQ(check.by_context.size(), 2u);
  EXPECT_GT(check.by_context.at(1024).at("cpu"), p.model_bytes);
  EXPECT_EQ(check.by_context.at(2048).at("cpu"), p.measured_bytes());  // the fit's own context, loaded again
  std::filesystem::remove(b.path);
}

TEST(AllocateFit, DenseProjectionEqualsLlamaCppBreakdown) {
  expect_projection_holds("cb-dense-12l-F16.gguf", "40MiB@2048");
}

TEST(AllocateFit, HybridMoeProjectionEqualsLlamaCppBreakdown) {
  expect_projection_holds("cb-hybrid-moe-F16.gguf", "50MiB@2048");
}

TEST(AllocateFit, ImpossibleFitNamesTheLargestContextAndTheCard) {
  const std::string dir = test::temp_dir("fit-cli");
  const auto r = test::run_command(fmt::format(
      "{} allocate --proxy --quant-error none --source {} --fit 60MiB@8192 --margin 0 --out {}/plan.json 2>&1",
      test::cli_path(), test::model("cb-dense-12l-F16.gguf"), dir));
  EXPECT_EQ(r.exit_code, static_cast<int>(ExitCode::kBudget)) << r.output;
  EXPECT_NE(r.output.find("fits at most"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("needs at least"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/plan.json"));
  const auto gpu = test::run_command(fmt::format(
      "{} allocate --proxy --quant-error none --source {} --fit gpu=1GiB@512 --out {}/plan.json 2>&1",
      test::cli_path(), test::model("cb-dense-12l-F16.gguf"), dir));
  EXPECT_EQ(gpu.exit_code, static_cast<int>(ExitCode::kUsage)) << gpu.output;  // a CPU-only engine
}

// --min-decode-speed under a one-pool --fit: the speed solve takes the fit's
// budget (a floor that does not bind gives the fit's own plan), and two bounded
// pools are refused before any work.
TEST(AllocateFit, SpeedFloorPlansWithinTheFit) {
  const ModelInfo model = inspect_model(test::model("cb-dense-12l-F16.gguf"));
  const std::string dir = test::temp_dir("fit-speed");
  ::setenv("CEREBELLUM_CACHE", dir.c_str(), 1);  // the table measured here, not a cached one
  Constraints c;
  c.allowed_types = {"q3_K", "q4_K", "q6_K", "q8_0"};  // four uniform mixes to time
  write_file_atomic(dir + "/constraints.json", to_json(c).dump());
  AllocateOptions o;
  o.fit.spec = "40MiB@2048";
  o.fit.margin = "0";
  o.weight_error_only = true;
  o.greedy_baseline = false;
  o.constraints = dir + "/constraints.json";
  o.n_threads = 2;
  const Journal j = weight_error_journal(model, "Q4_K_M");
  const Allocation fit_only = plan_for(j, model, o);
  o.min_decode_tokens_per_s = 1;  // far below any mix's speed
  const Allocation floored = plan_for(j, model, o);
  ::unsetenv("CEREBELLUM_CACHE");
  ASSERT_TRUE(floored.fit && floored.speed);
  EXPECT_EQ(floored.speed_table.tg_tokens_per_s.size(), 4u);
  EXPECT_EQ(floored.budget_bytes, fit_only.budget_bytes);
  EXPECT_LE(floored.plan.size_bytes, floored.budget_bytes);
  EXPECT_GE(floored.speed->predicted_tokens_per_s, 1.0);
  EXPECT_NEAR(floored.plan.predicted_delta_kld, fit_only.plan.predicted_delta_kld,
              1e-9 + 1e-9 * std::abs(fit_only.plan.predicted_delta_kld));
  o.fit.spec = "gpu=1GiB,cpu=2GiB@2048";
  EXPECT_THROW(plan_for(j, model, o), UsageError);
}

}  // namespace
}  // namespace cb
