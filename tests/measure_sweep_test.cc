// Integration: small sweeps on the three shared models (dense, hybrid MoE/SSM,
// stories260K with fallback types), journal contents, resume checks.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "cerebellum/build/build.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/measure/measure.h"
#include "cerebellum/measure/memory.h"
#include "cerebellum/recipe/recipe.h"
#include "test_paths.h"

namespace cb::measure {
namespace {

MeasureOptions small(const std::string& model, const std::string& dir) {
  MeasureOptions o;
  o.source_path = test::model(model);
  o.base = "Q4_K_M";
  o.texts = {{"en", test::data("docs-en-calib.txt")}};
  o.targets = {"q2_K"};
  o.ctx = 128;
  o.stop.min_chunks = 2;
  o.stop.max_chunks = 4;
  o.n_threads = 2;
  o.out_path = dir + "/m.jsonl";
  return o;
}

TEST(MeasureSweep, DenseTensorsResumeAndRefusals) {
  const std::string dir = test::temp_dir("measure_dense");
  MeasureOptions o = small("cb-dense-12l-F16.gguf", dir);
  o.tensor_regex = "blk\\.(0|11)\\.";
  o.limit_units = 5;
  const MeasureSummary s = run_measure(o);
  EXPECT_EQ(s.n_measured, 5);
  const Journal j = read_journal(o.out_path);
  ASSERT_EQ(j.baselines.size(), 1u);
  EXPECT_EQ(j.header.base_name, "Q4_K_M");
  EXPECT_EQ(j.header.model_sha256.size(), 64u);
  ASSERT_EQ(j.measurements.size(), 5u);
  double max_delta = 0;
  for (const auto& m : j.measurements) {
    EXPECT_TRUE(m.stopped == "tight" || m.stopped == "separated" || m.stopped == "cap");
    EXPECT_GE(m.metrics.n_chunks, 2);
    EXPECT_LE(m.metrics.n_chunks, 4);
    EXPECT_TRUE(m.delta_ln_ppl.has_value());
    max_delta = std::max(max_delta, m.delta_kld);
  }
  // Crushing a large Q4_K tensor to q2_K must cost KLD, clearly above noise.
  const auto& top = *std::max_element(j.measurements.begin(), j.measurements.end(),
                                      [](auto& a, auto& b) { return a.delta_kld < b.delta_kld; });
  EXPECT_GT(top.delta_kld, 3 * top.delta_kld_se);
  EXPECT_GT(max_delta, 1e-4);

  // Without --resume an existing journal is an error.
  EXPECT_THROW(run_measure(o), UsageError);
  // Resume: nothing left to do, nothing appended.
  o.resume = true;
  const MeasureSummary r = run_measure(o);
  EXPECT_EQ(r.n_measured, 0);
  EXPECT_EQ(r.n_resumed, 5);
  EXPECT_EQ(read_journal(o.out_path).measurements.size(), 5u);
  // Other settings / base / model: refused.
  MeasureOptions other = o;
  other.ctx = 256;
  EXPECT_THROW(run_measure(other), MismatchError);
  other = o;
  other.base = "Q3_K_M";
  EXPECT_THROW(run_measure(other), MismatchError);
  other = o;
  other.source_path = test::model("stories260K.gguf");
  EXPECT_THROW(run_measure(other), MismatchError);
}

// Issue 13: quantize re-measures the units its plan is marginal on with more
// chunks (MeasureOptions::refine_chunks). The new record is what one
// measurement of that length gives (the same chunks from chunk 0, fixed), it
// replaces the short one when the journal is read, and nothing else moves.
TEST(MeasureSweep, RefineRemeasuresWithMoreChunksAndReplacesTheRecord) {
  const std::string dir = test::temp_dir("measure_refine");
  MeasureOptions o = small("cb-dense-12l-F16.gguf", dir);
  o.tensor_regex = "blk\\.3\\.";
  o.limit_units = 3;
  o.stop.rel_tol = 100;  // every unit stops at its first check (2 chunks)
  run_measure(o);
  const Journal j0 = read_journal(o.out_path);
  ASSERT_EQ(j0.measurements.size(), 3u);
  const auto short_one = std::find_if(j0.measurements.begin(), j0.measurements.end(),
                                      [](const auto& m) { return m.metrics.n_chunks < 4; });
  ASSERT_NE(short_one, j0.measurements.end()) << "every unit ran to the cap: nothing to refine";
  const std::string key = measurement_key(short_one->domain, short_one->direction, short_one->unit.id,
                                          short_one->types);
  o.resume = true;
  o.refine_chunks[key] = 99;  // capped at max_chunks (4)
  const MeasureSummary s = run_measure(o);
  EXPECT_EQ(s.n_refined, 1);
  EXPECT_EQ(s.n_measured, 0);
  const Journal j1 = read_journal(o.out_path);
  EXPECT_TRUE(j1.duplicates.empty());
  ASSERT_EQ(j1.measurements.size(), 3u);
  const JournalMeasurement* refined = nullptr;
  for (size_t i = 0; i < 3; ++i) {
    const auto& m = j1.measurements[i];
    if (measurement_key(m.domain, m.direction, m.unit.id, m.types) != key) {
      EXPECT_EQ(m.delta_kld, j0.measurements[i].delta_kld) << m.unit.id;
      continue;
    }
    refined = &m;
  }
  ASSERT_NE(refined, nullptr);
  EXPECT_EQ(refined->metrics.n_chunks, 4);
  EXPECT_EQ(refined->refines, short_one->metrics.n_chunks);
  EXPECT_EQ(refined->stopped, "refined");
  EXPECT_EQ(refined->delta_kld_samples.size(), 4u * o.stop.blocks_per_chunk);
  // Asked again: it has the chunks already.
  EXPECT_EQ(run_measure(o).n_refined, 0);

  // The same unit measured once to 4 chunks with the same steps (a stop rule
  // that never stops early): the same value, bit for bit (CPU, same batches).
  MeasureOptions fixed = small("cb-dense-12l-F16.gguf", dir);
  fixed.out_path = dir + "/fixed.jsonl";
  fixed.tensor_regex = "^" + short_one->unit.id + "$";
  fixed.targets = {short_one->types.begin()->second};
  fixed.stop.rel_tol = 0, fixed.stop.abs_tol_nats = 0, fixed.stop.sep_z = 1e9;
  run_measure(fixed);
  const Journal jf = read_journal(fixed.out_path);
  ASSERT_EQ(jf.measurements.size(), 1u);
  EXPECT_EQ(jf.measurements[0].metrics.n_chunks, 4);
  EXPECT_EQ(jf.measurements[0].delta_kld, refined->delta_kld);
  EXPECT_EQ(jf.measurements[0].delta_kld_se, refined->delta_kld_se);
}

// With --gpu-layers the next unit is converted on a background thread while
// this one is evaluated. The CPU build ignores the offload but prefetches as
// on a GPU: the records must be the ones of a sweep without it, bit for bit.
TEST(MeasureSweep, PrefetchingTheNextUnitGivesTheSameRecords) {
  const std::string dir = test::temp_dir("measure_prefetch");
  MeasureOptions o = small("cb-dense-12l-F16.gguf", dir);
  o.tensor_regex = "blk\\.[35]\\.";
  o.limit_units = 4;
  o.n_gpu_layers = 999;
  const MeasureSummary with = run_measure(o);
  EXPECT_GE(with.n_prefetched, 3);  // every unit after the first (one tensor each)
  MeasureOptions plain = small("cb-dense-12l-F16.gguf", dir);
  plain.tensor_regex = o.tensor_regex;
  plain.limit_units = o.limit_units;
  plain.out_path = dir + "/plain.jsonl";
  const MeasureSummary without = run_measure(plain);
  EXPECT_EQ(without.n_prefetched, 0);
  const Journal a = read_journal(o.out_path), b = read_journal(plain.out_path);
  ASSERT_EQ(a.measurements.size(), 4u);
  ASSERT_EQ(b.measurements.size(), a.measurements.size());
  for (size_t i = 0; i < a.measurements.size(); ++i) {
    EXPECT_EQ(a.measurements[i].unit.id, b.measurements[i].unit.id);
    EXPECT_EQ(a.measurements[i].delta_kld, b.measurements[i].delta_kld) << a.measurements[i].unit.id;
    EXPECT_EQ(a.measurements[i].delta_kld_se, b.measurements[i].delta_kld_se);
  }
}

// With two lanes a unit's last step hands its results over later: its
// scoring overlaps the next unit's swap and first decode (Evaluator::
// evaluate_then). The records are those of one lane, bit for bit, whether
// every unit ends on its first step (fixed chunks) or some go on (adaptive).
TEST(MeasureSweep, LastScoringLeftRunningGivesTheSameRecords) {
  const std::string dir = test::temp_dir("measure_deferred");
  for (const auto& [min_chunks, max_chunks] : {std::pair{4, 4}, std::pair{2, 4}}) {
    std::vector<Journal> journals;
    for (int lanes : {2, 1}) {
      MeasureOptions o = small("cb-dense-12l-F16.gguf", dir);
      o.tensor_regex = "blk\\.[35]\\.";
      o.limit_units = 5;
      o.stop.min_chunks = min_chunks;
      o.stop.max_chunks = max_chunks;
      o.lanes = lanes;
      o.out_path = fmt::format("{}/m{}-{}.jsonl", dir, min_chunks, lanes);
      const MeasureSummary s = run_measure(o);
      EXPECT_EQ(s.n_measured, 5);
      journals.push_back(read_journal(o.out_path));
      // Two lanes: the last step of every unit that reached the chunk cap
      // (known last before it ran) left running; none with one lane.
      int64_t at_cap = 0;
      for (const auto& m : journals.back().measurements) at_cap += m.metrics.n_chunks == max_chunks;
      EXPECT_EQ(s.eval_timings.n_overlapped, lanes == 2 ? at_cap : 0);
      if (min_chunks == max_chunks) EXPECT_EQ(at_cap, 5);
    }
    const Journal &a = journals[0], &b = journals[1];
    ASSERT_EQ(a.measurements.size(), 5u);
    ASSERT_EQ(b.measurements.size(), a.measurements.size());
    for (size_t i = 0; i < a.measurements.size(); ++i) {
      EXPECT_EQ(a.measurements[i].unit.id, b.measurements[i].unit.id);
      EXPECT_EQ(a.measurements[i].metrics.n_chunks, b.measurements[i].metrics.n_chunks);
      EXPECT_EQ(a.measurements[i].delta_kld, b.measurements[i].delta_kld) << a.measurements[i].unit.id;
      EXPECT_EQ(a.measurements[i].delta_kld_se, b.measurements[i].delta_kld_se);
      EXPECT_EQ(a.measurements[i].delta_ln_ppl, b.measurements[i].delta_ln_ppl);
    }
  }
}

TEST(MeasureSweep, PromoteGroupsAndProbes) {
  const std::string dir = test::temp_dir("measure_promote");
  MeasureOptions o = small("cb-dense-12l-F16.gguf", dir);
  o.base = "Q2_K";
  o.targets = {};
  o.promote = {"q6_K"};
  o.plan = PlanLevel::kGroups;
  o.limit_units = 2;
  run_measure(o);
  const Journal j = read_journal(o.out_path);
  ASSERT_EQ(j.measurements.size(), 2u);
  for (const auto& m : j.measurements) {
    EXPECT_EQ(m.direction, "promote");
    EXPECT_EQ(m.unit.level, "group");
    EXPECT_GT(m.unit.tensors.size(), 1u);
    EXPECT_LT(m.delta_kld, 0) << m.unit.id << ": lifting a group from q2_K must help";
  }
  // Probes: ladder + pairs over tensor units.
  MeasureOptions p = small("cb-dense-12l-F16.gguf", dir);
  p.out_path = dir + "/p.jsonl";
  p.tensor_regex = "blk\\.(3|4)\\.(ffn_down|ffn_up)";
  p.probes = {.enabled = true, .n_top = 3, .ladder_max = 3};
  run_measure(p);
  const Journal jp = read_journal(p.out_path);
  EXPECT_EQ(jp.measurements.size(), 4u);
  ASSERT_GE(jp.probes.size(), 3u);
  std::set<std::string> kinds;
  for (const auto& pr : jp.probes) {
    kinds.insert(pr.probe.substr(0, pr.probe.find('_', 2)));
    ASSERT_TRUE(pr.predicted_delta_kld.has_value());
    EXPECT_GE(pr.units.size(), 2u);
    EXPECT_GT(pr.delta_kld, 0);
  }
  EXPECT_TRUE(kinds.count("ladder")) << "kinds seen: " << kinds.size();
}

TEST(MeasureSweep, HybridMoeRoutersExpertsSsm) {
  const std::string dir = test::temp_dir("measure_moe");
  MeasureOptions o = small("cb-hybrid-moe-F16.gguf", dir);
  o.plan = PlanLevel::kGroups;
  o.tensor_regex = "ffn_gate_inp|_exps|_shexp|ssm_";
  o.stop.max_chunks = 2;
  run_measure(o);
  const Journal j = read_journal(o.out_path);
  std::set<std::string> ids;
  for (const auto& m : j.measurements) {
    ids.insert(m.unit.id);
    EXPECT_TRUE(std::isfinite(m.delta_kld));
  }
  for (const char* want : {"ffn_down_exps", "ffn_up_shexp", "ssm_in", "ssm_out"}) {
    bool found = false;
    for (const auto& id : ids) found = found || id.find(want) != std::string::npos;
    EXPECT_TRUE(found) << want;
  }
  bool router = false;
  for (const auto& id : ids) router = router || id.find("gate_inp") != std::string::npos ||
                                       id.find("router") != std::string::npos;
  EXPECT_TRUE(router) << "routers are measured like the rest";
}

// The projection is said before anything runs, and a cap below it is refused
// up front (BudgetError, nothing written); the reference-only pass fills the
// store so the sweep after it never loads the full-precision model.
TEST(MeasureSweep, MemoryProjectionRefusesAndReferenceOnlyFills) {
  const std::string dir = test::temp_dir("measure_mem");
  MeasureOptions o = small("cb-dense-12l-F16.gguf", dir);
  o.limit_units = 2;
  const ModelInfo model = inspect_model(o.source_path);
  const MemoryProjection p = project_memory(o, model, stock_preset_types(o.source_path, "Q4_K_M", false));
  EXPECT_GT(p.base_model_bytes, 0);
  EXPECT_LT(p.base_model_bytes, model.file_size_bytes / 2);  // Q4_K_M < half of F16
  EXPECT_EQ(p.reference_model_bytes, model.file_size_bytes);
  EXPECT_GE(p.host_bytes, p.base_model_bytes + p.reference_store_bytes);
  // On a GPU the second lane's compute buffer is on the device (256 MiB +
  // one 512-token micro-batch's logits at cb-dense's vocab of 8,192); not
  // with --lanes 1.
  {
    MeasureOptions gpu = o;
    gpu.n_gpu_layers = 999;
    const auto base = stock_preset_types(o.source_path, "Q4_K_M", false);
    const int64_t two = project_memory(gpu, model, base).device_bytes;
    gpu.lanes = 1;
    const int64_t one = project_memory(gpu, model, base).device_bytes;
    EXPECT_EQ(two - one, (int64_t{256} << 20) + int64_t{512} * 8192 * 4);
    // By default one lane wherever a layer stays on the host: fewer layers
    // asked for, or a --max-vram the base mix does not fit whole.
    gpu.lanes = 0;
    gpu.n_gpu_layers = model.n_layers;  // the output stays on the host
    EXPECT_EQ(project_memory(gpu, model, base).device_bytes, one);
    gpu.n_gpu_layers = 999;
    gpu.max_device_bytes = project_memory(gpu, model, base).base_model_bytes;  // no room for the reserve
    EXPECT_EQ(project_memory(gpu, model, base).device_bytes, one);
    gpu.max_device_bytes = int64_t{64} << 30;
    EXPECT_EQ(project_memory(gpu, model, base).device_bytes, two);
  }
  o.max_host_bytes = p.host_bytes - 1;
  EXPECT_THROW(run_measure(o), BudgetError);
  EXPECT_FALSE(std::filesystem::exists(o.out_path));
  o.max_host_bytes = 0;
  o.reference_only = true;
  const MeasureSummary r = run_measure(o);
  EXPECT_EQ(r.chunks_evaluated, o.stop.max_chunks);
  EXPECT_FALSE(std::filesystem::exists(o.out_path));  // no journal
  o.reference_only = false;
  const MeasureSummary s = run_measure(o);
  EXPECT_EQ(s.n_measured, 2);
  EXPECT_FALSE(std::filesystem::exists(o.out_path + ".base.gguf"));  // removed at the end
}

std::string base_path_of(const MeasureOptions& o) { return o.out_path + ".base.gguf"; }

// A smaller reference stands in for the F16 (the user's Q8_0): the store and
// the journal say so, and the deltas stay close to the F16-referenced ones.
TEST(MeasureSweep, ReferenceModelStandsInForTheSource) {
  const std::string dir = test::temp_dir("measure_refmodel");
  BuildOptions b;
  b.source = test::model("cb-dense-12l-F16.gguf");
  b.out = dir + "/q8.gguf";
  b.base = "Q8_0";
  b.n_threads = 2;
  build_model(b);
  MeasureOptions f16 = small("cb-dense-12l-F16.gguf", test::temp_dir("measure_refmodel_f16"));
  f16.limit_units = 2;
  f16.stop.min_chunks = f16.stop.max_chunks = 4;
  run_measure(f16);
  MeasureOptions q8 = f16;
  q8.out_path = dir + "/q8.jsonl";
  q8.reference_model = b.out;
  run_measure(q8);
  const Journal a = read_journal(f16.out_path), c = read_journal(q8.out_path);
  ASSERT_EQ(a.measurements.size(), 2u);
  ASSERT_EQ(c.measurements.size(), 2u);
  EXPECT_NE(c.header.settings_json.find(sha256_file(b.out)), std::string::npos);
  for (size_t i = 0; i < 2; ++i) {
    const auto& x = a.measurements[i];
    const auto& y = c.measurements[i];
    EXPECT_EQ(x.unit.id, y.unit.id);
    // Q8_0 is within ~1e-4 nats of F16 here: the paired deltas agree to a few se.
    EXPECT_NEAR(x.delta_kld, y.delta_kld, 4 * (x.delta_kld_se + y.delta_kld_se)) << x.unit.id;
  }
  q8.resume = true;
  q8.reference_model.clear();  // another reference: the journal refuses
  EXPECT_THROW(run_measure(q8), MismatchError);
  // Another model, a truncated or a missing file as the reference: refused
  // before any journal or base mix is written.
  MeasureOptions other = f16;
  other.out_path = dir + "/other.jsonl";
  other.reference_model = test::model("stories260K.gguf");
  EXPECT_THROW(run_measure(other), MismatchError);
  other.reference_model = test::model("cb-hybrid-moe-F16.gguf");
  EXPECT_THROW(run_measure(other), MismatchError);
  other.reference_model = dir + "/none.gguf";
  EXPECT_THROW(run_measure(other), InputError);
  {
    const std::string whole = read_file(b.out);
    write_file_atomic(dir + "/trunc.gguf", whole.substr(0, whole.size() / 2));
  }
  other.reference_model = dir + "/trunc.gguf";
  EXPECT_THROW(run_measure(other), InputError);
  EXPECT_FALSE(std::filesystem::exists(other.out_path));
  EXPECT_FALSE(std::filesystem::exists(base_path_of(other)));
  MeasureOptions sim = f16;
  sim.mode = EvalMode::kSimulated;
  sim.reference_model = b.out;
  EXPECT_THROW(run_measure(sim), UsageError);
}

TEST(MeasureSweep, StoriesFallbackTypes) {
  const std::string dir = test::temp_dir("measure_stories");
  MeasureOptions o = small("stories260K.gguf", dir);
  o.limit_units = 4;
  run_measure(o);
  const Journal j = read_journal(o.out_path);
  ASSERT_EQ(j.measurements.size(), 4u);
  for (const auto& m : j.measurements) {
    for (const auto& [t, ty] : m.types) EXPECT_NE(ty, "q2_K") << t;
    EXPECT_TRUE(std::isfinite(m.delta_kld));
  }
}

}  // namespace
}  // namespace cb::measure
