// The GGUF writer on a small synthetic file (no model needed): the dry run
// predicts the written size to the byte, the bytes are ggml's own quantizer's,
// slab size does not change them, and the in-memory converter used for
// resident swaps gives the same bytes as the file (the measured types are the
// built types).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cerebellum/common/error.h"
#include "engine/engine.h"
#include "engine/gguf_writer.h"
#include "ggml.h"
#include "synthetic_gguf.h"
#include "test_paths.h"

namespace cb::engine {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> tensor_bytes(const std::string& path, const std::string& name) {
  const GgufFile f(path);
  const int64_t i = f.find_tensor(name);
  EXPECT_GE(i, 0) << name;
  std::vector<uint8_t> out(f.tensor_size_bytes(i));
  FILE* fp = std::fopen(path.c_str(), "rb");
  std::fseek(fp, static_cast<long>(f.data_offset() + f.tensor_offset(i)), SEEK_SET);
  EXPECT_EQ(std::fread(out.data(), 1, out.size(), fp), out.size());
  std::fclose(fp);
  return out;
}

class GgufWriter : public ::testing::Test {
 protected:
  void SetUp() override {
    ensure_backend();
    dir_ = test::temp_dir("gguf-writer");
    src_ = test::write_synthetic_gguf(dir_ + "/synthetic.gguf");
  }
  QuantizeJob job(const std::string& out, const std::string& type) const {
    QuantizeJob j;
    j.source = src_.path;
    j.out = out;
    j.types["blk.0.ffn_up.weight"] = type;
    j.n_threads = 2;
    return j;
  }
  std::string dir_;
  test::SyntheticGguf src_;
};

TEST_F(GgufWriter, DryRunPredictsTheWrittenSizeAndTheBytesAreGgmlsQuantizer) {
  for (const std::string type : {"q4_K", "q8_0", "iq4_nl", "q2_K"}) {
    SCOPED_TRACE(type);
    const std::string out = dir_ + "/" + type + ".gguf";
    QuantizeJob dry = job(out, type);
    dry.dry_run = true;
    const WriteResult predicted = quantize_gguf(dry, Logger{}, ProgressFn{});
    EXPECT_FALSE(fs::exists(out));
    const WriteResult written = quantize_gguf(job(out, type), Logger{}, ProgressFn{});
    EXPECT_EQ(predicted.output_size_bytes, written.output_size_bytes);
    EXPECT_EQ(written.output_size_bytes, static_cast<int64_t>(fs::file_size(out)));

    const auto t = static_cast<ggml_type>([&] {
      for (int id = 0; id < GGML_TYPE_COUNT; ++id) {
        if (ggml_get_type_traits(static_cast<ggml_type>(id))->type_name == type) return id;
      }
      return -1;
    }());
    std::vector<uint8_t> want(ggml_row_size(t, 512) * 8);
    ggml_quantize_chunk(t, src_.w.data(), want.data(), 0, 8, 512, nullptr);
    EXPECT_EQ(tensor_bytes(out, "blk.0.ffn_up.weight"), want);
    // Untouched tensors are copied as they are.
    const auto norm = tensor_bytes(out, "blk.0.ffn_norm.weight");
    EXPECT_EQ(norm, tensor_bytes(src_.path, "blk.0.ffn_norm.weight"));
  }
}

TEST_F(GgufWriter, SlabSizeDoesNotChangeTheBytesAndSwapsConvertTheSameBytes) {
  QuantizeJob big = job(dir_ + "/big.gguf", "q4_K");
  QuantizeJob small = job(dir_ + "/small.gguf", "q4_K");
  small.max_slab_bytes = 1;  // one row at a time
  quantize_gguf(big, Logger{}, ProgressFn{});
  quantize_gguf(small, Logger{}, ProgressFn{});
  const auto file_bytes = tensor_bytes(big.out, "blk.0.ffn_up.weight");
  EXPECT_EQ(file_bytes, tensor_bytes(small.out, "blk.0.ffn_up.weight"));

  const TensorSource source(src_.path);
  std::vector<uint8_t> swapped;
  const int64_t n = source.convert("blk.0.ffn_up.weight", "q4_K", {}, 2, [&](const void* p, size_t size) {
    swapped.insert(swapped.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + size);
  });
  EXPECT_EQ(n, static_cast<int64_t>(swapped.size()));
  EXPECT_EQ(swapped, file_bytes);
}

TEST_F(GgufWriter, RowsThatDoNotFitTheTypeAndUnknownTensorsAreRecipeErrors) {
  QuantizeJob bad = job(dir_ + "/bad.gguf", "q4_K");
  bad.types["blk.0.attn_k.weight"] = "q4_K";  // 96 columns, 256-element blocks
  EXPECT_THROW(quantize_gguf(bad, Logger{}, ProgressFn{}), RecipeError);
  EXPECT_FALSE(fs::exists(bad.out));
  const TensorSource source(src_.path);
  auto sink = [](const void*, size_t) {};
  EXPECT_THROW(source.convert("blk.9.nope.weight", "q4_K", {}, 1, sink), RecipeError);
  EXPECT_THROW(source.convert("blk.0.attn_k.weight", "q4_K", {}, 1, sink), RecipeError);
  EXPECT_THROW(source.convert("blk.0.ffn_up.weight", "iq2_xxs", {}, 1, sink), RecipeError);  // needs an imatrix
}

// The quantizer's workers read the source rows themselves: a source cut
// short under an open TensorSource is an InputError from the caller's
// thread, not a crash in a worker.
TEST_F(GgufWriter, ASourceCutShortWhileConvertingIsAnInputError) {
  const std::string cut = dir_ + "/cut.gguf";
  fs::copy_file(src_.path, cut, fs::copy_options::overwrite_existing);
  const TensorSource source(cut);
  const GgufFile f(cut);
  const int64_t i = f.find_tensor("blk.0.ffn_up.weight");
  ASSERT_GE(i, 0);
  fs::resize_file(cut, f.data_offset() + f.tensor_offset(i) + 16);  // the tensor's first row, cut
  auto sink = [](const void*, size_t) {};
  EXPECT_THROW(source.convert("blk.0.ffn_up.weight", "q4_K", {}, 4, sink), InputError);
  EXPECT_THROW(source.convert("blk.0.ffn_up.weight", "q4_K", {}, 4, sink, 1), InputError);  // row by row
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::vector<uint8_t> out(fs::file_size(path));
  FILE* fp = std::fopen(path.c_str(), "rb");
  EXPECT_EQ(std::fread(out.data(), 1, out.size(), fp), out.size());
  std::fclose(fp);
  return out;
}

// The search's reloads and the gate's builds copy what the base mix already
// holds: the same file, with the donor's tensors read from the donor.
TEST_F(GgufWriter, ADonorOfTheSameOriginGivesTheSameBytesWithoutConvertingAgain) {
  QuantizeJob base = job(dir_ + "/base.gguf", "q4_K");
  base.types["blk.0.attn_k.weight"] = "q8_0";
  base.stamp_origin = true;
  EXPECT_EQ(quantize_gguf(base, Logger{}, ProgressFn{}).n_donated, 0);

  QuantizeJob own = job(dir_ + "/own.gguf", "q4_K");  // attn_k differs from the base mix
  own.types["blk.0.attn_k.weight"] = "q4_0";
  own.stamp_origin = true;
  quantize_gguf(own, Logger{}, ProgressFn{});
  QuantizeJob given = own;
  given.out = dir_ + "/given.gguf";
  given.donor = base.out;
  EXPECT_EQ(quantize_gguf(given, Logger{}, ProgressFn{}).n_donated, 1);  // ffn_up; attn_k converted
  EXPECT_EQ(file_bytes(given.out), file_bytes(own.out));

  // The donor's bytes are what is copied: a byte changed there shows up.
  const GgufFile b(base.out);
  const size_t at = b.data_offset() + b.tensor_offset(b.find_tensor("blk.0.ffn_up.weight")) + 5;
  FILE* fp = std::fopen(base.out.c_str(), "r+b");
  std::fseek(fp, static_cast<long>(at), SEEK_SET);
  std::fputc(0x5a ^ file_bytes(base.out)[at], fp);
  std::fclose(fp);
  fs::remove(given.out);
  quantize_gguf(given, Logger{}, ProgressFn{});
  EXPECT_NE(tensor_bytes(given.out, "blk.0.ffn_up.weight"), tensor_bytes(own.out, "blk.0.ffn_up.weight"));

  // But bytes a conversion could not have written (a NaN scale: the first
  // block's d, fp16 0x7e00) are not copied: from that row on, the tensor is
  // converted from the source, and the file is again a full conversion's.
  fp = std::fopen(base.out.c_str(), "r+b");
  std::fseek(fp, static_cast<long>(at - 5), SEEK_SET);
  std::fputc(0x00, fp);
  std::fputc(0x7e, fp);
  std::fclose(fp);
  fs::remove(given.out);
  EXPECT_EQ(quantize_gguf(given, Logger{}, ProgressFn{}).n_donated, 0);
  EXPECT_EQ(file_bytes(given.out), file_bytes(own.out));

  // Another imatrix, or a donor without the stamp: not read.
  QuantizeJob weighted = own;
  weighted.out = dir_ + "/weighted.gguf";
  weighted.donor = base.out;
  weighted.imatrix_for = [](const std::string& name) {
    return name == "blk.0.ffn_up.weight" ? std::vector<float>(512, 2.0f) : std::vector<float>{};
  };
  EXPECT_EQ(quantize_gguf(weighted, Logger{}, ProgressFn{}).n_donated, 0);
  QuantizeJob unstamped = job(dir_ + "/unstamped.gguf", "q4_K");
  quantize_gguf(unstamped, Logger{}, ProgressFn{});
  QuantizeJob from_unstamped = own;
  from_unstamped.out = dir_ + "/from-unstamped.gguf";
  from_unstamped.donor = unstamped.out;
  EXPECT_EQ(quantize_gguf(from_unstamped, Logger{}, ProgressFn{}).n_donated, 0);
  EXPECT_EQ(file_bytes(from_unstamped.out), file_bytes(own.out));
}

}  // namespace
}  // namespace cb::engine
