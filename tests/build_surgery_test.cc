// surgery: recast single tensors of an existing (quantized) GGUF.
#include <filesystem>

#include <gtest/gtest.h>

#include "build_test_util.h"
#include "cerebellum/build/build.h"
#include "cerebellum/common/io.h"
#include "cerebellum/common/quant_types.h"
#include "engine/engine.h"

namespace cb {
namespace {

TEST(BuildSurgery, RecastsOneTensorCopiesTheRest) {
  const std::string dir = test::temp_dir("surgery");
  BuildOptions b;
  b.source = test::model("cb-dense-12l-F16.gguf");
  b.base = "Q4_K_M";
  b.out = dir + "/q4km.gguf";
  b.n_threads = 2;
  build_model(b);

  std::vector<std::string> warnings;
  Logger logger{[&](LogLevel level, std::string_view msg) {
    if (level == LogLevel::kWarn) warnings.emplace_back(msg);
  }};
  SurgeryOptions s;
  s.in = b.out;
  s.out = dir + "/surgery.gguf";
  s.sets = parse_recipe_text("blk.5.ffn_up.weight=q8_0\n").rules;
  s.n_threads = 2;
  const BuildReport r = surgery(s, logger);
  EXPECT_EQ(static_cast<int64_t>(std::filesystem::file_size(s.out)), r.output_size_bytes);
  ASSERT_EQ(warnings.size(), 1u);  // re-quantizing q4_K -> q8_0
  EXPECT_NE(warnings[0].find("blk.5.ffn_up.weight"), std::string::npos);

  const engine::GgufFile a(b.out), o(s.out);
  ASSERT_EQ(a.n_tensors(), o.n_tensors());
  const std::string ab = read_file(b.out), ob = read_file(s.out);
  for (int64_t i = 0; i < a.n_tensors(); ++i) {
    const std::string name = a.tensor_name(i);
    EXPECT_EQ(o.tensor_name(i), name);  // order kept
    if (name == "blk.5.ffn_up.weight") {
      EXPECT_EQ(std::string("q8_0"), type_by_id(o.tensor_type(i)).name);
      continue;
    }
    EXPECT_EQ(a.tensor_type(i), o.tensor_type(i)) << name;
    EXPECT_EQ(ab.compare(a.data_offset() + a.tensor_offset(i), a.tensor_size_bytes(i), ob,
                         o.data_offset() + o.tensor_offset(i), o.tensor_size_bytes(i)), 0) << name;
  }
  EXPECT_EQ(a.get_int("general.file_type"), o.get_int("general.file_type"));
}

}  // namespace
}  // namespace cb
