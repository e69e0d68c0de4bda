// The scale benches stand on cb-gen-model: its files must load in llama.cpp,
// tokenize text with the copied vocab and give finite logits, for both the
// dense and the MoE shape, and bad arguments must fail cleanly.
#include <gtest/gtest.h>

#include <cmath>

#include <fmt/format.h>

#include "cerebellum/common/io.h"
#include "cerebellum/eval/evaluator.h"
#include "cerebellum/inspect/inspect.h"
#include "test_paths.h"

namespace cb {
namespace {

std::string generate(const std::string& dir, const std::string& name, const std::string& shape) {
  const std::string out = dir + "/" + name + ".gguf";
  const auto r = test::run_command(fmt::format("{} {} --vocab-from {} --threads 2 --out {}", test::gen_model_path(),
                                               shape, test::model("cb-dense-12l-F16.gguf"), out));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return out;
}

TEST(BenchGenModel, DenseAndMoeShapesLoadAndRun) {
  const std::string dir = test::temp_dir("gen-model");
  const std::string text = read_file(test::data("docs-en-calib.txt"));
  const std::string dense = generate(dir, "dense",
                                     "--arch llama --n-embd 256 --n-ff 512 --n-layer 2 --n-head 4 --n-head-kv 2 "
                                     "--n-vocab 9000");
  const std::string tied = generate(dir, "tied",
                                    "--arch llama --n-embd 256 --n-ff 512 --n-layer 2 --n-head 4 --n-head-kv 2 --tied");
  const std::string moe = generate(dir, "moe",
                                   "--arch qwen3moe --n-embd 256 --n-layer 2 --n-head 4 --n-head-kv 2 --n-expert 4 "
                                   "--n-expert-used 2 --n-ff-exp 128 --n-vocab 8192");
  for (const std::string& path : {dense, moe, tied}) {
    const ModelInfo info = inspect_model(path);
    EXPECT_EQ(info.n_layers, 2) << path;
    eval::Evaluator ev(path, text, {.ctx = 64, .max_chunks = 2, .n_threads = 2});
    const eval::EvalSummary s = ev.run();
    EXPECT_TRUE(std::isfinite(s.ppl.ppl)) << path;
    EXPECT_GT(s.ppl.ppl, 1.0) << path;
  }
  for (const auto& t : inspect_model(tied).tensors) EXPECT_NE(t.name, "output.weight");  // llama.cpp ties it
  for (const auto& t : inspect_model(dense).tensors) {
    if (t.name == "token_embd.weight") EXPECT_EQ(t.shape.back(), 9000);  // vocab padded
  }
  const auto bad = test::run_command(fmt::format("{} --preset 99b --vocab-from x --out {}/x.gguf",
                                                 test::gen_model_path(), dir));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
}

}  // namespace
}  // namespace cb
