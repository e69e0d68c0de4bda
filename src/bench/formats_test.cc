#include <gtest/gtest.h>

#include "cerebellum/bench/tasks.h"
#include "cerebellum/common/error.h"

namespace cb::bench {
namespace {

TEST(BenchFormats, CsvQuotesNewlinesAndDelimiters) {
  const auto rows = parse_csv("a;b;c\r\n\"x;\"\"y\"\"\";\"two\nlines\";3\r\n", ';');
  ASSERT_EQ(rows.size(), 2u);
  ASSERT_EQ(rows[1].size(), 3u);
  EXPECT_EQ(rows[1][0], "x;\"y\"");
  EXPECT_EQ(rows[1][1], "two\nlines");
  EXPECT_EQ(rows[1][2], "3");
  // A trailing empty field is kept (MMLU-Redux rows ending in ",,").
  EXPECT_EQ(parse_csv("a,b,\n", ',')[0].size(), 3u);
}

TEST(BenchFormats, PythonStringList) {
  EXPECT_EQ(parse_python_str_list("['a', \"b's\", 'c\\'d', '']"),
            (std::vector<std::string>{"a", "b's", "c'd", ""}));
  EXPECT_EQ(parse_python_str_list("[1, 2.5 , None]"), (std::vector<std::string>{"1", "2.5", "None"}));
  EXPECT_THROW(parse_python_str_list("a, b"), InputError);
  EXPECT_THROW(parse_python_str_list("['a', 'b"), InputError);
}

TEST(BenchFormats, Cp1252IsReencoded) {
  bool cp = false;
  EXPECT_EQ(to_utf8("caf\xc3\xa9", &cp), "caf\xc3\xa9");
  EXPECT_FALSE(cp);
  // 0x85 (ellipsis) and 0x92 (right quote) as in mmlu_moral_scenarios.csv.
  EXPECT_EQ(to_utf8("I\x92m\x85", &cp), "I\xe2\x80\x99m\xe2\x80\xa6");
  EXPECT_TRUE(cp);
}

TEST(BenchFormats, ErrorTypesNormalized) {
  EXPECT_EQ(normalize_error_type("OK "), "ok");
  EXPECT_EQ(normalize_error_type("Wrong Groundtruth"), "wrong_groundtruth");
  EXPECT_EQ(normalize_error_type("bad_question_clarity"), "bad_question_clarity");
  EXPECT_EQ(normalize_error_type(""), "unknown");
}

TEST(BenchFormats, UnknownTaskNamesKnownOnes) {
  try {
    find_task("arc");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("arc-challenge"), std::string::npos);
  }
}

}  // namespace
}  // namespace cb::bench
