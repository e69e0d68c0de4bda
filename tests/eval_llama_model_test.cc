// Integration tests of the llama.cpp adapter (src/engine/llama_model.h).
#include <gtest/gtest.h>

#include <cmath>

#include "cerebellum/common/error.h"
#include "engine/engine.h"
#include "engine/llama_model.h"
#include "engine/mapped_pages.h"
#include "ggml.h"
#include "test_paths.h"

namespace cb::engine {
namespace {

std::vector<float> last_logits(const LlamaModel& m, const std::vector<Token>& toks) {
  LlamaContext ctx(m, {.n_ctx = 64, .n_batch = 64, .n_seq = 1, .n_threads = 2});
  TokenBatch batch(64);
  for (size_t i = 0; i < toks.size(); ++i) {
    batch.add(toks[i], static_cast<int32_t>(i), 0, i + 1 == toks.size());
  }
  ctx.decode(batch);
  const float* l = ctx.logits(batch.size() - 1);
  return std::vector<float>(l, l + m.n_vocab());
}

TEST(EvalLlamaModel, TokenizeDecodeAndInMemoryLoadAgree) {
  auto m = LlamaModel::load(test::model("cb-dense-12l-F16.gguf"), {.n_threads = 2});
  EXPECT_EQ(m->n_vocab(), 8192);
  EXPECT_EQ(m->n_layer(), 12);
  const auto toks = m->tokenize("The configuration file is read at startup.", true);
  ASSERT_GT(toks.size(), 4u);
  EXPECT_EQ(toks[0], m->add_bos() ? m->bos() : toks[0]);
  const std::string back = m->detokenize(toks, /*remove_special=*/true);
  EXPECT_NE(back.find("configuration file"), std::string::npos) << back;

  const auto a = last_logits(*m, toks);
  auto mem = LlamaModel::load(test::model("cb-dense-12l-F16.gguf"),
                              {.n_threads = 2, .swappable = true});
  EXPECT_FALSE(mem->tensor_handles("blk.0.attn_q.weight").empty());
  const auto b = last_logits(*mem, toks);
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(std::isfinite(a[i]));
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - b[i])));
  }
  EXPECT_LT(max_diff, 1e-4);

  // A requantized tensor changes the output, but not by much.
  auto q = LlamaModel::load(test::model("cb-dense-12l-F16.gguf"),
                            {.n_threads = 2, .swappable = true,
                             .tensor_types = {{"blk.3.ffn_down.weight", "q4_K"}}});
  const auto c = last_logits(*q, toks);
  double diff_q = 0;
  for (size_t i = 0; i < a.size(); ++i) diff_q = std::max(diff_q, double(std::fabs(a[i] - c[i])));
  EXPECT_GT(diff_q, 1e-4);
  EXPECT_LT(diff_q, 5.0);
}

// Counts what a caller's own eval callback is asked and told (it wants every
// matrix product), to check it still sees all of them behind the releaser.
struct MatMulWatch {
  int asked = 0, told = 0;
  static bool cb(ggml_tensor* t, bool ask, void* ud) {
    auto* w = static_cast<MatMulWatch*>(ud);
    if (ask) {
      ++w->asked;
      return t->op == GGML_OP_MUL_MAT;
    }
    ++w->told;
    return true;
  }
};

struct MappedDecode {
  std::vector<float> logits;
  int64_t resident_bytes = 0, mapped_bytes = 0, released_bytes = 0;
  MatMulWatch watch;
};

