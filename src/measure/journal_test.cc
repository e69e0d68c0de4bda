// Journal reading rules that need no model.
#include "cerebellum/measure/journal.h"

#include <gtest/gtest.h>

#include "cerebellum/common/error.h"

namespace cb {
namespace {

const char* kHeader =
    R"({"kind":"header","schema":"cerebellum.measure/1","model_sha256":"abc","base":{"name":"Q4_K_M","types":{}},"texts":[]})";

std::string measurement(double delta) {
  return std::string(R"({"kind":"measurement","domain":"en","direction":"ablate",)") +
         R"("unit":{"id":"blk.0.attn_q.weight","level":"tensor","tensors":["blk.0.attn_q.weight"]},)" +
         R"("types":{"blk.0.attn_q.weight":"q2_K"},"n_chunks":3,"n_tokens":300,"kld_mean":0.1,"kld_se":0.01,)" +
         R"("delta_kld":)" + std::to_string(delta) + R"(,"delta_kld_se":0.001})";
}

// Issue 15: two writers left two records per unit and allocate used whichever
// it met last (predicted ΔKLD −0.0011 became −0.92).
TEST(JournalRead, DuplicateRecordsKeepTheFirstAndReportConflicts) {
  const std::string text = std::string(kHeader) + "\n" + measurement(0.0011) + "\n" + measurement(0.0011) +
                           "\n" + measurement(0.92) + "\n";
  const Journal j = parse_journal(text, "j.jsonl");
  ASSERT_EQ(j.measurements.size(), 1u);
  EXPECT_DOUBLE_EQ(j.measurements[0].delta_kld, 0.0011);
  ASSERT_EQ(j.duplicates.size(), 2u);
  EXPECT_NE(j.duplicates[0].find("same values"), std::string::npos) << j.duplicates[0];
  EXPECT_NE(j.duplicates[1].find("j.jsonl:4: conflicts with j.jsonl:2"), std::string::npos) << j.duplicates[1];
  EXPECT_NE(j.duplicates[1].find("0.92"), std::string::npos) << j.duplicates[1];
}

TEST(JournalRead, TornLastLineIsDroppedAndFlagged) {
  const std::string m = measurement(0.5);
  const Journal j = parse_journal(std::string(kHeader) + "\n" + m + "\n" + m.substr(0, 40), "j");
  EXPECT_TRUE(j.torn_tail);
  EXPECT_EQ(j.measurements.size(), 1u);
}

// The journal fuzzer: n_chunks 3e115 went through nlohmann's get<int>(), a
// float-to-int cast out of range (undefined behaviour). Now an InputError naming
// the line and the field, as for any other malformed value; integral floats are fine.
TEST(JournalRead, IntegerFieldsOutOfRangeOrFractionalAreInputErrors) {
  auto with_chunks = [](const std::string& n) {
    std::string m = measurement(0.1);
    m.replace(m.find(R"("n_chunks":3)"), 12, R"("n_chunks":)" + n);
    return std::string(kHeader) + "\n" + m + "\n";
  };
  for (const std::string bad : {"3e115", "-1e300", "2.5", "4294967296"}) {
    try {
      parse_journal(with_chunks(bad), "j.jsonl");
      ADD_FAILURE() << bad << " was accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("j.jsonl:2"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("n_chunks"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(parse_journal(with_chunks("5.0"), "j").measurements.at(0).metrics.n_chunks, 5);
}

// Issue 13: quantize re-measures marginal units with more chunks; the longer
// record replaces the one it names (`refines` = its chunks), not a conflict.
// One that names another length is a repeat as before.
TEST(JournalRead, ARefinementReplacesTheRecordItNames) {
  auto refined = [](double delta, int chunks, int refines) {
    std::string m = measurement(delta);
    m.replace(m.find(R"("n_chunks":3)"), 12, R"("n_chunks":)" + std::to_string(chunks));
    return m.substr(0, m.size() - 1) + R"(,"refines":)" + std::to_string(refines) + "}";
  };
  const std::string text = std::string(kHeader) + "\n" + measurement(0.0011) + "\n" + refined(0.0007, 6, 3) +
                           "\n" + refined(0.0005, 12, 6) + "\n" + refined(0.9, 24, 3) + "\n";
  const Journal j = parse_journal(text, "j.jsonl");
  ASSERT_EQ(j.measurements.size(), 1u);
  EXPECT_DOUBLE_EQ(j.measurements[0].delta_kld, 0.0005);
  EXPECT_EQ(j.measurements[0].metrics.n_chunks, 12);
  EXPECT_EQ(j.measurements[0].refines, 6);
  ASSERT_EQ(j.duplicates.size(), 1u);  // the last names 3 chunks; the kept record has 12
  EXPECT_NE(j.duplicates[0].find("j.jsonl:5: conflicts with j.jsonl:4"), std::string::npos) << j.duplicates[0];
  // A refinement no longer than what it refines is malformed.
  EXPECT_THROW(parse_journal(std::string(kHeader) + "\n" + refined(0.1, 3, 3) + "\n", "j"), InputError);
  // A refinement with nothing before it (e.g. a shard's copy) is kept as the record.
  EXPECT_EQ(parse_journal(std::string(kHeader) + "\n" + refined(0.1, 6, 3) + "\n", "j").measurements.size(), 1u);
}

}  // namespace
}  // namespace cb
