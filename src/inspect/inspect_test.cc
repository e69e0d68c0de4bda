#include "cerebellum/inspect/inspect.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "test_paths.h"

namespace cb {
namespace {

TEST(Roles, NamesMapToRoles) {
  EXPECT_EQ(tensor_role("blk.3.attn_q.weight"), "attn_q");
  EXPECT_EQ(tensor_role("blk.3.ffn_down.weight"), "ffn_down");
  EXPECT_EQ(tensor_role("blk.1.ffn_gate_inp.weight"), "router");
  EXPECT_EQ(tensor_role("blk.1.ffn_up_exps.weight"), "ffn_up_exps");
  EXPECT_EQ(tensor_role("blk.1.ffn_up_shexp.weight"), "ffn_up_shexp");
  EXPECT_EQ(tensor_role("blk.0.ssm_in.weight"), "ssm_in");
  EXPECT_EQ(tensor_role("blk.0.attn_norm.weight"), "norm");
  EXPECT_EQ(tensor_role("output_norm.weight"), "norm");
  EXPECT_EQ(tensor_role("token_embd.weight"), "token_embd");
  EXPECT_EQ(tensor_role("output.weight"), "output");
  EXPECT_EQ(tensor_layer("blk.11.attn_k.weight"), 11);
  EXPECT_EQ(tensor_layer("output.weight"), -1);
}

TEST(Inspect, DenseModel) {
  const ModelInfo info = inspect_model(test::model("cb-dense-12l-F16.gguf"));
  EXPECT_EQ(info.arch, "llama");
  EXPECT_EQ(info.n_layers, 12);
  EXPECT_EQ(info.tensors.size(), 111u);
  EXPECT_EQ(info.file_size_bytes, 27471424);
  const TensorInfo* q = info.find("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, "f16");
  EXPECT_EQ(q->shape, (std::vector<int64_t>{256, 256}));
  EXPECT_EQ(q->size_bytes, 256 * 256 * 2);
  EXPECT_TRUE(q->stock_quantizable);
  EXPECT_NE(std::find(q->fitting_types.begin(), q->fitting_types.end(), "q2_K"),
            q->fitting_types.end());
  const TensorInfo* norm = info.find("blk.0.attn_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_FALSE(norm->stock_quantizable);
  // Header + tensor data adds up to the file.
  int64_t data = 0;
  for (const auto& t : info.tensors) data += t.size_bytes;
  EXPECT_LE(info.data_offset_bytes + data, info.file_size_bytes);
}

TEST(Inspect, HybridMoeRoles) {
  const ModelInfo info = inspect_model(test::model("cb-hybrid-moe-F16.gguf"));
  const auto roles = info.by_role();
  for (const char* r : {"router", "ffn_up_exps", "ffn_down_shexp", "ssm_in", "ssm_conv1d"}) {
    EXPECT_TRUE(roles.count(r)) << r;
  }
  for (const auto& t : info.tensors) {
    if (t.role == "router" || t.role == "ssm_conv1d") EXPECT_FALSE(t.stock_quantizable) << t.name;
    if (t.role == "ffn_up_exps") EXPECT_EQ(t.shape.size(), 3u) << t.name;
  }
}

TEST(Inspect, StoriesRowsFitNoKQuant) {
  const ModelInfo info = inspect_model(test::model("stories260K.gguf"));
  for (const auto& t : info.tensors) {
    for (const auto& f : t.fitting_types) EXPECT_NE(f, "q4_K") << t.name;
  }
}

TEST(Inspect, BadInputs) {
  const std::string dir = test::temp_dir("inspect-bad");
  EXPECT_THROW(inspect_model(dir + "/missing.gguf"), InputError);
  EXPECT_THROW(inspect_model(test::model("fixtures/tinyllamas-stories-260k-f32.ggufv1.gguf")),
               InputError);
  // Truncated copy of a real model.
  const std::string src = read_file(test::model("stories260K.gguf"));
  for (size_t cut : {size_t(10), size_t(2000), src.size() / 2}) {
    const std::string path = dir + "/cut.gguf";
    std::ofstream(path, std::ios::binary).write(src.data(), static_cast<std::streamsize>(cut));
    EXPECT_THROW(inspect_model(path), InputError) << cut;
  }
  const std::string junk = dir + "/junk.gguf";
  std::ofstream(junk) << "this is not a gguf file at all";
  try {
    inspect_model(junk);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not a GGUF"), std::string::npos);
  }
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_bytes("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_bytes("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // Files hash the same through either implementation (OpenSSL when built in).
  const std::string path = ::testing::TempDir() + "/cb-sha-abc.txt";
  write_file_atomic(path, "abc");
  EXPECT_EQ(sha256_file(path), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string big(5 << 20, 'x');  // more than one read buffer
  write_file_atomic(path + ".big", big);
  EXPECT_EQ(sha256_file(path + ".big"), sha256_bytes(big.data(), big.size()));
}

}  // namespace
}  // namespace cb
