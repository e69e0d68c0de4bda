// The JSON we read from users: recipe / plan JSON, allocate constraints, and
// the original project's ablation_results.json.
#include <nlohmann/json.hpp>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/measure/original.h"
#include "cerebellum/recipe/recipe.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return 0;
  cb::fuzz::expect_clean([&] { cb::parse_recipe_json(j, "fuzz"); });
  cb::fuzz::expect_clean([&] { cb::constraints_from_json(j, "fuzz"); });
  cb::fuzz::expect_clean([&] { cb::measure::import_original(j); });
  return 0;
}
