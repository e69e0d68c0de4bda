// Integration: the task loaders on the shared data at full size, HellaSwag
// against stock llama-perplexity, the bench CLI and the ship gate.
#include <filesystem>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cerebellum/bench/tasks.h"
#include "cerebellum/common/io.h"
#include "test_paths.h"

namespace cb {
namespace {

TEST(BenchSuites, LoadersReadTheSharedDataAtFullSize) {
  bench::TaskOptions o;
  o.data_dir = test::data("");
  const std::map<std::string, size_t> expected = {
      {"hellaswag", 10042}, {"arc-challenge", 1172}, {"arc-easy", 2376}, {"winogrande", 1267},
      {"mmlu", 14042},      {"mmlu-redux", 5700},    {"lambada", 5153},  {"piqa", 1838},
      {"openbookqa", 500},  {"copa", 100},           {"humaneval", 164}, {"humanevalplus", 164},
      {"code-identifiers", 2593}};
  for (const auto& [name, n] : expected) {
    const auto qs = bench::find_task(name).load(o);
    EXPECT_EQ(qs.size(), n) << name;
    for (const auto& q : qs) {
      if (!q.choices.empty()) {
        ASSERT_GE(q.gold, 0) << q.id;
        ASSERT_LT(q.gold, static_cast<int>(q.choices.size())) << q.id;
      }
    }
  }
  // MMLU-Redux: the cp1252 file decoded, flagged questions marked.
  const auto redux = bench::find_task("mmlu-redux").load(o);
  int flagged = 0;
  for (const auto& q : redux) flagged += q.meta.value("flagged", false);
  EXPECT_GT(flagged, 300);
  EXPECT_LT(flagged, 700);
}

TEST(BenchSuites, HellaswagMatchesStockLlamaPerplexity) {
  // 100 tasks keep the test fast; docs/bench.md records the 400-task run.
  const std::string model = test::model("cb-dense-12l-F16.gguf");
  const std::string data = test::data("hellaswag/hellaswag_val_full.txt");
  const auto stock = test::run_stock_until(test::stock_tool("llama-perplexity") + " -m " + model + " -f " + data +
                                               " --hellaswag --hellaswag-tasks 100 -nr -t 2 2>&1",
                                           R"(\n100\t([0-9.]+)%)");
  ASSERT_EQ(stock.exit_code, 0) << stock.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(stock.output, m, std::regex(R"(\n100\t([0-9.]+)%)"))) << stock.output;
  const double stock_acc = std::stod(m[1]) / 100;

  const std::string out = test::temp_dir("bench_hs");
  const auto ours = test::run_command(test::cli_path() + " bench --model " + model + " --tasks hellaswag --data " +
                                      test::data("") + " --limit 100 --threads 2 --out " + out + " --force 2>&1");
  ASSERT_EQ(ours.exit_code, 0) << ours.output;
  const auto s = nlohmann::json::parse(read_file(out + "/summary.json"));
  EXPECT_EQ(s["schema"], "cerebellum.bench/1");
  const auto& t = s["model"]["tasks"]["hellaswag"];
  EXPECT_EQ(t["n"], 100);
  EXPECT_NEAR(t["accuracy"].get<double>(), stock_acc, 0.0101);  // within one task
  // Per-question records: the same ids/gold a reader can audit.
  std::ifstream in(out + "/hellaswag.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const auto r = nlohmann::json::parse(line);
    EXPECT_EQ(r["choices"].size(), 4u);
    EXPECT_EQ(r["scores"].size(), 4u);
    EXPECT_EQ(r["correct"], r["predicted"] == r["gold"]);
    ++n;
  }
  EXPECT_EQ(n, 100);
}

// Data that is not there: a clear error naming the file, exit 3, and no empty
// --out folder left behind.
TEST(BenchSuites, MissingDataNamesTheFileAndLeavesNoOutputFolder) {
  const std::string out = test::temp_dir("bench_nodata") + "/out";
  const auto r = test::run_command(test::cli_path() + " bench --model " + test::model("cb-dense-12l-F16.gguf") +
                                   " --tasks hellaswag --data /nonexistent-data --out " + out + " 2>&1");
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("/nonexistent-data/hellaswag"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(BenchSuites, GateAndAuditThroughTheCli) {
  const std::string model = test::model("cb-dense-12l-F16.gguf");
  const std::string out = test::temp_dir("bench_gate");
  // Model == baseline: identical answers, nothing to regress: ships.
  const auto r = test::run_command(test::cli_path() + " bench --model " + model + " --baseline " + model +
                                   " --tasks copa,arc-easy --data " + test::data("") +
                                   " --limit 30 --threads 2 --out " + out + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto s = nlohmann::json::parse(read_file(out + "/summary.json"));
  EXPECT_TRUE(s["verdict"]["ships"].get<bool>());
  EXPECT_DOUBLE_EQ(s["comparison"]["copa"]["mcnemar_p"].get<double>(), 1.0);
  EXPECT_TRUE(std::filesystem::exists(out + "/baseline/copa.jsonl"));

  // Plant a harness bug: gold labels shifted by one (1-based against 0-based).
  const std::string planted = test::temp_dir("bench_planted");
  {
    std::ifstream in(out + "/arc-easy.jsonl");
    std::ofstream o(planted + "/arc-easy.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      j["gold"] = j["gold"].get<int>() + 1;
      o << j.dump() << "\n";
    }
  }
  const auto a = test::run_command(test::cli_path() + " audit " + planted + " 2>&1");
  EXPECT_EQ(a.exit_code, 9) << a.output;  // GateError: severe smells
  const auto rep = nlohmann::json::parse(read_file(planted + "/audit.json"));
  EXPECT_TRUE(rep["severe"].get<bool>());
  bool found = false;
  for (const auto& sm : rep["files"]["arc-easy.jsonl"]["smells"]) found = found || sm["kind"] == "gold_outside_choices";
  EXPECT_TRUE(found) << rep.dump(2);
  // The unmodified results do not carry that smell.
  test::run_command(test::cli_path() + " audit --no-fail " + out);
  const auto clean = nlohmann::json::parse(read_file(out + "/audit.json"));
  for (const auto& sm : clean["files"]["arc-easy.jsonl"]["smells"]) EXPECT_NE(sm["kind"], "gold_outside_choices");
}

}  // namespace
}  // namespace cb
