// Recipe text edge cases that need no model.
#include "cerebellum/recipe/recipe.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "cerebellum/common/error.h"

namespace cb {
namespace {

TEST(RecipeText, Utf8BomDoesNotBreakTheFirstLine) {
  const Recipe r = parse_recipe_text("\xEF\xBB\xBF" "output.weight=q6_K\nblk\\.0\\..*=q4_K\n", "bom.txt");
  ASSERT_EQ(r.rules.size(), 2u);
  EXPECT_EQ(r.rules[0].pattern, "output.weight");
  EXPECT_EQ(r.rules[0].type, "q6_K");
}

TEST(RecipeText, DirectoryIsRefusedNotAnEmptyRecipe) {
  const auto dir = std::filesystem::temp_directory_path() / "cb_recipe_dir_test";
  std::filesystem::create_directories(dir);
  EXPECT_THROW(load_recipe(dir.string()), InputError);
  std::filesystem::remove(dir);
}

TEST(RecipeText, HostilePatternsAreRecipeErrors) {
  EXPECT_THROW(parse_recipe_text(std::string(20000, '(') + "=q4_K\n", "deep.txt"), RecipeError);
  const Recipe r = parse_recipe_text("(.*)*Z=q4_K\n", "slow.txt");  // valid, and linear to match
  EXPECT_EQ(r.rules.size(), 1u);
}

}  // namespace
}  // namespace cb
