// The quantization-error table on the real dense model: each value equals the
// error of the tensor in a file `cerebellum build` writes (same quantizer, same
// imatrix), threads do not change it, row sampling estimates it, bad input fails.
#include <cmath>
#include <memory>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "build_test_util.h"
#include "cerebellum/build/build.h"
#include "cerebellum/build/quant_error.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/imatrix/imatrix.h"
#include "engine/eval_quant.h"
#include "engine/quant_error.h"
#include "ggml.h"
#include "gguf.h"

namespace cb {
namespace {

const std::string& dense_path() {
  static const std::string p = test::model("cb-dense-12l-F16.gguf");
  return p;
}

// All tensors of a GGUF, dequantized to F32.
std::map<std::string, std::vector<float>> read_f32(const std::string& path) {
  ggml_context* data = nullptr;
  gguf_context* g = gguf_init_from_file(path.c_str(), {/*no_alloc=*/false, &data});
  EXPECT_NE(g, nullptr) << path;
  std::map<std::string, std::vector<float>> out;
  for (int64_t i = 0; g && i < gguf_get_n_tensors(g); ++i) {
    const ggml_tensor* t = ggml_get_tensor(data, gguf_get_tensor_name(g, i));
    out[t->name] = engine::dequantize_to_f32(t->type, t->data, ggml_nelements(t));
  }
  if (g) gguf_free(g);
  if (data) ggml_free(data);
  return out;
}

double rel_mse(const std::vector<float>& x, const std::vector<float>& y, const std::vector<float>& w) {
  double num = 0, den = 0;
  for (size_t k = 0; k < x.size(); ++k) {
    const double wk = w.empty() ? 1.0 : w[k % w.size()];
    num += wk * (x[k] - double(y[k])) * (x[k] - double(y[k]));
    den += wk * double(x[k]) * x[k];
  }
  return num / den;
}

void check_against_build(const std::string& imatrix_path) {
  const std::map<std::string, std::string> types = {
      {"blk.2.attn_k.weight", "q4_K"}, {"blk.4.ffn_down.weight", "iq4_xs"},
      {"blk.7.ffn_up.weight", "q2_K"}, {"blk.9.attn_output.weight", "iq3_s"}};
  engine::QuantErrorJob job;
  job.source = dense_path();
  job.n_threads = 2;
  std::shared_ptr<Imatrix> im;
  if (!imatrix_path.empty()) {
    im = std::make_shared<Imatrix>(read_imatrix(imatrix_path));
    job.imatrix_for = [im](const std::string& n) { return im->weights_for(n); };
  }
  for (const auto& [name, type] : types) job.types[name] = {type};
  const auto table = engine::compute_quant_error(job, {}, {});

  BuildOptions b;
  b.source = dense_path();
  b.out = test::temp_dir("qerror-build") + "/out.gguf";
  b.imatrix_path = imatrix_path;
  b.n_threads = 2;
  for (const auto& [name, type] : types) b.recipe.rules.push_back({name, type, 0});
  build_model(b);
  const auto src = read_f32(dense_path()), built = read_f32(b.out);
  for (const auto& [name, type] : types) {
    const auto& v = table.at(name).at(type);
    EXPECT_EQ(v.rows_used, v.rows_total) << name;
    EXPECT_EQ(v.weighted, im != nullptr) << name;
    const double expect = rel_mse(src.at(name), built.at(name), im ? im->weights_for(name) : std::vector<float>{});
    EXPECT_NEAR(v.rel_mse, expect, 1e-9 * expect) << name << " " << type;
  }
}

TEST(BuildQuantError, EqualsTheErrorOfTheBuiltFile) { check_against_build(""); }

TEST(BuildQuantError, ImatrixWeightedEqualsTheBuiltFile) {
  const std::string im = test::dense_imatrix("gguf");
  ASSERT_FALSE(im.empty());
  check_against_build(im);
}

TEST(BuildQuantError, OrderedDeterministicAndSampled) {
  engine::QuantErrorJob job;
  job.source = dense_path();
  const std::vector<std::string> ladder = {"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_0", "f16"};
  job.types["token_embd.weight"] = ladder;
  job.types["blk.0.ffn_gate.weight"] = ladder;
  job.types["blk.0.attn_k.weight"] = ladder;
  job.n_threads = 1;
  const auto one = engine::compute_quant_error(job, {}, {});
  job.n_threads = 3;
  const auto three = engine::compute_quant_error(job, {}, {});
  for (const auto& [name, by_type] : one) {
    for (size_t k = 0; k + 1 < ladder.size(); ++k) {
      EXPECT_EQ(by_type.at(ladder[k]).rel_mse, three.at(name).at(ladder[k]).rel_mse) << name;
      EXPECT_GT(by_type.at(ladder[k]).rel_mse, by_type.at(ladder[k + 1]).rel_mse) << name << " " << ladder[k];
    }
    EXPECT_EQ(by_type.at("f16").rel_mse, 0.0) << name;  // the source is F16
  }
  job.max_elements_per_tensor = 256 * 512;  // token_embd: 512 of 8192 rows
  const auto sampled = engine::compute_quant_error(job, {}, {});
  const auto& s = sampled.at("token_embd.weight").at("q4_K");
  EXPECT_EQ(s.rows_used, 512);
  EXPECT_EQ(s.rows_total, 8192);
  EXPECT_NEAR(s.rel_mse, one.at("token_embd.weight").at("q4_K").rel_mse,
              0.05 * one.at("token_embd.weight").at("q4_K").rel_mse);
  const auto& k = sampled.at("blk.0.attn_k.weight").at("q4_K");  // 256 x 128: all rows
  EXPECT_EQ(k.rows_used, 128);
  EXPECT_EQ(k.rows_total, 128);
}

// The default row sample against the exact table (every row) on cb-dense-12l:
// each sampled value within 4 of its own standard errors of the exact one,
// and every standard error within the target.
TEST(BuildQuantError, DefaultSampleHoldsItsStatedBound) {
  QuantErrorOptions exact, sampled;
  exact.types = sampled.types = {"q2_K", "q4_K", "q6_K", "iq4_xs", "q5_0"};
  exact.n_threads = sampled.n_threads = 2;
  exact.min_elements_per_tensor = exact.max_elements_per_tensor = int64_t{1} << 30;
  const QuantErrorReport e = compute_quant_error_table(dense_path(), exact);
  const QuantErrorReport s = compute_quant_error_table(dense_path(), sampled);
  EXPECT_EQ(e.n_sampled_tensors, 0);
  EXPECT_GE(s.n_sampled_tensors, 2);  // token_embd and output (2 Mi elements) at least
  EXPECT_LE(s.max_rel_se, sampled.target_rel_se);
  int n_checked = 0;
  for (const auto& [tensor, by_type] : s.table.rel_mse) {
    for (const auto& [type, v] : by_type) {
      const double truth = e.table.rel_mse.at(tensor).at(type);
      const double se = s.rel_mse_se.at(tensor).at(type);
      if (se == 0) {
        EXPECT_EQ(v, truth) << tensor << " " << type;
      } else {
        EXPECT_LE(std::abs(v - truth), 4 * se) << tensor << " " << type << " truth " << truth;
        ++n_checked;
      }
    }
  }
  EXPECT_GT(n_checked, 0);
}

TEST(BuildQuantError, TableCoversCandidatesAndBadInputFails) {
  QuantErrorOptions o;
  o.types = {"q4_K", "iq4_xs", "iq2_xs", "iq3_xxs"};
  o.n_threads = 2;
  o.min_elements_per_tensor = o.max_elements_per_tensor;  // a fixed sample: all rows here
  const QuantErrorReport r = compute_quant_error_table(dense_path(), o);
  EXPECT_EQ(r.n_tensors, 86);  // every stock-quantizable tensor
  EXPECT_EQ(r.n_sampled_tensors, 0);
  EXPECT_EQ(r.table.weighting, "uniform");
  // No imatrix: iq2_xs nowhere; iq3_xxs only where stock exempts (token_embd, output).
  EXPECT_FALSE(r.table.find("blk.0.attn_q.weight", "iq2_xs"));
  EXPECT_FALSE(r.table.find("blk.0.attn_q.weight", "iq3_xxs"));
  EXPECT_TRUE(r.table.find("output.weight", "iq3_xxs"));
  EXPECT_TRUE(r.table.find("blk.0.attn_q.weight", "iq4_xs"));
  EXPECT_FALSE(r.table.find("blk.0.attn_norm.weight", "q4_K"));  // stock refuses norms
  const nlohmann::json j = to_json(r);
  EXPECT_EQ(j["schema"], kQuantErrorSchema);
  const QuantErrorTable back = quant_error_from_json(j, "rt");
  EXPECT_EQ(back.rel_mse, r.table.rel_mse);

  o.types = {"q4_K", "q9_Z"};
  EXPECT_THROW(compute_quant_error_table(dense_path(), o), RecipeError);
  o.types = {"q4_K"};
  EXPECT_THROW(compute_quant_error_table(test::model("fixtures/tinyllamas-stories-260k-f32.ggufv1.gguf"), o),
               InputError);
  const std::string dir = test::temp_dir("qerror-cli");
  auto res = test::run_command(fmt::format("{} qerror --source {} --types q4_K,bogus --out {}/t.json",
                                           test::cli_path(), dense_path(), dir));
  EXPECT_EQ(res.exit_code, 4) << res.output;
}

}  // namespace
}  // namespace cb
