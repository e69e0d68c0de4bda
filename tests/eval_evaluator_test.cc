// Integration tests of the evaluator on cb-dense-12l (small ctx / few chunks).
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <regex>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/eval/evaluator.h"
#include "engine/engine.h"
#include "engine/gguf_writer.h"
#include "test_paths.h"

namespace cb::eval {
namespace {

const std::string kModel = test::model("cb-dense-12l-F16.gguf");

double stock_ppl(const std::string& model, const std::string& text, int ctx, int chunks) {
  const std::string pattern = "Final estimate: PPL = ([0-9.]+)";
  const auto r = test::run_stock_until(fmt::format("{} -m {} -f {} -c {} --chunks {} -t 2 -nr 2>&1",
                                                   test::stock_tool("llama-perplexity"), model, text,
                                                   ctx, chunks),
                                       pattern);
  std::smatch m;
  const std::regex re(pattern);
  if (r.exit_code != 0 || !std::regex_search(r.output, m, re)) {
    ADD_FAILURE() << r.output;
    return -1;
  }
  return std::stod(m[1]);
}

double eval_ppl(const std::string& model, const std::string& text, int ctx, int chunks) {
  Evaluator ev(model, read_file(text), {.ctx = ctx, .max_chunks = chunks, .n_threads = 2});
  return ev.run().ppl.ppl;
}

TEST(EvalEvaluator, PplMatchesLlamaPerplexity) {
  for (const std::string text : {test::data("wikitext-2-raw/wiki.test.raw"),
                                 test::data("docs-en-calib.txt")}) {
    const double stock = stock_ppl(kModel, text, 256, 4);
    const double ours = eval_ppl(kModel, text, 256, 4);
    EXPECT_NEAR(ours / stock, 1.0, 1e-3) << text << " stock " << stock << " ours " << ours;
  }
  // A stock Q4_K_M of the same model.
  const std::string dir = test::temp_dir("eval-q4km");
  const std::string q4 = dir + "/q4km.gguf";
  const auto q = test::run_command(fmt::format("{} {} {} Q4_K_M 2 2>&1",
                                               test::stock_tool("llama-quantize"), kModel, q4));
  ASSERT_EQ(q.exit_code, 0) << q.output;
  const std::string text = test::data("wikitext-2-raw/wiki.test.raw");
  const double stock = stock_ppl(q4, text, 256, 4);
  EXPECT_NEAR(eval_ppl(q4, text, 256, 4) / stock, 1.0, 1e-3);
}

TEST(EvalEvaluator, SwapsRestoreExactlyAndTrackExactMode) {
  const std::string text = read_file(test::data("docs-en-calib.txt"));
  const EvalOptions opts{.ctx = 128, .max_chunks = 4, .n_threads = 2, .top_k = 64};
  Evaluator ref(kModel, text, opts);
  const ReferenceStore store = ref.build_reference();
  EXPECT_EQ(store.n_tokens(), 4 * ref.scored_per_chunk());

  Evaluator ev(kModel, text, opts);
  TokenSeries base;
  const EvalSummary s0 = ev.run(&store, {}, &base);
  EXPECT_LT(s0.kld.mean_nats, 1e-6);  // same model: no divergence
  EXPECT_DOUBLE_EQ(s0.top1.mean, 1.0);

  const std::string tensor = "blk.2.ffn_down.weight";
  ev.set_tensor_type_simulated(tensor, "q2_K");
  TokenSeries sim;
  const EvalSummary s1 = ev.run(&store, {}, &sim);
  EXPECT_GT(s1.kld.mean_nats, 1e-4);
  const MeanSe d = paired_delta(sim.kld_nats, base.kld_nats);
  EXPECT_GT(d.mean, 3 * d.se);  // paired delta resolves the damage

  ev.restore_all();
  TokenSeries restored;
  ev.run(&store, {}, &restored);
  EXPECT_EQ(restored.nll_nats, base.nll_nats);  // bit-identical after restore

  EvalOptions exact_opts = opts;
  exact_opts.tensor_types = {{tensor, "q2_K"}};
  Evaluator exact(kModel, text, exact_opts);
  const EvalSummary s2 = exact.run(&store);
  EXPECT_NEAR(s1.kld.mean_nats, s2.kld.mean_nats, 0.1 * s2.kld.mean_nats + 1e-4);
}

// The source model's reference on `text` (the model released after).
ReferenceStore reference_of(const std::string& text, const EvalOptions& opts) {
  Evaluator ref(kModel, text, opts);
  return ref.build_reference();
}

// The resident mode's claim: a base mix loaded in real types with a unit
// swapped in place computes exactly what a model loaded fresh with the same
// types computes (same bytes, same kernels), and restore gives the base back.
TEST(EvalEvaluator, InPlaceRealSwapEqualsFreshLoad) {
  const std::string text = read_file(test::data("docs-en-calib.txt"));
  EvalOptions opts{.ctx = 128, .max_chunks = 3, .n_threads = 2, .top_k = 64};
  const ReferenceStore store = reference_of(text, opts);
  const std::map<std::string, std::string> base = {{"blk.1.attn_v.weight", "q4_K"},
                                                   {"blk.2.ffn_down.weight", "q4_K"},
                                                   {"blk.4.ffn_up.weight", "q5_K"},
                                                   {"output.weight", "q6_K"}};
  opts.work_dir = test::temp_dir("eval-swap");
  opts.tensor_types = base;
  Evaluator ev(kModel, text, opts);
  TokenSeries b0;
  ev.run(&store, {}, &b0);

  // Swap two tensors: one from its base type, one the base left at F16.
  ev.set_tensor_type("blk.2.ffn_down.weight", "q2_K");
  ev.set_tensor_type("blk.7.attn_q.weight", "iq4_nl");
  TokenSeries swapped;
  const EvalSummary s1 = ev.run(&store, {}, &swapped);

  EvalOptions fresh_opts = opts;
  fresh_opts.tensor_types["blk.2.ffn_down.weight"] = "q2_K";
  fresh_opts.tensor_types["blk.7.attn_q.weight"] = "iq4_nl";
  TokenSeries fresh;
  {
    Evaluator f(kModel, text, fresh_opts);
    f.run(&store, {}, &fresh);
  }
  EXPECT_EQ(swapped.kld_nats, fresh.kld_nats);  // bit-identical on the CPU backend
  EXPECT_EQ(swapped.nll_nats, fresh.nll_nats);
  const MeanSe d = paired_delta(swapped.kld_nats, b0.kld_nats);
  EXPECT_GT(d.mean, 3 * d.se) << s1.kld.mean_nats;

  ev.restore_all();
  TokenSeries back;
  ev.run(&store, {}, &back);
  EXPECT_EQ(back.nll_nats, b0.nll_nats);
  EXPECT_EQ(ev.tensor_types().at("blk.2.ffn_down.weight"), "q4_K");
  EXPECT_THROW(ev.set_tensor_type("no.such.weight", "q2_K"), RecipeError);
}

// The same claim with the CPU's weights repacked as stock llama.cpp does
// (EvalOptions::cpu_repack): a swap lands where a fresh load would put the
// tensor (repacked or not, by its new type: from q4_K, from F16, into a type
// the repacking does not take), so the two compute the same bits; restore
// gives the base back. The repacked kernels are really used: the base's
// results are not those of the same model unrepacked (close, not equal).
TEST(EvalEvaluator, RepackedSwapEqualsRepackedFreshLoad) {
  if (!engine::cpu_repack_buffer_type()) GTEST_SKIP() << "no CPU repacking here (a GPU, AMX or none built)";
  const std::string text = read_file(test::data("docs-en-calib.txt"));
  EvalOptions opts{.ctx = 128, .max_chunks = 3, .n_threads = 2, .top_k = 64};
  const ReferenceStore store = reference_of(text, opts);
  opts.work_dir = test::temp_dir("eval-repack");
  opts.tensor_types = {{"blk.1.attn_v.weight", "q4_K"}, {"blk.2.ffn_down.weight", "q4_K"},
                       {"blk.3.ffn_gate.weight", "q4_K"}, {"output.weight", "q6_K"}};
  TokenSeries plain;
  {
    Evaluator p(kModel, text, opts);
    p.run(&store, {}, &plain);
  }
  opts.cpu_repack = true;
  Evaluator ev(kModel, text, opts);
  TokenSeries b0;
  ev.run(&store, {}, &b0);
  EXPECT_NE(b0.nll_nats, plain.nll_nats);
  // Another summation order, token by token up to ~3e-3 nats here; on the
  // mean as close as llama-perplexity's PPL with and without -nr (1e-4 apart
  // on cb-dense Q4_K_M, 10 chunks: docs/measure.md).
  const auto mean = [](const std::vector<float>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); };
  EXPECT_NEAR(mean(b0.nll_nats) / mean(plain.nll_nats), 1.0, 1e-3);
  const std::map<std::string, std::string> swaps = {{"blk.2.ffn_down.weight", "q2_K"},
                                                    {"blk.7.attn_q.weight", "iq4_nl"},
                                                    {"blk.3.ffn_gate.weight", "q3_K"}};
  for (const auto& [name, type] : swaps) ev.set_tensor_type(name, type);
  TokenSeries swapped;
  ev.run(&store, {}, &swapped);
  EvalOptions fresh_opts = opts;
  for (const auto& [name, type] : swaps) fresh_opts.tensor_types[name] = type;
  TokenSeries fresh;
  {
    Evaluator f(kModel, text, fresh_opts);
    f.run(&store, {}, &fresh);
  }
  EXPECT_EQ(swapped.kld_nats, fresh.kld_nats);
  EXPECT_EQ(swapped.nll_nats, fresh.nll_nats);
  EXPECT_NE(swapped.nll_nats, b0.nll_nats);
  ev.restore_all();
  TokenSeries back;
  ev.run(&store, {}, &back);
  EXPECT_EQ(back.nll_nats, b0.nll_nats);
  EXPECT_EQ(back.kld_nats, b0.kld_nats);
}

// The reference pass without the source model loaded: the base mix's
// weights re-pointed at the source file's mapped bytes compute exactly what
// the F16 model loaded on its own computes (same types, same kernels), on a
// llama and on a hybrid MoE (3-D experts, SSM); the base mix and a swap made
// before come back; a file of another model is refused and changes nothing.
TEST(EvalEvaluator, ReferenceThroughAViewEqualsTheSourceModel) {
  const std::string text = read_file(test::data("docs-en-calib.txt"));
  const std::string moe = test::model("cb-hybrid-moe-F16.gguf");
  const std::map<std::string, std::map<std::string, std::string>> bases = {
      {kModel, {{"token_embd.weight", "q4_K"}, {"blk.0.attn_q.weight", "q2_K"}, {"blk.3.ffn_down.weight", "q4_K"},
                {"output.weight", "q6_K"}}},
      {moe, {{"token_embd.weight", "q4_K"}, {"blk.0.ffn_up_exps.weight", "q3_K"}, {"blk.1.ssm_in.weight", "q4_K"},
             {"blk.0.ffn_down_shexp.weight", "q5_K"}}}};
  for (const auto& [model, base] : bases) {
    EvalOptions opts{.ctx = 128, .max_chunks = 3, .n_threads = 2, .top_k = 64};
    ReferenceStore loaded;
    {
      Evaluator f16(model, text, opts);
      loaded = f16.build_reference();
    }
    opts.work_dir = test::temp_dir("eval-view");
    opts.tensor_types = base;
    Evaluator ev(model, text, opts);
    ASSERT_TRUE(ev.can_view_reference(model)) << model;
    TokenSeries before;
    ev.run(&loaded, {}, &before);
    const std::string swapped = base.rbegin()->first;
    ev.set_tensor_type(swapped, "q2_K");
    ReferenceStore viewed = ev.empty_reference();
    ev.extend_reference_from(model, viewed, 3);
    ASSERT_EQ(viewed.n_filled(), 3);
    ASSERT_EQ(viewed.n_tokens(), loaded.n_tokens());
    for (int64_t t = 0; t < loaded.n_tokens(); ++t) {
      ASSERT_EQ(viewed.target_log_prob(t), loaded.target_log_prob(t)) << model << " token " << t;
      ASSERT_EQ(viewed.tail_log_mass(t), loaded.tail_log_mass(t)) << model << " token " << t;
      for (int k = 0; k < loaded.top_k(); ++k) {
        ASSERT_EQ(viewed.ids(t)[k], loaded.ids(t)[k]) << t;
        ASSERT_EQ(viewed.log_probs(t)[k], loaded.log_probs(t)[k]) << t;
      }
    }
    // The base mix is back (the swap too was put back), bit for bit.
    EXPECT_EQ(ev.tensor_types().at(swapped), base.at(swapped));
    ReferenceStore again = ev.empty_reference();
    EXPECT_THROW(ev.extend_reference_from(test::model("stories260K.gguf"), again, 1), MismatchError);
    // The same tensors under other hyperparameters build another graph: not viewed.
    engine::QuantizeJob job;
    job.source = model;
    job.out = opts.work_dir + "/other-hparams.gguf";
    job.u32_kvs = {{engine::GgufFile(model).get_string("general.architecture") + ".context_length", 77}};
    engine::quantize_gguf(job, Logger{}, ProgressFn{});
    EXPECT_FALSE(ev.can_view_reference(job.out));
    EXPECT_THROW(ev.extend_reference_from(job.out, again, 1), MismatchError);
    TokenSeries after;
    ev.run(&loaded, {}, &after);
    EXPECT_EQ(after.nll_nats, before.nll_nats) << model;
    EXPECT_EQ(after.kld_nats, before.kld_nats) << model;
    EXPECT_GT(before.kld_nats.size(), 0u);
  }
}

// Units converted ahead on a background thread (measure's prefetch on a
// GPU) swap in the same bytes as a conversion at swap time; a prefetch of
// another type, or past its byte cap, is not used.
TEST(EvalEvaluator, PrefetchedSwapEqualsConvertedSwap) {
  const std::string text = read_file(test::data("docs-en-calib.txt"));
  EvalOptions opts{.ctx = 128, .max_chunks = 2, .n_threads = 2, .top_k = 16};
  const ReferenceStore store = reference_of(text, opts);
  opts.work_dir = test::temp_dir("eval-prefetch");
  opts.tensor_types = {{"blk.2.ffn_down.weight", "q4_K"}, {"output.weight", "q6_K"}};
  Evaluator ev(kModel, text, opts);
  using Unit = std::map<std::string, std::string>;
  const Unit unit = {{"blk.2.ffn_down.weight", "q2_K"}, {"blk.7.attn_q.weight", "iq4_nl"}};
  const Unit second = {{"blk.5.ffn_up.weight", "q3_K"}};
  auto run_unit = [&](const Unit& u) {
    for (const auto& [name, type] : u) ev.set_tensor_type(name, type);
    TokenSeries s;
    ev.run(&store, {}, &s);
    ev.restore_all();
    return s;
  };
  const TokenSeries converted = run_unit(unit), converted2 = run_unit(second);
  EXPECT_EQ(ev.prefetched_swaps(), 0);
  EXPECT_GT(ev.timings().swap_s, 0.0);  // conversions at swap time: the caller's time
  EXPECT_EQ(ev.timings().convert_ahead_s, 0.0);

  // Two units ahead: both served, in order, bit-equal.
  ASSERT_TRUE(ev.prefetch_tensor_types({unit, second}, int64_t{1} << 30));
  const TokenSeries prefetched = run_unit(unit);
  EXPECT_EQ(ev.prefetched_swaps(), 2);
  EXPECT_EQ(prefetched.kld_nats, converted.kld_nats);
  EXPECT_EQ(prefetched.nll_nats, converted.nll_nats);
  EXPECT_EQ(run_unit(second).kld_nats, converted2.kld_nats);
  EXPECT_EQ(ev.prefetched_swaps(), 3);
  EXPECT_GT(ev.timings().convert_ahead_s, 0.0);  // the background converter's time

  ASSERT_TRUE(ev.prefetch_tensor_types({{{"blk.2.ffn_down.weight", "q3_K"}}}, int64_t{1} << 30));
  EXPECT_EQ(run_unit(unit).kld_nats, converted.kld_nats);  // another type: converted at swap time
  EXPECT_EQ(ev.prefetched_swaps(), 3);
  EXPECT_FALSE(ev.prefetch_tensor_types({unit}, 1000));  // over the cap: nothing started
  EXPECT_EQ(run_unit(unit).kld_nats, converted.kld_nats);
  EXPECT_EQ(ev.prefetched_swaps(), 3);
  // A cap that holds the first unit only (blk.5.ffn_up as q3_K: 768 rows of
  // one 110-byte block): the next one converts at swap time.
  ASSERT_TRUE(ev.prefetch_tensor_types({second, unit}, 768 * 110 + 1000));
  EXPECT_EQ(run_unit(second).kld_nats, converted2.kld_nats);
  EXPECT_EQ(ev.prefetched_swaps(), 4);
  EXPECT_EQ(run_unit(unit).kld_nats, converted.kld_nats);
  EXPECT_EQ(ev.prefetched_swaps(), 4);
}

TEST(EvalEvaluator, ReferenceStoreRefusesOtherSettings) {
  const std::string dir = test::temp_dir("eval-ref");
  const std::string text = read_file(test::data("docs-en-calib.txt"));
  const EvalOptions opts{.ctx = 64, .max_chunks = 2, .n_threads = 2, .top_k = 8};
  Evaluator ev(kModel, text, opts);
  const std::string path = dir + "/ref.bin";
  const ReferenceStore built = load_or_build_reference(ev, path);
  const ReferenceStore again = load_or_build_reference(ev, path);  // reused from disk
  EXPECT_EQ(again.key(), built.key());
  EXPECT_EQ(again.target_log_prob(5), built.target_log_prob(5));

  Evaluator other_ctx(kModel, text, {.ctx = 128, .max_chunks = 2, .n_threads = 2, .top_k = 8});
  EXPECT_THROW(load_or_build_reference(other_ctx, path), MismatchError);
  Evaluator other_text(kModel, read_file(test::data("docs-code-calib.txt")), opts);
  EXPECT_THROW(load_or_build_reference(other_text, path), MismatchError);
  EXPECT_THROW(other_text.evaluate(0, 1, &built), MismatchError);
  ReferenceKey k = ev.reference_key();
  k.model_sha256 = "0000";
  EXPECT_THROW(ReferenceStore::load(path, k), MismatchError);
}

TEST(EvalEvaluator, LazyReferenceEqualsBuiltAndScoringOffsetCounts) {
  const std::string dir = test::temp_dir("eval-ref-lazy");
  const std::string text = read_file(test::data("docs-en-calib.txt"));
  const EvalOptions opts{.ctx = 64, .max_chunks = 4, .n_threads = 2, .top_k = 8, .first_scored = 8};
  Evaluator ev(kModel, text, opts);
  EXPECT_EQ(ev.scored_per_chunk(), 64 - 1 - 8);
  const ReferenceStore built = ev.build_reference();
  ReferenceStore lazy = ev.empty_reference();
  ev.extend_reference(lazy, 2);
  EXPECT_EQ(lazy.n_filled(), 2);
  EXPECT_THROW(ev.evaluate(2, 1, &lazy), MismatchError);  // chunk 2 not filled yet
  ev.extend_reference(lazy, 4);
  for (int64_t t = 0; t < built.n_tokens(); t += 17) {
    EXPECT_EQ(lazy.target_log_prob(t), built.target_log_prob(t)) << t;
    EXPECT_EQ(lazy.ids(t)[0], built.ids(t)[0]) << t;
  }
  // A partly filled cache on disk is completed by load_or_build_reference.
  ReferenceStore part = ev.empty_reference();
  ev.extend_reference(part, 1);
  part.save(dir + "/part.bin");
  const ReferenceStore full = load_or_build_reference(ev, dir + "/part.bin");
  EXPECT_EQ(full.n_filled(), 4);
  EXPECT_EQ(full.target_log_prob(built.n_tokens() - 1), built.target_log_prob(built.n_tokens() - 1));
  // Another scoring offset is another layout: refused.
  Evaluator half(kModel, text, {.ctx = 64, .max_chunks = 4, .n_threads = 2, .top_k = 8});
  EXPECT_THROW(half.evaluate(0, 1, &built), MismatchError);
  EXPECT_THROW(ReferenceStore::load(dir + "/part.bin", half.reference_key()), MismatchError);
  EXPECT_THROW(Evaluator(kModel, text, {.ctx = 64, .first_scored = 63}), UsageError);
}

// Two lanes (the GPU default: one context's logits scored while the other
// decodes) compute what one context does: same chunks, same values, token by
// token, with the reference captured through them as well.
TEST(EvalEvaluator, TwoLanesScoreAsOne) {
  const std::string text = read_file(test::data("docs-en-calib.txt"));
  EvalOptions opts{.ctx = 128, .max_chunks = 7, .n_threads = 2, .n_batch = 512, .top_k = 16, .lanes = 1};
  Evaluator one(kModel, text, opts);
  const ReferenceStore store = one.build_reference();
  opts.lanes = 2;
  Evaluator two(kModel, text, opts);
  const ReferenceStore store_two = two.build_reference();
  ASSERT_EQ(store_two.n_tokens(), store.n_tokens());
  for (int64_t t = 0; t < store.n_tokens(); ++t) {
    ASSERT_EQ(store_two.target_log_prob(t), store.target_log_prob(t)) << t;
    ASSERT_EQ(store_two.ids(t)[3], store.ids(t)[3]) << t;
  }
  for (Evaluator* ev : {&one, &two}) ev->set_tensor_type_simulated("blk.2.ffn_down.weight", "q2_K");
  const EvalTimings before_one = one.timings(), before_two = two.timings();
  // 7 chunks: one context decodes 4 + 3; two lanes 2 + 2 + 2 + 1, in turn.
  const std::vector<ChunkResult> a = one.evaluate(0, 7, &store), b = two.evaluate(0, 7, &store);
  EXPECT_EQ((one.timings() - before_one).n_decodes, 2);
  EXPECT_EQ((two.timings() - before_two).n_decodes, 4);
  ASSERT_EQ(a.size(), b.size());
  double kld = 0;
  for (size_t c = 0; c < a.size(); ++c) {
    EXPECT_EQ(b[c].chunk, a[c].chunk);
    EXPECT_EQ(b[c].nll_nats, a[c].nll_nats) << c;
    EXPECT_EQ(b[c].kld_nats, a[c].kld_nats) << c;
    EXPECT_EQ(b[c].top1, a[c].top1) << c;
    for (float v : a[c].kld_nats) kld += v;
  }
  EXPECT_GT(kld, 0);  // the swap shows: the values compared are not all zero
}

TEST(EvalEvaluator, BadInputIsRefused) {
  EXPECT_THROW(Evaluator(kModel, "", {.ctx = 64}), InputError);
  EXPECT_THROW(Evaluator(kModel, "A short text.", {.ctx = 64}), InputError);
  EXPECT_THROW(Evaluator(test::model("fixtures/tinyllamas-stories-260k-f32.ggufv1.gguf"),
                         "text", {.ctx = 64}),
               InputError);
  const std::string dir = test::temp_dir("eval-cli");
  write_file_atomic(dir + "/short.txt", "Too short.");
  const auto r = test::run_command(fmt::format("{} eval --model {} --text {}/short.txt 2>&1",
                                               test::cli_path(), kModel, dir));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("needs at least"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace cb::eval
