#include "cerebellum/measure/journal.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "test_paths.h"

namespace cb {
namespace {

JournalHeader sample_header() {
  JournalHeader h;
  h.tool_version = "0.1.0";
  h.model_path = "m.gguf";
  h.model_sha256 = "abc";
  h.base_name = "Q4_K_M";
  h.base_types = {{"blk.0.ffn_down.weight", "q6_K"}, {"blk.0.attn_q.weight", "q4_K"}};
  h.texts = {{"en", "en.txt", "e1"}};
  h.settings_json = R"({"ctx":512})";
  return h;
}

JournalMeasurement sample_measurement(const std::string& tensor, double delta) {
  JournalMeasurement m;
  m.domain = "en";
  m.unit = {tensor, "tensor", {tensor}};
  m.types = {{tensor, "q2_K"}};
  m.metrics.n_chunks = 12;
  m.metrics.kld_mean = 0.05;
  m.metrics.kld_se = 0.001;
  m.delta_kld = delta;
  m.delta_kld_se = 0.002;
  m.delta_ln_ppl = 0.01;
  m.stopped = "tight";
  return m;
}

TEST(Journal, WriteThenReadRoundTrips) {
  const std::string path = test::temp_dir("journal_rt") + "/m.jsonl";
  {
    JournalWriter w(path, sample_header());
    JournalBaseline b;
    b.domain = "en";
    b.metrics.kld_mean = 0.012;
    b.metrics.ppl = 27.9;
    w.append(b);
    w.append(sample_measurement("blk.0.ffn_down.weight", 0.031));
    JournalProbe p;
    p.domain = "en";
    p.units = {{"blk.0.ffn_down.weight", "tensor", {"blk.0.ffn_down.weight"}},
               {"blk.0.attn_q.weight", "tensor", {"blk.0.attn_q.weight"}}};
    p.delta_kld = 0.04;
    w.append(p);
  }
  const Journal j = read_journal(path);
  EXPECT_FALSE(j.torn_tail);
  EXPECT_EQ(j.header.base_name, "Q4_K_M");
  EXPECT_EQ(j.header.base_types.at("blk.0.ffn_down.weight"), "q6_K");
  EXPECT_EQ(nlohmann::json::parse(j.header.settings_json)["ctx"], 512);
  ASSERT_EQ(j.baselines.size(), 1u);
  EXPECT_DOUBLE_EQ(*j.baselines[0].metrics.ppl, 27.9);
  ASSERT_EQ(j.measurements.size(), 1u);
  EXPECT_DOUBLE_EQ(j.measurements[0].delta_kld, 0.031);
  EXPECT_EQ(j.measurements[0].types.at("blk.0.ffn_down.weight"), "q2_K");
  EXPECT_FALSE(j.measurements[0].delta_top1.has_value());
  ASSERT_EQ(j.probes.size(), 1u);
  EXPECT_EQ(j.probes[0].units.size(), 2u);
  EXPECT_EQ(j.domains(), std::vector<std::string>{"en"});
}

TEST(Journal, TornLastLineIsDroppedAndResumeCutsIt) {
  const std::string path = test::temp_dir("journal_torn") + "/m.jsonl";
  {
    JournalWriter w(path, sample_header());
    w.append(sample_measurement("blk.0.ffn_down.weight", 0.031));
  }
  {
    std::ofstream f(path, std::ios::app);
    f << R"({"kind":"measurement","domain":"en","unit":{"id":"x)";  // crash mid-write
  }
  Journal j = read_journal(path);
  EXPECT_TRUE(j.torn_tail);
  EXPECT_EQ(j.measurements.size(), 1u);
  {
    JournalWriter w(path, sample_header());  // resume: cuts the torn tail
    EXPECT_EQ(w.existing().measurements.size(), 1u);
    w.append(sample_measurement("blk.0.attn_q.weight", 0.002));
  }
  j = read_journal(path);
  EXPECT_FALSE(j.torn_tail);
  EXPECT_EQ(j.measurements.size(), 2u);
}

TEST(Journal, BadMiddleLineAndWrongSchemaAreErrors) {
  const std::string h = nlohmann::json(to_json(sample_header())).dump();
  EXPECT_THROW(parse_journal(h + "\n{not json\n" + "{}\n", "x"), InputError);
  std::string other = h;
  other.replace(other.find("measure/1"), 9, "measure/2");
  EXPECT_THROW(parse_journal(other + "\n", "x"), MismatchError);
  EXPECT_THROW(parse_journal(R"({"schema":"cerebellum.plan/1"})" "\n", "x"), InputError);
  EXPECT_THROW(parse_journal("", "x"), InputError);
  // A measurement without its delta is malformed.
  EXPECT_THROW(parse_journal(h + "\n" + R"({"kind":"measurement","domain":"en",)"
                                 R"("unit":{"id":"a"},"types":{},"kld_mean":0.1})" "\n", "x"),
               InputError);
}

TEST(Journal, ResumingAnotherModelsJournalIsAMismatch) {
  const std::string path = test::temp_dir("journal_mm") + "/m.jsonl";
  { JournalWriter w(path, sample_header()); }
  JournalHeader other = sample_header();
  other.model_sha256 = "def";
  EXPECT_THROW(JournalWriter(path, other), MismatchError);
}

}  // namespace
}  // namespace cb
