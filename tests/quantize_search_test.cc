// Integration: the measured local search on cb-dense-12l with a tiny budget of
// evaluations (i-quants in the plan, so their simulated swaps run), and the
// `allocate --search-text` path end to end.
#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/common/quant_types.h"
#include "cerebellum/quantize/search.h"
#include "cerebellum/recipe/recipe.h"
#include "test_paths.h"

namespace cb {
namespace {

const std::string& dense_path() {
  static const std::string p = test::model("cb-dense-12l-F16.gguf");
  return p;
}

// Synthetic measurements: q2_K ablations, early layers and ffn_down hurt more.
Journal synthetic_journal(const ModelInfo& m) {
  Journal j;
  j.header.model_sha256 = sha256_file(dense_path());
  j.header.base_name = "Q4_K_M";
  j.header.base_types = stock_preset_types(dense_path(), "Q4_K_M");
  for (const auto& t : m.tensors) {
    if (!t.stock_quantizable || t.layer < 0) continue;
    JournalMeasurement meas;
    meas.domain = "en";
    meas.unit = {t.name, "tensor", {t.name}};
    meas.types = {{t.name, "q2_K"}};
    meas.delta_kld = (t.role == "ffn_down" ? 0.02 : 0.004) * (12 - t.layer) / 12.0;
    meas.delta_kld_se = 0.0005;
    j.measurements.push_back(meas);
  }
  return j;
}

// The bpw proxy, except iq4_xs priced like q4_K: the plan then takes iq4_xs.
QuantErrorTable table_favouring_iq4_xs(const ModelInfo& m) {
  QuantErrorTable t;
  for (const auto& ti : m.tensors) {
    if (!ti.stock_quantizable) continue;
    for (const char* type : {"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_0", "iq4_xs"}) {
      t.rel_mse[ti.name][type] = std::pow(2.0, -2.0 * type_by_name(type).bits_per_weight());
    }
    t.rel_mse[ti.name]["iq4_xs"] = t.rel_mse[ti.name]["q4_K"];
  }
  return t;
}

// 3 chunks of 256 tokens from the start of the calibration text, 2 threads.
SearchOptions tiny_search() {
  SearchOptions o;
  o.text_path = test::data("docs-en-calib.txt");
  o.ctx = 256;
  o.first_chunk = 0;
  o.n_chunks = 3;
  o.n_threads = 2;
  return o;
}

// The synthetic journal's problem (default constraints) and its plan at 7.9 MB.
struct SyntheticPlan {
  AllocationProblem problem;
  Plan plan;
  int64_t capacity = 0;  // the budget less the file's fixed overhead
};
SyntheticPlan synthetic_plan() {
  const ModelInfo model = inspect_model(dense_path());
  SyntheticPlan sp;
  sp.problem = build_problem(model, synthetic_journal(model), {{"en", 1.0}}, Constraints{}, nullptr);
  sp.plan = allocate_plan(sp.problem, 7'900'000, model.data_offset_bytes);
  sp.capacity = 7'900'000 - model.data_offset_bytes;
  return sp;
}

TEST(QuantizeSearch, TinyBudgetOfMeasuredMoves) {
  const ModelInfo model = inspect_model(dense_path());
  const Journal j = synthetic_journal(model);
  const QuantErrorTable table = table_favouring_iq4_xs(model);
  Constraints c;
  c.allowed_types = {"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_0", "iq4_xs"};
  const AllocationProblem p = build_problem(model, j, {{"en", 1.0}}, c, &table);
  const int64_t overhead = model.data_offset_bytes;
  const Plan plan = allocate_plan(p, 7'900'000, overhead);
  const auto types = plan.types();
  ASSERT_TRUE(std::any_of(types.begin(), types.end(), [](const auto& kv) { return kv.second == "iq4_xs"; }));
  SearchOptions o = tiny_search();
  o.max_evals = 3;
  o.correction_rounds = 0;  // the moves from the solver's plan (the rounds: the next test)
  const int64_t capacity = 7'900'000 - overhead;
  const SearchResult r = refine_plan(dense_path(), p, choice_of(p, plan), capacity, o);
  EXPECT_EQ(r.evals.size(), 3u);
  EXPECT_EQ(r.stop_reason, "max_evals");
  EXPECT_GT(r.base_kld, 0);
  EXPECT_GT(r.initial_kld, 0);
  EXPECT_TRUE(std::isfinite(r.initial_measured));
  EXPECT_GT(r.initial_measured_se, 0);
  EXPECT_NEAR(r.initial_predicted, plan.predicted_delta_kld, 1e-12);
  int accepted = 0;
  for (const auto& e : r.evals) {
    EXPECT_TRUE(std::isfinite(e.measured_delta_kld)) << e.move;
    EXPECT_GE(e.measured_se, 0) << e.move;
    EXPECT_EQ(e.accepted, e.measured_delta_kld < -o.accept_z * e.measured_se && e.measured_delta_kld < 0) << e.move;
    accepted += e.accepted;
  }
  EXPECT_EQ(accepted, r.n_accepted);
  const Plan after = searched_plan(p, plan, r);
  EXPECT_LE(after.size_bytes, 7'900'000);
  EXPECT_EQ(after.method, "mckp+search");
  if (accepted == 0) {
    EXPECT_EQ(r.final_choice, r.initial_choice);
    EXPECT_EQ(r.final_kld, r.initial_kld);
  } else {
    EXPECT_LT(r.final_kld, r.initial_kld);
  }
  const nlohmann::json js = to_json(r, p);
  EXPECT_EQ(js["evals"].size(), 3u);
  EXPECT_TRUE(js["before"].contains("measured_delta_kld_vs_base"));
  EXPECT_TRUE(js["after"].contains("predicted_delta_kld_vs_base"));

  o.n_chunks = 1;
  EXPECT_THROW(refine_plan(dense_path(), p, r.initial_choice, capacity, o), UsageError);
  o.n_chunks = 3;
  o.first_chunk = 100000;
  EXPECT_THROW(refine_plan(dense_path(), p, r.initial_choice, capacity, o), InputError);
}

// Issue 12: a plan swapped in beside the loaded base mix needs buffers of its
// own; where the two would not fit the device's room (here a cap leaving ~10 MB
// for weights: base 8.8 MB + the plan's swaps), or on the host where its swaps
// would hold more than host_swap_share of the weights, the plan is loaded as a
// model of its own. The same bytes run: the results equal the in-place search's.
TEST(QuantizeSearch, APlanThatWouldNotFitBesideTheBaseIsLoadedAlone) {
  const SyntheticPlan sp = synthetic_plan();
  const AllocationProblem& p = sp.problem;
  SearchOptions o = tiny_search();
  o.max_evals = 2;
  o.correction_rounds = 0;
  o.host_swap_share = 0;  // every configuration swapped in place
  const SearchResult free_run = refine_plan(dense_path(), p, choice_of(p, sp.plan), sp.capacity, o);
  EXPECT_EQ(free_run.n_reloads, 0);
  // On the host, a plan whose swaps would hold more than the share is loaded on its own.
  o.host_swap_share = 0.25;
  const SearchResult host = refine_plan(dense_path(), p, choice_of(p, sp.plan), sp.capacity, o);
  EXPECT_GE(host.n_reloads, 1);
  EXPECT_EQ(host.base_kld, free_run.base_kld);
  EXPECT_EQ(host.initial_kld, free_run.initial_kld);
  ASSERT_EQ(host.evals.size(), free_run.evals.size());
  for (size_t i = 0; i < host.evals.size(); ++i) {
    EXPECT_EQ(host.evals[i].measured_delta_kld, free_run.evals[i].measured_delta_kld) << host.evals[i].move;
  }
  o.n_gpu_layers = 999;  // the CPU build runs on the CPU, under the same accounting
  o.max_device_bytes = (int64_t{3} << 29) + 10'000'000;
  // The reloads copy the tensors still in their base type from the base mix.
  o.base_model_path = test::temp_dir("search-reload") + "/m.jsonl.base.gguf";
  std::vector<std::string> donated;
  o.logger.sink = [&](LogLevel, std::string_view m) {
    if (m.find("tensors copied from " + o.base_model_path) != std::string_view::npos) donated.emplace_back(m);
  };
  const SearchResult capped = refine_plan(dense_path(), p, choice_of(p, sp.plan), sp.capacity, o);
  EXPECT_GE(capped.n_reloads, 1);
  EXPECT_EQ(static_cast<int>(donated.size()), capped.n_reloads);
  EXPECT_EQ(capped.base_kld, free_run.base_kld);
  EXPECT_EQ(capped.initial_kld, free_run.initial_kld);
  ASSERT_EQ(capped.evals.size(), free_run.evals.size());
  for (size_t i = 0; i < capped.evals.size(); ++i) {
    EXPECT_EQ(capped.evals[i].measured_delta_kld, free_run.evals[i].measured_delta_kld) << capped.evals[i].move;
  }
  EXPECT_EQ(to_json(capped, p)["n_reloads"], capped.n_reloads);
}

// quantize's sweep leaves its base mix for the search (keep_base_model): the
// search loads that file instead of building another, and builds it there
// when it is missing.
TEST(QuantizeSearch, TheSweepsBaseMixIsLoadedNotBuiltAgain) {
  const SyntheticPlan sp = synthetic_plan();
  SearchOptions o = tiny_search();
  o.max_evals = 0;
  o.correction_rounds = 0;
  o.base_model_path = test::temp_dir("search-base") + "/m.jsonl.base.gguf";
  const SearchResult first = refine_plan(dense_path(), sp.problem, choice_of(sp.problem, sp.plan), sp.capacity, o);
  ASSERT_TRUE(std::filesystem::exists(o.base_model_path));
  const auto built_at = std::filesystem::last_write_time(o.base_model_path);
  const SearchResult again = refine_plan(dense_path(), sp.problem, choice_of(sp.problem, sp.plan), sp.capacity, o);
  EXPECT_EQ(std::filesystem::last_write_time(o.base_model_path), built_at);  // loaded, not rebuilt
  EXPECT_EQ(again.base_kld, first.base_kld);
  EXPECT_EQ(again.initial_kld, first.initial_kld);
}

// Issue 13: the synthetic damages are not what the model measures, so the
// rounds re-solve with fitted factors; the plan kept is the best measured one.
TEST(QuantizeSearch, CorrectionRoundsKeepTheBestMeasuredPlan) {
  const SyntheticPlan sp = synthetic_plan();
  const AllocationProblem& p = sp.problem;
  const Plan& plan = sp.plan;
  SearchOptions o = tiny_search();
  o.max_evals = 0;
  o.correction_rounds = 2;
  const SearchResult r = refine_plan(dense_path(), p, choice_of(p, plan), sp.capacity, o);
  EXPECT_TRUE(r.evals.empty());
  ASSERT_FALSE(r.rounds.empty()) << r.correction_stop;  // predicted 10x what a 3-chunk measurement shows
  EXPECT_LE(r.rounds.size(), 2u);
  EXPECT_TRUE(r.correction_stop == "agrees" || r.correction_stop == "converged" || r.correction_stop == "max_rounds")
      << r.correction_stop;
  double best = r.initial_kld;
  std::string best_from = "solver";
  for (const auto& c : r.rounds) {
    EXPECT_GE(c.factor_up, 0.1);
    EXPECT_LE(c.factor_down, 10.0);
    EXPECT_GT(c.n_changed, 0);  // a plan measured before ends the rounds ("converged")
    EXPECT_TRUE(std::isfinite(c.measured) && c.measured_se > 0);
    if (c.kld < best) best = c.kld, best_from = fmt::format("round {}", c.round);
  }
  // The base (Q4_K_M, 8.77 MB) does not fit 7.9 MB: the best of solver and rounds.
  EXPECT_EQ(r.final_kld, best);
  EXPECT_EQ(r.start_from, best_from);
  EXPECT_LE(searched_plan(p, plan, r).size_bytes, 7'900'000);
  EXPECT_EQ(to_json(r, p)["correction"]["rounds"].size(), r.rounds.size());
}

TEST(QuantizeSearch, AllocateCliRefinesWithinTheBudget) {
  const std::string dir = test::temp_dir("search_cli");
  const ModelInfo model = inspect_model(dense_path());
  const Journal j = synthetic_journal(model);
  {
    JournalWriter w(dir + "/m.jsonl", j.header);
    w.append(JournalBaseline{"en", "base", {}});
    for (const auto& m : j.measurements) w.append(m);
  }
  const auto r = test::run_command(fmt::format(
      "{} allocate --measurements {}/m.jsonl --source {} --budget 7363136 --quant-error none --threads 2 "
      "--search-text {} --search-evals 2 --search-chunks 2 --search-first-chunk 0 --out {}/plan.json "
      "--tensor-types {}/tt.txt", test::cli_path(), dir, dense_path(), test::data("docs-en-calib.txt"), dir, dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto plan = nlohmann::json::parse(read_file(dir + "/plan.json"));
  EXPECT_EQ(plan["method"], "mckp+search");
  EXPECT_LE(plan["size_bytes"].get<int64_t>(), 7363136);
  EXPECT_EQ(plan["search"]["evals"].size(), 2u);
  EXPECT_TRUE(plan["initial_plan"].contains("types"));
  EXPECT_EQ(plan["model_error"]["mse_source"], "bpw-proxy");
}

}  // namespace
}  // namespace cb
