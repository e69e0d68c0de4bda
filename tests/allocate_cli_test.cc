// End to end: a synthetic journal on the real dense model -> `cerebellum allocate`
// -> `cerebellum build --recipe tensor_types.txt`: the built file has exactly the
// size the plan predicted, and fits the budget.
#include <chrono>
#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/io.h"
#include "cerebellum/inspect/inspect.h"
#include "cerebellum/measure/journal.h"
#include "cerebellum/recipe/recipe.h"
#include "test_paths.h"

namespace cb {
namespace {

std::string write_dense_journal(const std::string& dir) {
  const std::string model = test::model("cb-dense-12l-F16.gguf");
  JournalHeader h;
  h.model_path = model;
  h.model_sha256 = sha256_file(model);
  h.base_name = "Q4_K_M";
  h.base_types = stock_preset_types(model, "Q4_K_M");
  const std::string path = dir + "/measurements.jsonl";
  JournalWriter w(path, h);
  w.append(JournalBaseline{"en", "base", {}});
  const ModelInfo info = inspect_model(model);
  for (const auto& t : info.tensors) {
    if (!t.stock_quantizable || t.layer < 0) continue;
    JournalMeasurement m;
    m.domain = "en";
    m.unit = {t.name, "tensor", {t.name}};
    m.types = {{t.name, "q2_K"}};
    // Early layers and ffn_down hurt more: a shape the allocator should follow.
    m.delta_kld = (t.role == "ffn_down" ? 0.02 : 0.004) * (12 - t.layer) / 12.0;
    m.delta_kld_se = 0.0005;
    w.append(m);
  }
  return path;
}

TEST(AllocateCli, PlanSizeMatchesTheBuiltFileExactly) {
  const std::string dir = test::temp_dir("allocate_cli");
  const std::string model = test::model("cb-dense-12l-F16.gguf");
  const std::string journal = write_dense_journal(dir);
  const std::string cli = test::cli_path();
  // i-quants and legacy types as the default candidates price them (quantization-error
  // table computed from the source); a few forced so every family is exercised.
  write_file_atomic(dir + "/c.json", R"({"rules":[
      {"name":"blk\\.3\\.attn_v\\.weight","types":["iq4_xs"]},
      {"name":"blk\\.5\\.ffn_down\\.weight","types":["iq3_s"]},
      {"name":"blk\\.6\\.ffn_up\\.weight","types":["iq4_nl"]},
      {"name":"blk\\.1\\.attn_k\\.weight","types":["q5_0"]},
      {"name":"output\\.weight","types":["iq3_xxs"]}]})");
  auto r = test::run_command(fmt::format(
      "{} allocate --measurements {} --source {} --budget 7363136 --threads 2 --constraints {}/c.json "
      "--out {}/plan.json --tensor-types {}/tt.txt", cli, journal, model, dir, dir, dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto plan = nlohmann::json::parse(read_file(dir + "/plan.json"));
  EXPECT_EQ(plan["model_error"]["mse_source"], "table:uniform");
  EXPECT_EQ(plan["types"]["blk.3.attn_v.weight"], "iq4_xs");
  EXPECT_EQ(plan["types"]["blk.5.ffn_down.weight"], "iq3_s");
  EXPECT_EQ(plan["types"]["blk.6.ffn_up.weight"], "iq4_nl");
  EXPECT_EQ(plan["types"]["blk.1.attn_k.weight"], "q5_0");
  EXPECT_EQ(plan["types"]["output.weight"], "iq3_xxs");  // stock exempts output from its imatrix rule
  const int64_t size = plan["size_bytes"];
  EXPECT_LE(size, 7363136);
  EXPECT_TRUE(plan["baselines"].contains("skipped"));  // the rules exclude base types

  r = test::run_command(fmt::format("{} build --source {} --recipe {}/tt.txt --out {}/out.gguf --threads 2",
                                    cli, model, dir, dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(static_cast<int64_t>(std::filesystem::file_size(dir + "/out.gguf")), size);
  const ModelInfo built = inspect_model(dir + "/out.gguf");
  for (const auto& t : built.tensors) EXPECT_EQ(t.type, plan["types"][t.name]) << t.name;

  // Stock llama-quantize reads the same file and writes the same bytes.
  r = test::run_command(fmt::format("{} --tensor-type-file {}/tt.txt {} {}/stock.gguf Q4_K_M 2",
                                    test::stock_tool("llama-quantize"), dir, model, dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(static_cast<int64_t>(std::filesystem::file_size(dir + "/stock.gguf")), size);
  for (const auto& t : inspect_model(dir + "/stock.gguf").tensors) EXPECT_EQ(t.type, plan["types"][t.name]) << t.name;

  // Infeasible budget: exit code 5 and the smallest feasible size in the message.
  r = test::run_command(fmt::format("{} allocate --measurements {} --source {} --budget 1MB --out {}/p2.json",
                                    cli, journal, model, dir));
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_NE(r.output.find("smallest feasible file is"), std::string::npos) << r.output;

  // Transfer the recipe to the 5-layer stories model: rows of 64 fall back as stock does.
  r = test::run_command(fmt::format("{} transfer --recipe {}/tt.txt --from-layers 12 --to {} --out {}/t.txt",
                                    cli, dir, test::model("stories260K.gguf"), dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(read_file(dir + "/t.txt").find("^blk\\.4\\."), std::string::npos);
}

}  // namespace
}  // namespace cb

namespace cb {
namespace {

// Issue 15: a budget above F16 silently gave an all-F16 plan, and quantize
// found an infeasible budget only after the whole sweep.
TEST(AllocateCli, BudgetsOutsideTheFeasibleRangeAreRefusedWithTheRange) {
  const std::string dir = test::temp_dir("allocate_range");
  const std::string model = test::model("cb-dense-12l-F16.gguf");
  const std::string journal = write_dense_journal(dir);
  for (const char* budget : {"100GB", "1KB"}) {
    const auto r = test::run_command(fmt::format("{} allocate --measurements {} --source {} --budget {} --out {}/p.json",
                                                 test::cli_path(), journal, model, budget, dir));
    EXPECT_EQ(r.exit_code, 5) << r.output;
    EXPECT_NE(r.output.find("feasible budgets are"), std::string::npos) << r.output;
    EXPECT_FALSE(std::filesystem::exists(dir + "/p.json"));
  }
  for (const char* budget : {"100GB", "1KB"}) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = test::run_command(fmt::format("{} quantize --source {} --text {} --budget {} --out {}/q/o.gguf",
                                                 test::cli_path(), model, test::data("docs-en-calib.txt"), budget,
                                                 dir));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.exit_code, 5) << r.output;
    EXPECT_NE(r.output.find("feasible budgets are"), std::string::npos) << r.output;
    EXPECT_FALSE(std::filesystem::exists(dir + "/q")) << "nothing written";
    EXPECT_LT(s, 30.0) << "refused before measuring (a sweep takes minutes here)";
  }
}

// allocate --proxy (issue 14): no measurements, damage = elements x Δ relative
// MSE. It is the exact knapsack optimum of that objective, so no assignment
// within the budget scores lower on it: not stock's own Q3_K_M mix either.
TEST(AllocateCli, ProxyPlanIsTheWeightErrorOptimumAtTheBudget) {
  const std::string dir = test::temp_dir("allocate_proxy");
  const std::string model = test::model("cb-dense-12l-F16.gguf");
  const auto r = test::run_command(fmt::format(
      "{} allocate --proxy --source {} --budget Q3_K_M --threads 2 --write-quant-error {}/qe.json "
      "--out {}/plan.json --tensor-types {}/tt.txt", test::cli_path(), model, dir, dir, dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto plan = nlohmann::json::parse(read_file(dir + "/plan.json"));
  const auto table = nlohmann::json::parse(read_file(dir + "/qe.json")).at("rel_mse");
  EXPECT_EQ(plan.at("damage"), "weight_error_only");
  EXPECT_LE(plan.at("size_bytes").get<int64_t>(), plan.at("budget_bytes").get<int64_t>());
  const ModelInfo info = inspect_model(model);
  const auto stock = stock_preset_types(model, "Q3_K_M");
  double ours = 0, theirs = 0;
  int n_priced = 0, n_changed = 0;
  for (const auto& t : info.tensors) {
    const std::string mine = plan.at("types").at(t.name);
    if (!table.contains(t.name) || !table[t.name].contains(mine) || !table[t.name].contains(stock.at(t.name))) continue;
    ours += t.n_elements * table[t.name][mine].get<double>();
    theirs += t.n_elements * table[t.name][stock.at(t.name)].get<double>();
    ++n_priced;
    n_changed += mine != stock.at(t.name);
  }
  EXPECT_GE(n_priced, 80) << "the 84 matrices of cb-dense are priced";
  EXPECT_GT(n_changed, 0);
  EXPECT_LT(ours, theirs) << "weighted error of the proxy plan vs stock Q3_K_M at its bytes";
  // Without --measurements and without --proxy it is a usage error.
  const auto bad = test::run_command(fmt::format("{} allocate --source {} --budget Q3_K_M --out {}/p2.json",
                                                 test::cli_path(), model, dir));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--proxy"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace cb
