// Recipes: parsing (incl. the original project's real files), resolution, presets, overrides.
#include <filesystem>

#include <gtest/gtest.h>

#include "build_test_util.h"
#include "cerebellum/build/build.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/common/quant_types.h"
#include <nlohmann/json.hpp>
#include "cerebellum/recipe/recipe.h"

namespace cb {
namespace {

namespace fs = std::filesystem;

TEST(RecipeParse, SeedProjectRecipesParse) {
  int n_files = 0;
  for (const auto& dir : fs::directory_iterator(test::data("seed-cerebellum/model-data"))) {
    for (const auto& f : fs::directory_iterator(dir.path())) {
      if (f.path().extension() != ".txt") continue;
      const Recipe r = load_recipe(f.path().string());
      EXPECT_GT(r.rules.size(), 10u) << f.path();
      for (const auto& rule : r.rules) EXPECT_TRUE(find_type(rule.type)) << rule.type;
      ++n_files;
    }
  }
  EXPECT_EQ(n_files, 4);
}

TEST(RecipeParse, TextFormCommentsSpacesCaseAndErrors) {
  const Recipe r = parse_recipe_text("# header\n\nblk.0.attn_q.weight=Q4_K  blk.1.attn_q.weight=q8_0 # tail\n"
                                     "ffn_down=IQ4_XS\n", "r.txt");
  ASSERT_EQ(r.rules.size(), 3u);
  EXPECT_EQ(r.rules[0].type, "q4_K");
  EXPECT_EQ(r.rules[1].line, 3);
  EXPECT_EQ(r.rules[2].type, "iq4_xs");
  EXPECT_THROW(parse_recipe_text("blk.0.attn_q.weight\n"), RecipeError);
  EXPECT_THROW(parse_recipe_text("x=q9_K\n"), RecipeError);
  EXPECT_THROW(parse_recipe_text("blk.(=q4_K\n"), RecipeError);
  try {
    parse_recipe_text("a=q4_K\nb=nope\n", "f.txt");
    FAIL();
  } catch (const RecipeError& e) {
    EXPECT_NE(std::string(e.what()).find("f.txt:2"), std::string::npos) << e.what();
  }
}

TEST(RecipeParse, JsonFormRoundTrip) {
  const nlohmann::json j = recipe_json({{"blk.0.attn_q.weight", "q5_K"}}, "Q4_K_M");
  const Recipe r = parse_recipe_json(j, "j");
  EXPECT_EQ(r.base, "Q4_K_M");
  ASSERT_EQ(r.rules.size(), 1u);
  EXPECT_EQ(r.rules[0].type, "q5_K");
  EXPECT_THROW(parse_recipe_json(nlohmann::json{{"schema", "other/1"}}), RecipeError);
}

TEST(RecipeResolve, PresetThenOverrideChangesOneTensor) {
  const ModelInfo m = inspect_model(test::model("cb-dense-12l-F16.gguf"));
  Recipe base;
  base.base = "Q4_K_M";
  const auto a = resolve_recipe(base, m).types();
  EXPECT_EQ(a.at("output.weight"), "q6_K");
  EXPECT_EQ(a.at("blk.0.attn_q.weight"), "q4_K");
  EXPECT_EQ(a.at("blk.0.attn_norm.weight"), "f32");
  Recipe over = base;
  over.rules = parse_recipe_text("blk.3.ffn_up.weight=q8_0\n").rules;
  const auto b = resolve_recipe(over, m).types();
  int n_diff = 0;
  for (const auto& [name, type] : a) n_diff += (b.at(name) != type);
  EXPECT_EQ(n_diff, 1);
  EXPECT_EQ(b.at("blk.3.ffn_up.weight"), "q8_0");
  // The resolved text is a full recipe: re-resolving it from the source types gives the same map.
  Recipe again = parse_recipe_text(recipe_text(b), "resolved");
  EXPECT_EQ(resolve_recipe(again, m).types(), b);
}

TEST(RecipeResolve, RegexCasePreservedAndLaterRulesWin) {
  const ModelInfo m = inspect_model(test::model("cb-dense-12l-F16.gguf"));
  // \S stays \S (stock would lowercase it to \s and match nothing).
  const auto t = resolve_recipe(parse_recipe_text("blk\\.0\\.attn_\\S+=q8_0\nblk\\.0\\.attn_q=q5_K\n"), m).types();
  EXPECT_EQ(t.at("blk.0.attn_k.weight"), "q8_0");
  EXPECT_EQ(t.at("blk.0.attn_q.weight"), "q5_K");
  EXPECT_EQ(t.at("blk.0.attn_norm.weight"), "f32");  // 1-D: patterns skip it
  EXPECT_THROW(resolve_recipe(parse_recipe_text("nothing_here=q8_0\n"), m), RecipeError);
  EXPECT_THROW(resolve_recipe(parse_recipe_text("blk.0.attn_norm.weight=q8_0\n"), m), RecipeError);
}

TEST(RecipeResolve, StockPresetsMatchStockFiles) {
  // Types from the dry run equal what llama-quantize writes (Q3_K_M here; the
  // build parity tests cover Q2_K, Q4_K_M, Q6_K byte for byte).
  const std::string dir = test::temp_dir("preset-q3km");
  const std::string src = test::model("cb-dense-12l-F16.gguf");
  const auto r = test::run_command(test::stock_tool("llama-quantize") + " " + src + " " + dir + "/s.gguf Q3_K_M 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const ModelInfo stock = inspect_model(dir + "/s.gguf");
  const auto types = stock_preset_types(src, "Q3_K_M");
  for (const auto& t : stock.tensors) EXPECT_EQ(types.at(t.name), t.type) << t.name;
  EXPECT_EQ(predict_output_size_bytes(src, types), stock.file_size_bytes);
}

TEST(RecipeResolve, FallbackTable) {
  EXPECT_EQ(fallback_type("q4_K", 64), "q5_0");
  EXPECT_EQ(fallback_type("q6_K", 64), "q8_0");
  EXPECT_EQ(fallback_type("q4_K", 172), "f16");
  EXPECT_EQ(fallback_type("iq3_s", 96), "iq4_nl");
  EXPECT_EQ(fallback_type("q8_0", 256), "q8_0");
}

}  // namespace
}  // namespace cb
