#include "cerebellum/bench/audit.h"

#include <gtest/gtest.h>

#include <fmt/format.h>

namespace cb::bench {
namespace {

const Smell* find_smell(const FileAudit& f, const std::string& kind) {
  for (const auto& s : f.smells) {
    if (s.kind == kind) return &s;
  }
  return nullptr;
}

// 40 balanced questions, a model right on every third.
std::vector<std::string> clean_records(int gold_shift = 0) {
  std::vector<std::string> lines;
  for (int i = 0; i < 40; ++i) {
    const int gold = i % 4, pred = i % 3 == 0 ? gold : (gold + 1) % 4;
    lines.push_back(fmt::format(R"({{"id":"q{}","choices":["a","b","c","d"],"predicted":{},"gold":{},"correct":{}}})",
                                i, pred, gold + gold_shift, pred == gold ? "true" : "false"));
  }
  return lines;
}

TEST(BenchAudit, CleanResultsHaveNoSevereSmell) {
  const auto f = audit_records("arc.jsonl", clean_records(), {});
  EXPECT_EQ(f.n, 40);
  EXPECT_EQ(f.n_wrong, 26);
  for (const auto& s : f.smells) EXPECT_NE(s.severity, Severity::kSevere) << s.kind;
}

TEST(BenchAudit, OffByOneLabelsAreSevere) {
  // A harness that wrote 1-based gold labels against 0-based choices.
  AuditReport r;
  r.files.push_back(audit_records("arc.jsonl", clean_records(1), {}));
  EXPECT_TRUE(r.severe());
  const Smell* out = find_smell(r.files[0], "gold_outside_choices");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->count, 10);  // gold 3 -> 4
  ASSERT_NE(find_smell(r.files[0], "correct_flag_inconsistent"), nullptr);
}

TEST(BenchAudit, PredictionClusterAndUnparsable) {
  std::vector<std::string> lines;
  for (int i = 0; i < 30; ++i) {
    lines.push_back(fmt::format(R"({{"id":"q{}","choices":["a","b","c","d"],"predicted":0,"gold":{}}})", i, i % 4));
  }
  lines.push_back("{not json");
  const auto f = audit_records("x.jsonl", lines, {});
  const Smell* c = find_smell(f, "prediction_cluster");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->severity, Severity::kSevere);
  EXPECT_EQ(f.n_unparsable, 1);
  EXPECT_NE(find_smell(f, "unparsable_record"), nullptr);
}

TEST(BenchAudit, OriginalProjectArcLabelBug) {
  // The seed project's ARC records: numeric answer keys against letter labels.
  std::vector<std::string> lines = {
      R"({"question":"q1","choices":["a","b"],"labels":["A","B"],"expected":"B","predicted":"B","raw_response":"B","correct":true})",
      R"({"question":"q2","choices":["a","b"],"labels":["A","B"],"expected":"2","predicted":"B","raw_response":"B","correct":false})",
      R"({"question":"q3","choices":["a","b"],"labels":["A","B"],"expected":"A","predicted":"","raw_response":"  ","correct":false})"};
  const auto f = audit_records("arc_detailed.jsonl", lines, {});
  EXPECT_NE(find_smell(f, "gold_outside_choices"), nullptr);
  EXPECT_NE(find_smell(f, "mixed_label_styles"), nullptr);
  const Smell* e = find_smell(f, "empty_output");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->severity, Severity::kSevere);  // 1 of 3 > 1%
}

TEST(BenchAudit, GeneratedCodeSmells) {
  const std::string prompt = "def add(a, b):\n    \"\"\"Add.\"\"\"\n";
  nlohmann::json a = {{"id", "HumanEval/1"}, {"prompt", prompt}, {"generation", "def add(a, b):\n    return a + b\n"},
                      {"correct", true}};
  nlohmann::json b = {{"id", "HumanEval/2"}, {"prompt", prompt},
                      {"generation", "    return a\ndef f(x):\n    pass\ndef f(x):\n    pass\n"}, {"correct", false}};
  nlohmann::json c = {{"id", "HumanEval/3"}, {"prompt", prompt}, {"generation", ""}, {"correct", false}};
  const auto f = audit_records("humaneval.jsonl", {a.dump(), b.dump(), c.dump()}, {});
  EXPECT_NE(find_smell(f, "prompt_echo"), nullptr);
  EXPECT_NE(find_smell(f, "repeated_definition"), nullptr);
  EXPECT_NE(find_smell(f, "empty_output"), nullptr);
  EXPECT_EQ(f.n_wrong, 2);
}

}  // namespace
}  // namespace cb::bench
