#include "cerebellum/common/strings.h"

#include <vector>

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace cb
