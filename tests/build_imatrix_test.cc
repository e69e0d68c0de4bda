// imatrix I/O against files written by stock llama-imatrix (GGUF and legacy .dat).
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "build_test_util.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/imatrix/imatrix.h"

namespace cb {
namespace {

TEST(BuildImatrix, ReadsStockGgufAndRoundTrips) {
  const std::string src = test::dense_imatrix("gguf");
  ASSERT_FALSE(src.empty());
  const Imatrix im = read_imatrix(src);
  EXPECT_FALSE(im.legacy);
  EXPECT_EQ(im.chunk_count, 8);
  EXPECT_EQ(im.chunk_size, 512);
  ASSERT_EQ(im.datasets.size(), 1u);
  EXPECT_NE(im.datasets[0].find("docs-en-calib.txt"), std::string::npos);
  // 12 layers x 7 matmul weights (q, k, v, o, gate, up, down) + output.
  EXPECT_GE(im.entries.size(), 84u);
  const ImatrixEntry* q = im.find("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->n_cols(), 256);
  ASSERT_EQ(q->counts.size(), 1u);
  EXPECT_EQ(q->counts[0], 8 * 512);
  const auto w = im.weights_for("blk.0.attn_q.weight");
  ASSERT_EQ(w.size(), 256u);
  EXPECT_FLOAT_EQ(w[3], q->sums[3] / 4096.0f);
  EXPECT_TRUE(im.weights_for("no.such.weight").empty());

  const std::string out = test::temp_dir("imatrix-rt") + "/rt.gguf";
  write_imatrix_gguf(im, out);
  const Imatrix back = read_imatrix(out);
  EXPECT_EQ(back.chunk_count, im.chunk_count);
  EXPECT_EQ(back.chunk_size, im.chunk_size);
  EXPECT_EQ(back.datasets, im.datasets);
  ASSERT_EQ(back.entries.size(), im.entries.size());
  for (const auto& [name, e] : im.entries) {
    ASSERT_NE(back.find(name), nullptr) << name;
    EXPECT_EQ(back.find(name)->sums, e.sums) << name;
    EXPECT_EQ(back.find(name)->counts, e.counts) << name;
  }
  // Same container as stock writes: the files are byte-identical.
  EXPECT_EQ(sha256_file(out), sha256_file(src));
}

TEST(BuildImatrix, LegacyDatGivesSameWeightsAsGguf) {
  const std::string dat = test::dense_imatrix("dat");
  const std::string gguf = test::dense_imatrix("gguf");
  ASSERT_FALSE(dat.empty());
  const Imatrix a = read_imatrix(dat);
  const Imatrix b = read_imatrix(gguf);
  EXPECT_TRUE(a.legacy);
  EXPECT_EQ(a.chunk_count, 8);
  ASSERT_EQ(a.entries.size(), b.entries.size());
  for (const auto& [name, e] : b.entries) {
    const auto wa = a.weights_for(name), wb = b.weights_for(name);
    ASSERT_EQ(wa.size(), wb.size()) << name;
    for (size_t i = 0; i < wa.size(); ++i) ASSERT_NEAR(wa[i], wb[i], 1e-5f * std::fabs(wb[i]) + 1e-12f) << name;
  }
  // dat -> gguf -> read keeps the weights exactly.
  const std::string dir = test::temp_dir("imatrix-dat-rt");
  write_imatrix_gguf(a, dir + "/from-dat.gguf");
  const Imatrix c = read_imatrix(dir + "/from-dat.gguf");
  for (const auto& [name, e] : a.entries) EXPECT_EQ(c.weights_for(name), a.weights_for(name)) << name;
  // gguf -> dat -> read is the stock legacy writer's arithmetic.
  write_imatrix_dat(b, dir + "/from-gguf.dat");
  EXPECT_EQ(sha256_file(dir + "/from-gguf.dat"), sha256_file(dat));
}

TEST(BuildImatrix, RejectsGarbageAndMissingFiles) {
  const std::string dir = test::temp_dir("imatrix-bad");
  EXPECT_THROW(read_imatrix(dir + "/nope.gguf"), InputError);
  write_file_atomic(dir + "/zero.dat", std::string(16, '\0'));
  EXPECT_THROW(read_imatrix(dir + "/zero.dat"), InputError);
  write_file_atomic(dir + "/trunc.dat", std::string("\x01\x00\x00\x00\x05\x00\x00\x00" "abc", 11));
  EXPECT_THROW(read_imatrix(dir + "/trunc.dat"), InputError);
  const std::string gguf = test::dense_imatrix("gguf");
  ASSERT_FALSE(gguf.empty());
  const std::string bytes = read_file(gguf);
  write_file_atomic(dir + "/trunc.gguf", bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(read_imatrix(dir + "/trunc.gguf"), InputError);
}

}  // namespace
}  // namespace cb
