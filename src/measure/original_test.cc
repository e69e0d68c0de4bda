#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/measure/original.h"
#include "test_paths.h"

namespace cb::measure {
namespace {

using nlohmann::json;

void expect_same_tests(const json& a, const json& b) {
  std::map<std::string, double> ta, tb;
  for (const auto& [k, t] : a["tests"].items()) ta[t["gguf_tensor"]] = t["ppl"].get<double>();
  for (const auto& [k, t] : b["tests"].items()) tb[t["gguf_tensor"]] = t["ppl"].get<double>();
  ASSERT_EQ(ta.size(), tb.size());
  for (const auto& [name, ppl] : ta) EXPECT_NEAR(tb.at(name), ppl, 1e-4) << name;
}

TEST(MeasureOriginal, SeedFilesRoundTrip) {
  for (const char* m : {"qwen36-27b", "gemma4-e4b"}) {
    const json orig = json::parse(read_file(
        test::data(std::string("seed-cerebellum/model-data/") + m + "/ablation_results.json")));
    const Journal j = import_original(orig);
    EXPECT_TRUE(is_imported(j));
    ASSERT_EQ(j.baselines.size(), 1u);
    EXPECT_EQ(j.measurements.size(), orig["tests"].size());
    // Through the journal's own text form, as the CLI writes it.
    std::string text = to_json(j.header).dump() + "\n";
    for (const auto& b : j.baselines) text += to_json(b).dump() + "\n";
    for (const auto& x : j.measurements) text += to_json(x).dump() + "\n";
    const json back = export_original(parse_journal(text, "mem"));
    EXPECT_NEAR(back["baseline_ppl"].get<double>(), orig["baseline_ppl"].get<double>(), 1e-9);
    expect_same_tests(orig, back);
  }
}

TEST(MeasureOriginal, MultiDomainRoundTrip) {
  const json orig = json::parse(R"({"baseline_ppl":{"en":10.0,"code":4.0},"base_type":"Q4_K_M",
    "ablate_type":"Q2_K","tests":{
      "attn_v":{"gguf_tensor":"blk\\.\\d+\\.attn_v\\.weight","tensor_count":2,
                "ppl":{"en":10.5,"code":4.2}},
      "blk_1_ffn_up":{"gguf_tensor":"blk.1.ffn_up.weight","ppl":{"en":10.1,"code":4.05}},
      "broken":{"gguf_tensor":"x","error":"ppl_failed"}}})");
  const Journal j = import_original(orig);
  EXPECT_EQ(j.baselines.size(), 2u);
  EXPECT_EQ(j.measurements.size(), 4u);
  EXPECT_EQ(j.header.base_name, "Q4_K_M");
  for (const auto& m : j.measurements) EXPECT_EQ(m.types.begin()->second, "q2_K");
  const json back = export_original(j);
  EXPECT_EQ(back["baseline_ppl"]["code"].get<double>(), 4.0);
  EXPECT_EQ(back["ablate_type"], "q2_K");
  EXPECT_NEAR(back["tests"]["blk_1_ffn_up"]["ppl"]["code"].get<double>(), 4.05, 1e-9);
  EXPECT_NEAR(back["tests"]["blk_1_ffn_up"]["delta_pct"]["en"].get<double>(), 1.0, 1e-9);
}

TEST(MeasureOriginal, RejectsMalformed) {
  EXPECT_THROW(import_original(json::parse(R"({"tests":{}})")), InputError);
  EXPECT_THROW(import_original(json::parse(R"({"baseline_ppl":"x","tests":{}})")), InputError);
  EXPECT_THROW(export_original(Journal{}), InputError);
}

}  // namespace
}  // namespace cb::measure
