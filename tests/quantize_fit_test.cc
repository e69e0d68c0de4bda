// quantize --fit on the CPU engine (issue 17): the built file is loaded by
// llama.cpp at the deployment's settings before the gate, the baseline is the
// largest stock mix that fits the same deployment, the card says what fits.
#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cerebellum/build/build.h"
#include "cerebellum/common/io.h"
#include "cerebellum/common/quant_types.h"
#include "test_paths.h"

namespace cb {
namespace {

using json = nlohmann::json;

TEST(QuantizeFit, BuiltFileIsVerifiedAndComparedWithTheStockMixThatFits) {
  const std::string dir = test::temp_dir("quantize-fit");
  const std::string model = test::model("cb-dense-12l-F16.gguf");
  const auto r = test::run_command(fmt::format(
      "{} quantize --source {} --fit 36MiB@2048 --margin 0 --no-measure --search-evals 0 --correction-rounds 0 "
      "--text {} --eval-chunks 8 --out {}/out.gguf --run-dir {}/run --force --card 2>&1",
      test::cli_path(), model, test::data("docs-en-calib.txt"), dir, dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json fit = json::parse(read_file(dir + "/run/fit.json"));
  EXPECT_EQ(fit["schema"], "cerebellum.fit/1");
  const json& pool = fit["verified"]["pools"][0];
  EXPECT_EQ(pool["pool"], "cpu");
  EXPECT_TRUE(pool["fits"].get<bool>());
  const double measured = pool["measured_bytes"].get<double>(), projected = pool["projected_bytes"].get<double>();
  EXPECT_NEAR(projected, measured, 0.01 * measured);
  EXPECT_LE(measured, 36.0 * 1048576);
  EXPECT_GE(fit["projection"]["pools"][0]["weight_budget_used"].get<double>(), 0.97);
  // The baseline's weights fit the same 36 MiB; no larger k-quant mix's do
  // (file bytes less the metadata, which is ours' file less its weights).
  const json q = json::parse(read_file(dir + "/run/quantize.json"));
  const std::string baseline = q["baseline_preset"];
  const int64_t weight_budget = fit["projection"]["pools"][0]["weight_budget_bytes"];
  const int64_t metadata = q["ours"]["size_bytes"].get<int64_t>() -
                           fit["projection"]["pools"][0]["weight_bytes"].get<int64_t>();
  const int64_t base_bytes = q["baseline"]["size_bytes"];
  EXPECT_LE(base_bytes - metadata, weight_budget) << baseline;
  for (const StockMix& mix : stock_mixes()) {
    if (!mix.size_baseline) continue;
    const int64_t s = stock_preset_size_bytes(model, mix.name, "");
    if (s > base_bytes) EXPECT_GT(s - metadata, weight_budget) << mix.name;
  }
  EXPECT_NE(q["fit_verified"], nullptr);
  const std::string card = read_file(dir + "/run/CARD.md");
  EXPECT_NE(card.find("**Fits 36.00 MiB of cpu at 2048 tokens of context**"), std::string::npos) << card;
  EXPECT_NE(card.find("| 2048 | CPU |"), std::string::npos);
}

TEST(QuantizeFit, ImpossibleFitIsRefusedBeforeTheSweep) {
  const std::string dir = test::temp_dir("quantize-fit-bad");
  const auto r = test::run_command(fmt::format(
      "{} quantize --source {} --fit 30MiB@2048 --margin 0 --text {} --out {}/out.gguf 2>&1", test::cli_path(),
      test::model("cb-dense-12l-F16.gguf"), test::data("docs-en-calib.txt"), dir));
  EXPECT_EQ(r.exit_code, 5) << r.output;  // BudgetError
  EXPECT_NE(r.output.find("fits at most"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/out.run")) << "nothing half-written";
}

}  // namespace
}  // namespace cb
