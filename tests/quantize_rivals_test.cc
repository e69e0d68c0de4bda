// The gate's rivals (issue 14): per preset family, the largest stock preset
// whose file fits our bytes; presets our build cannot make without an imatrix
// are left out until one is given.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cerebellum/build/build.h"
#include "cerebellum/common/quant_types.h"
#include "cerebellum/inspect/inspect.h"
#include "cerebellum/quantize/quantize.h"
#include "test_paths.h"

namespace cb {
namespace {

TEST(QuantizeRivals, LargestOfEachFamilyWithinOurBytes) {
  const ModelInfo model = inspect_model(test::model("cb-dense-12l-F16.gguf"));
  std::map<std::string, int64_t> sizes;
  const int64_t q4_k_m = stock_preset_size_bytes(model.path, "Q4_K_M", "");
  const auto rivals = rival_presets(model, q4_k_m - 256, "", "", &sizes);
  // Every rival fits, and no preset of its family that fits is larger.
  ASSERT_EQ(rivals.size(), 3u);  // one each of k, iq, legacy
  for (const auto& r : rivals) {
    ASSERT_TRUE(sizes.count(r)) << r;
    EXPECT_LE(sizes.at(r), q4_k_m - 256) << r;
    const std::string family = find_stock_mix(r)->family;
    for (const auto& [name, size] : sizes) {
      if (find_stock_mix(name)->family == family && size <= q4_k_m - 256) EXPECT_LE(size, sizes.at(r)) << name;
    }
  }
  EXPECT_EQ(rivals, (std::vector<std::string>{"IQ4_NL", "Q4_K_S", "Q4_0"}));
  EXPECT_FALSE(sizes.count("IQ2_XXS")) << "needs an imatrix: not buildable without one";
  EXPECT_FALSE(sizes.count("Q4_K")) << "aliases once, by their full name";
  // The baseline is not its own rival.
  const auto at_q4_k_m = rival_presets(model, q4_k_m, "", "Q4_K_M");
  EXPECT_EQ(std::count(at_q4_k_m.begin(), at_q4_k_m.end(), "Q4_K_M"), 0);
}

}  // namespace
}  // namespace cb
