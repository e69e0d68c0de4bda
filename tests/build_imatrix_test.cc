// imatrix I/O against files written by stock llama-imatrix (GGUF and legacy .dat).
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "build_test_util.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/eval/imatrix_compute.h"
#include "cerebellum/imatrix/imatrix.h"
#include "cerebellum/inspect/inspect.h"

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

namespace cb {
namespace {

// Issue 15: NaN, negative and zero values were accepted and degraded the build.
TEST(BuildImatrix, ImpossibleValuesAreRefusedNamingTheEntry) {
  const std::string dir = test::temp_dir("imatrix-values");
  const Imatrix good = read_imatrix(test::dense_imatrix("gguf"));
  const std::string name = "blk.2.ffn_up.weight";
  ASSERT_NE(good.find(name), nullptr);
  for (int c = 0; c < 4; ++c) {
    Imatrix bad = good;
    ImatrixEntry& e = bad.entries.at(name);
    if (c == 0) e.sums[7] = std::nanf("");
    if (c == 1) e.sums[7] = -1.0f;
    if (c == 2) e.sums[7] = INFINITY;
    if (c == 3) std::fill(e.counts.begin(), e.counts.end(), 0);
    const std::string path = fmt::format("{}/bad{}.gguf", dir, c);
    write_imatrix_gguf(bad, path);
    try {
      read_imatrix(path);
      ADD_FAILURE() << "accepted case " << c;
    } catch (const InputError& err) {
      EXPECT_NE(std::string(err.what()).find(name), std::string::npos) << err.what();
    }
  }
}

// Another model's imatrix was used for the tensors whose names matched, silently.
TEST(BuildImatrix, AnotherModelsImatrixIsAMismatchAndLowCoverageWarns) {
  const std::string dir = test::temp_dir("imatrix-other");
  const Imatrix good = read_imatrix(test::dense_imatrix("gguf"));
  const std::string build = fmt::format("{} build --source {} --base Q4_K_M --dry-run --imatrix ", test::cli_path(),
                                        test::model("cb-dense-12l-F16.gguf"));
  Imatrix other = good;  // shaped like a model with half the width
  ImatrixEntry& e = other.entries.at("blk.0.attn_q.weight");
  e.sums.resize(e.sums.size() / 2);
  write_imatrix_gguf(other, dir + "/other.gguf");
  auto r = test::run_command(build + dir + "/other.gguf");
  EXPECT_EQ(r.exit_code, 8) << r.output;
  EXPECT_NE(r.output.find("blk.0.attn_q.weight"), std::string::npos) << r.output;

  Imatrix partial;
  partial.chunk_count = good.chunk_count, partial.chunk_size = good.chunk_size;
  for (const auto& [name, entry] : good.entries) {
    if (partial.entries.size() < 8) partial.entries[name] = entry;
  }
  write_imatrix_gguf(partial, dir + "/partial.gguf");
  r = test::run_command(build + dir + "/partial.gguf");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("covers 8 of the 84 tensors"), std::string::npos) << r.output;
  r = test::run_command(build + test::dense_imatrix("gguf"));
  EXPECT_EQ(r.output.find("covers"), std::string::npos) << r.output;
}

// `imatrix --out x.dat` wrote GGUF.
TEST(BuildImatrix, OutputFormatFollowsTheExtensionOrFormat) {
  const std::string dir = test::temp_dir("imatrix-format");
  const std::string cmd = fmt::format("{} imatrix --model {} --text {} --chunks 2 --ctx 128 --threads 2 --out ",
                                      test::cli_path(), test::model("cb-dense-12l-F16.gguf"),
                                      test::data("docs-en-calib.txt"));
  for (const auto& [out, legacy] : {std::pair<std::string, bool>{dir + "/x.dat", true}, {dir + "/x.gguf", false},
                                   {dir + "/y.imatrix --format dat", true}}) {
    const auto r = test::run_command(cmd + out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const std::string path = out.substr(0, out.find(' '));
    EXPECT_EQ(read_file(path).substr(0, 4) == "GGUF", !legacy) << path;
    EXPECT_EQ(read_imatrix(path).legacy, legacy) << path;
  }
}

}  // namespace
}  // namespace cb

namespace cb {
namespace {

// `cerebellum imatrix` covers every tensor stock llama-imatrix covers, with
// the same weights. It once asked llama.cpp for the last token's logits only,
// so the last layer's FFN ran on a few rows and blk.11.ffn_* were missing
// (81 of 84 entries): imatrix-only types could not be built there.
TEST(BuildImatrix, ComputedCoversWhatStockCoversWithTheSameWeights) {
  const std::string dir = test::temp_dir("imatrix-parity");
  const std::string model = test::model("cb-dense-12l-F16.gguf"), text = test::data("docs-en-calib.txt");
  auto r = test::run_command(fmt::format("{} -q imatrix --model {} --text {} --chunks 2 --threads 2 --out {}/ours.gguf",
                                         test::cli_path(), model, text, dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_command(fmt::format("{} -m {} -f {} -c 512 --chunks 2 -nr -t 2 -o {}/stock.gguf",
                                    test::stock_tool("llama-imatrix"), model, text, dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Imatrix ours = read_imatrix(dir + "/ours.gguf"), stock = read_imatrix(dir + "/stock.gguf");
  ASSERT_EQ(ours.entries.size(), stock.entries.size());
  for (const auto& [name, e] : stock.entries) {
    ASSERT_TRUE(ours.find(name)) << name;
    const auto a = ours.weights_for(name), b = stock.weights_for(name);
    ASSERT_EQ(a.size(), b.size()) << name;
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
    EXPECT_LT(std::sqrt(num / den), 1e-3) << name;  // summation order differs, nothing else
  }
}

// Through a q4_0 skeleton whose weights point at the model file's bytes a
// layer at a time, the imatrix is the one the model loaded itself gives, bit
// for bit (the same activations), on a llama and on a hybrid MoE.
TEST(BuildImatrix, ThroughASkeletonEqualsTheModelLoaded) {
  const std::string text = read_file(test::data("docs-en-calib.txt"));
  for (const char* name : {"cb-dense-12l-F16.gguf", "cb-hybrid-moe-F16.gguf"}) {
    const std::string model = test::model(name);
    eval::ImatrixOptions opts{.ctx = 128, .max_chunks = 2, .n_threads = 2};
    const Imatrix loaded = eval::compute_imatrix(model, text, "docs", opts);
    for (const TensorInfo& t : inspect_model(model).tensors) {
      if (t.stock_quantizable && t.shape.size() >= 2 && t.row_elems() % 32 == 0) opts.skeleton_types[t.name] = "q4_0";
    }
    ASSERT_GT(opts.skeleton_types.size(), 10u);
    opts.work_dir = test::temp_dir("imatrix-skeleton");
    const Imatrix viewed = eval::compute_imatrix(model, text, "docs", opts);
    ASSERT_EQ(viewed.entries.size(), loaded.entries.size()) << name;
    for (const auto& [tensor, e] : loaded.entries) {
      ASSERT_TRUE(viewed.entries.count(tensor)) << tensor;
      EXPECT_EQ(viewed.entries.at(tensor).sums, e.sums) << name << " " << tensor;
      EXPECT_EQ(viewed.entries.at(tensor).counts, e.counts) << name << " " << tensor;
    }
  }
}

}  // namespace
}  // namespace cb
