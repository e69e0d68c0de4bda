// Recipe text (stock --tensor-type-file syntax) and the RE2 patterns it carries.
#include "cerebellum/common/pattern.h"
#include "cerebellum/recipe/recipe.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cb::fuzz::expect_clean([&] {
    const cb::Recipe r = cb::parse_recipe_text(cb::fuzz::text(data, size), "fuzz");
    // Matching is RE2's; a few rules exercise our wrapper around it.
    for (size_t i = 0; i < r.rules.size() && i < 4; ++i) cb::Pattern(r.rules[i].pattern).search("blk.0.attn_q.weight");
  });
  return 0;
}
