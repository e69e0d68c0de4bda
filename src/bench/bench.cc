// Metrics, the ship gate and summary.json for the bench stage.
#include "cerebellum/bench/bench.h"
#include "cerebellum/common/schemas.h"

#include <map>

#include <fmt/format.h>

#include "cerebellum/bench/stats.h"

namespace cb::bench {
using nlohmann::json;

namespace {

json accuracy_json(int64_t k, int64_t n) {
  const Interval ci = wilson_interval(k, n);
  return {{"accuracy", n ? static_cast<double>(k) / n : 0.0}, {"n", n}, {"n_correct", k},
          {"ci95", {ci.lo, ci.hi}}};
}

}  // namespace

json task_metrics(const std::string& task, const std::vector<QuestionResult>& qs) {
  int64_t k = 0;
  for (const auto& q : qs) k += q.correct;
  json m = accuracy_json(k, static_cast<int64_t>(qs.size()));
  if (task == "mmlu-redux") {
    // Questions the re-annotation flags (wrong ground truth, unclear, ...)
    // are reported apart: their gold labels are not trustworthy.
    int64_t ok_n = 0, ok_k = 0;
    std::map<std::string, std::pair<int64_t, int64_t>> by_type;
    for (const auto& q : qs) {
      const json meta = q.record.value("meta", json::object());
      const std::string et = meta.value("error_type", "ok");
      by_type[et].first++;
      by_type[et].second += q.correct;
      if (et == "ok") {
        ok_n++;
        ok_k += q.correct;
      }
    }
    m["ok_only"] = accuracy_json(ok_k, ok_n);
    m["flagged"] = accuracy_json(k - ok_k, static_cast<int64_t>(qs.size()) - ok_n);
    for (const auto& [et, nk] : by_type) m["by_error_type"][et] = accuracy_json(nk.second, nk.first);
  }
  if (task == "lambada") {
    double lp = 0;
    int64_t toks = 0;
    for (const auto& q : qs) {
      lp += q.record.value("logprob", 0.0);
      toks += q.record.value("n_tokens", 0);
    }
    m["mean_logprob_per_token"] = toks ? lp / toks : 0.0;
    m["perplexity"] = toks ? std::exp(-lp / toks) : 0.0;
  }
  if (task == "humaneval" || task == "humanevalplus") {
    int64_t base = 0, plus = 0;
    for (const auto& q : qs) {
      base += q.record.value("base_passed", false);
      plus += q.record.value("plus_passed", false);
    }
    m["pass@1_base"] = qs.empty() ? 0.0 : static_cast<double>(base) / qs.size();
    if (task == "humanevalplus") m["pass@1_plus"] = qs.empty() ? 0.0 : static_cast<double>(plus) / qs.size();
  }
  return m;
}

GateVerdict ship_gate_from_correct(const std::vector<std::string>& task_names,
                                   const std::vector<std::vector<std::pair<std::string, bool>>>& model,
                                   const std::vector<std::vector<std::pair<std::string, bool>>>& baseline,
                                   double alpha) {
  GateVerdict v;
  v.alpha = alpha;
  for (size_t t = 0; t < task_names.size(); ++t) {
    std::map<std::string, bool> base(baseline[t].begin(), baseline[t].end());
    TaskComparison c;
    c.task = task_names[t];
    int64_t mk = 0, bk = 0;
    for (const auto& [id, right] : model[t]) {
      auto it = base.find(id);
      if (it == base.end()) continue;  // paired on question id only
      c.n_paired++;
      mk += right;
      bk += it->second;
      c.model_only += right && !it->second;
      c.baseline_only += !right && it->second;
    }
    if (c.n_paired) {
      c.model_accuracy = static_cast<double>(mk) / c.n_paired;
      c.baseline_accuracy = static_cast<double>(bk) / c.n_paired;
    }
    c.p_value = mcnemar_exact_p(c.model_only, c.baseline_only);
    c.regression = c.p_value < alpha && c.baseline_only > c.model_only;
    if (c.regression) {
      v.ships = false;
      v.reason += fmt::format("{}significant regression on {} ({:.4f} vs {:.4f}, McNemar p={:.3g})",
                              v.reason.empty() ? "" : "; ", c.task, c.model_accuracy, c.baseline_accuracy, c.p_value);
    }
    v.tasks.push_back(c);
  }
  if (v.ships) v.reason = fmt::format("no task regresses significantly (McNemar p < {})", alpha);
  return v;
}

GateVerdict ship_gate(const ModelRun& model, const ModelRun& baseline, double alpha) {
  std::vector<std::string> names;
  std::vector<std::vector<std::pair<std::string, bool>>> m, b;
  for (const auto& t : model.tasks) {
    const TaskResult* bt = baseline.find(t.task);
    if (!bt) continue;
    names.push_back(t.task);
    auto pairs = [](const TaskResult& r) {
      std::vector<std::pair<std::string, bool>> out;
      for (const auto& q : r.questions) out.emplace_back(q.id, q.correct);
      return out;
    };
    m.push_back(pairs(t));
    b.push_back(pairs(*bt));
  }
  return ship_gate_from_correct(names, m, b, alpha);
}

json summary_json(const ModelRun& model, const ModelRun* baseline, const GateVerdict* verdict,
                  const BenchOptions& options) {
  json s = {{"schema", kBenchSchema},
#ifdef CB_VERSION
            {"tool_version", CB_VERSION},
#endif
            {"settings",
             {{"tasks", json::array()}, {"data_dir", options.task.data_dir}, {"limit", options.task.limit},
              {"mmlu_shots", options.task.mmlu_shots}, {"n_ctx", options.n_ctx}, {"n_seq_max", options.n_seq_max},
              {"gate_alpha", options.gate_alpha}}}};
  auto run_json = [](const ModelRun& r) {
    json j = {{"path", r.model_path}, {"bytes", r.model_bytes}, {"tasks", json::object()}};
    for (const auto& t : r.tasks) {
      j["tasks"][t.task] = t.metrics;
      j["tasks"][t.task]["settings"] = t.settings;
      j["tasks"][t.task]["jsonl"] = t.task + ".jsonl";
    }
    return j;
  };
  for (const auto& t : model.tasks) s["settings"]["tasks"].push_back(t.task);
  s["model"] = run_json(model);
  if (baseline) {
    s["baseline"] = run_json(*baseline);
    for (auto& [name, t] : s["baseline"]["tasks"].items()) t["jsonl"] = "baseline/" + name + ".jsonl";
  }
  if (verdict) {
    json cmp = json::object();
    for (const auto& c : verdict->tasks) {
      cmp[c.task] = {{"n_paired", c.n_paired}, {"model_accuracy", c.model_accuracy},
                     {"baseline_accuracy", c.baseline_accuracy}, {"delta", c.model_accuracy - c.baseline_accuracy},
                     {"model_only_correct", c.model_only}, {"baseline_only_correct", c.baseline_only},
                     {"mcnemar_p", c.p_value}, {"regression", c.regression}};
    }
    s["comparison"] = cmp;
    s["verdict"] = {{"ships", verdict->ships}, {"alpha", verdict->alpha}, {"reason", verdict->reason},
                    {"test", "exact McNemar, two-sided, per task"}};
  }
  return s;
}

}  // namespace cb::bench
