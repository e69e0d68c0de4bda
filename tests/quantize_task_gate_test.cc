// The task gate (issue 14): `quantize --bench code-identifiers` scores ours
// and the baseline per question and does not ship a build that is
// significantly worse on the task (paired exact McNemar). A deliberately bad
// plan (every block matrix at q2_K, the embeddings at q8_0 to reach the size
// of stock Q3_K_L) is refused, and the reason names the task.
#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/io.h"
#include "test_paths.h"

namespace cb {
namespace {

TEST(QuantizeTaskGate, ASignificantlyWorsePlanDoesNotShip) {
  const std::string dir = test::temp_dir("task_gate");
  write_file_atomic(dir + "/bad.txt",
                    "blk\\.[0-9]+\\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\\.weight=q2_K\n"
                    "token_embd.weight=q8_0\noutput.weight=q8_0\n");
  const auto r = test::run_command(fmt::format(
      "{} quantize --source {} --recipe-from {}/bad.txt --budget Q3_K_L --eval-text {} --eval-chunks 8 "
      "--bench code-identifiers --bench-limit 600 --data {} --no-rivals --threads 2 --out {}/o.gguf",
      test::cli_path(), test::model("cb-dense-12l-F16.gguf"), dir, test::data("wikitext-2-raw/wiki.test.raw"),
      test::data(""), dir));
  EXPECT_EQ(r.exit_code, 9) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/o.gguf"));
  const auto q = nlohmann::json::parse(read_file(dir + "/o.run/quantize.json"));
  ASSERT_FALSE(q.at("task_gate").is_null());
  EXPECT_FALSE(q["task_gate"]["ships"].get<bool>());
  EXPECT_NE(q["task_gate"]["reason"].get<std::string>().find("code-identifiers"), std::string::npos);
  const auto s = nlohmann::json::parse(read_file(dir + "/o.run/bench/summary.json"));
  const auto& c = s.at("comparison").at("code-identifiers");
  EXPECT_TRUE(c["regression"].get<bool>());
  EXPECT_LT(c["mcnemar_p"].get<double>(), 0.05);
  EXPECT_LT(c["model_accuracy"].get<double>(), c["baseline_accuracy"].get<double>());
  EXPECT_EQ(c["n_paired"].get<int>(), 600);
}

}  // namespace
}  // namespace cb