MappedDecode decode_mapped(bool release) {
  const std::string path = test::model("cb-dense-12l-F16.gguf");
  auto m = LlamaModel::load(path, {.n_threads = 2, .release_mapped_pages = release});
  EXPECT_EQ(m->released_ranges().empty(), !release);
  MappedDecode out;
  LlamaContext ctx(*m, {.n_ctx = 64, .n_batch = 64, .n_seq = 1, .n_threads = 2,
                        .cb_eval = &MatMulWatch::cb, .cb_eval_user_data = &out.watch});
  const auto toks = m->tokenize("The configuration file is read at startup, then the cache.", true);
  TokenBatch batch(64);
  for (size_t i = 0; i < toks.size(); ++i) batch.add(toks[i], static_cast<int32_t>(i), 0, true);
  ctx.decode(batch);
  const float* l = ctx.logits(batch.size() - 1);
  out.logits.assign(l, l + m->n_vocab());
  const std::vector<AddressRange> ranges = mapped_ranges_of(path);
  for (const auto& [b, e] : ranges) out.mapped_bytes += static_cast<int64_t>(e - b);
  out.resident_bytes = resident_bytes_of(ranges);
  out.released_bytes = ctx.released_bytes();
  return out;
}

TEST(EvalLlamaModel, MappedPagesAreReleasedLayerByLayerWithTheSameLogits) {
  const MappedDecode kept = decode_mapped(false), released = decode_mapped(true);
  ASSERT_GT(kept.mapped_bytes, 20 << 20);  // the 30 MB F16, mapped once in each run
  // Every layer's weights were read: most of the file is mapped in...
  EXPECT_GT(kept.resident_bytes, kept.mapped_bytes / 2);
  EXPECT_EQ(kept.released_bytes, 0);
  // ...unless each layer's pages go once it is done (the output matrix too).
  EXPECT_LT(released.resident_bytes, released.mapped_bytes / 10);
  EXPECT_GT(released.released_bytes, released.mapped_bytes / 2);
  EXPECT_EQ(kept.logits, released.logits);  // the same bytes, read again
  // The caller's own callback is asked and told as without the releaser.
  EXPECT_GT(kept.watch.told, 12 * 4);
  EXPECT_EQ(kept.watch.asked, released.watch.asked);
  EXPECT_EQ(kept.watch.told, released.watch.told);
}

TEST(EvalLlamaModel, BadFilesThrow) {
  EXPECT_THROW(LlamaModel::load(test::shared("models/none.gguf")), InputError);
  EXPECT_THROW(LlamaModel::load(test::model("fixtures/tinyllamas-stories-260k-f32.ggufv1.gguf")),
               InputError);
}

TEST(EvalLlamaModel, APartialOffloadKeepsRoomForTheWeightsItCopies) {
  const std::string path = test::model("cb-dense-12l-F16.gguf");
  const GgufFile g(path);
  int64_t layer = 0, output = 0;  // every layer of the dense model is the same size
  for (int64_t i = 0; i < g.n_tensors(); ++i) {
    const std::string name = g.tensor_name(i);
    if (name.rfind("blk.0.", 0) == 0) layer += static_cast<int64_t>(g.tensor_size_bytes(i));
    if (name.rfind("output", 0) == 0) output += static_cast<int64_t>(g.tensor_size_bytes(i));
  }
  ASSERT_GT(layer, 0);
  const int64_t reserve = 1000;
  // 5 layers on the device: their weights, the reserve and the largest of a
  // host layer and the output matrix (op offload copies it over).
  const int64_t five = 5 * layer + reserve + std::max(layer, output);
  EXPECT_EQ(fit_gpu_layers(path, 999, five, reserve), 5);
  EXPECT_EQ(fit_gpu_layers(path, 999, five - 1, reserve), 4);
  EXPECT_EQ(fit_gpu_layers(path, 3, five, reserve), 3);  // never more than asked
  // Everything on the device: nothing is copied, so no room kept for it.
  const int64_t all = 12 * layer + output + reserve;
  EXPECT_EQ(fit_gpu_layers(path, 999, all, reserve), 13);
  // A byte short of that: 12 layers with the output left on the host do not
  // fit either (the output is then copied), 11 do.
  EXPECT_EQ(fit_gpu_layers(path, 999, all - 1, reserve), 11);
}

}  // namespace
}  // namespace cb::engine
