#include "cerebellum/common/strings.h"

#include <atomic>
#include <vector>

#include <gtest/gtest.h>

#include "common/parallel.h"

namespace cb {
namespace {

TEST(Strings, CaseTrimAndCommaLists) {
  EXPECT_EQ(ascii_lower("Q4_K_M"), "q4_k_m");
  EXPECT_EQ(ascii_upper("q4_k_m"), "Q4_K_M");
  EXPECT_EQ(trim(" \t x y \r\n"), "x y");
  EXPECT_EQ(trim(" \t\r\n"), "");
  EXPECT_EQ(split_commas("a,b,,c,"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(split_commas("").empty());
}

TEST(Parallel, EveryIndexExactlyOnceOnAnyThreadCount) {
  for (const int threads : {1, 2, 7, 64}) {
    std::vector<std::atomic<int>> hits(1000);
    parallel_for(1000, threads, [&](int64_t i) { hits[static_cast<size_t>(i)]++; });
    for (const auto& h : hits) ASSERT_EQ(h.load(), 1) << threads;
  }
  parallel_for(0, 4, [](int64_t) { FAIL(); });
  EXPECT_GE(thread_count(0), 1);
  EXPECT_EQ(thread_count(3), 3);
}

}  // namespace
}  // namespace cb
