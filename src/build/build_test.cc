// Build pieces that need a file but no model.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "cerebellum/build/build.h"
#include "engine/gguf_writer.h"
#include "synthetic_gguf.h"
#include "test_paths.h"

namespace cb {
namespace {

// predict_output_size_bytes remembers dry runs per process: it must forget
// them when the file changes under the same path.
TEST(BuildSizes, PredictedSizeIsTheWrittenSizeAndFollowsAChangedFile) {
  const std::string dir = test::temp_dir("build-sizes");
  const std::string src = dir + "/m.gguf";
  test::write_synthetic_gguf(src);
  const std::map<std::string, std::string> types = {{"blk.0.ffn_up.weight", "q4_K"}};
  const int64_t first = predict_output_size_bytes(src, types, "");
  EXPECT_EQ(predict_output_size_bytes(src, types, ""), first);

  engine::QuantizeJob job;
  job.source = src;
  job.out = dir + "/out.gguf";
  job.types = types;
  job.ftype = 0;  // predict_output_size_bytes prices the two u32 keys a build adds
  const engine::WriteResult written = engine::quantize_gguf(job, Logger{}, ProgressFn{});
  EXPECT_EQ(first, static_cast<int64_t>(std::filesystem::file_size(job.out)));
  EXPECT_EQ(first, written.output_size_bytes);

  test::write_synthetic_gguf(src, 7, std::string(1000, 'n'));  // 1000 more metadata bytes, same path
  const int64_t second = predict_output_size_bytes(src, types, "");
  EXPECT_GE(second, first + 1000);
  EXPECT_LE(second, first + 1000 + 64);  // plus the key and alignment padding
}

}  // namespace
}  // namespace cb
