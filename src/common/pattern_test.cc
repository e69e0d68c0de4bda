#include "cerebellum/common/pattern.h"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "cerebellum/common/error.h"

namespace cb {
namespace {

TEST(Pattern, SearchIsUnanchoredAndCaseSensitiveLikeStock) {
  const Pattern p("ffn_down");
  EXPECT_TRUE(p.search("blk.3.ffn_down.weight"));
  EXPECT_FALSE(p.search("blk.3.FFN_DOWN.weight"));
  EXPECT_FALSE(p.full_match("blk.3.ffn_down.weight"));
  EXPECT_TRUE(Pattern(R"(blk\.\d+\.ffn_.*)").full_match("blk.12.ffn_up.weight"));
  EXPECT_TRUE(Pattern("^" + escape_pattern("output.weight") + "$").search("output.weight"));
  EXPECT_FALSE(Pattern("^" + escape_pattern("output.weight") + "$").search("outputXweight"));
}

// Found by hostile input (issue 15): std::regex recursed per nesting level
// (SIGSEGV at 20,000) and backtracked exponentially on "(.*)*Z".
TEST(Pattern, DeepNestingCompilesWithoutRecursionOrIsAnError) {
  const std::string deep = std::string(20000, '(') + "a" + std::string(20000, ')');
  EXPECT_TRUE(Pattern(deep, "recipe.txt:1").search("xay"));  // RE2 walks the parse tree without recursion
  try {
    Pattern p(std::string(20000, '(') + "a", "recipe.txt:1");
    FAIL() << "accepted unbalanced parentheses";
  } catch (const RecipeError& e) {
    EXPECT_NE(std::string(e.what()).find("recipe.txt:1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(check_pattern("blk.(", "c"), RecipeError);
}

TEST(Pattern, CatastrophicBacktrackingPatternAnswersFast) {
  const Pattern p("(.*)*Z");
  const std::string s(100000, 'a');
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(p.search(s));
  const double s_taken = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Linear time: ~1 ms here; std::regex ran for more than 300 s on a far shorter name.
  EXPECT_LT(s_taken, 5.0);
}

}  // namespace
}  // namespace cb
