#include "quantize/refine.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/allocate/marginal.h"
#include "cerebellum/build/quant_error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/measure/measure.h"

namespace cb {
namespace {

int64_t journal_chunks(const Journal& j) {
  int64_t n = 0;
  for (const auto& m : j.measurements) n += m.metrics.n_chunks;
  return n;
}

// Every measurement of the marginal tensors that can take more chunks, most
// marginal tensor first: measurement_key -> chunks to re-measure it with.
std::vector<std::pair<std::string, int>> remeasure_list(const Journal& j, const MarginalReport& mr, int max_chunks) {
  std::vector<std::pair<std::string, int>> out;
  std::set<std::string> seen;
  for (const MarginalTensor& t : mr.tensors) {
    for (const auto& m : j.measurements) {
      if (!m.types.count(t.tensor) || m.metrics.n_chunks >= max_chunks) continue;
      const std::string key = measurement_key(m.domain, m.direction, m.unit.id, m.types);
      if (seen.insert(key).second) out.emplace_back(key, std::min(max_chunks, 2 * m.metrics.n_chunks));
    }
  }
  return out;
}

int moved(const Plan& a, const Plan& b) {
  const auto ta = a.types(), tb = b.types();
  int n = 0;
  for (const auto& [name, type] : ta) n += tb.count(name) && tb.at(name) != type;
  return n;
}

}  // namespace

Refined refine_sweep(const QuantizeOptions& o, const ModelInfo& model, Journal journal) {
  Refined r{std::move(journal), {}, {}};
  RefineReport& rep = r.report;
  r.allocation = plan_for(r.journal, model, o.allocate);
  rep.sweep_chunks = journal_chunks(r.journal);
  const bool one_budget = (!r.allocation.fit || r.allocation.fit->file_budget_equivalent) && !r.allocation.speed;
  if (o.refine.max_rounds <= 0 || !one_budget) {
    rep.stopped = "off";
    return r;
  }
  AllocateOptions ao = o.allocate;
  if (r.allocation.quant_error) {  // computed once: the refined records do not change which types it prices
    const std::string path = (std::filesystem::path(o.measure.reference_dir) / "quant_error.json").string();
    write_file_atomic(path, to_json(*r.allocation.quant_error).dump(1) + "\n");
    ao.quant_error = path;
  }
  const int64_t extra_cap = static_cast<int64_t>(o.refine.max_extra_chunks_frac * rep.sweep_chunks);
  for (int round = 0;; ++round) {
    const MarginalReport mr = marginal_tensors(r.allocation.problem, r.allocation.plan, o.refine.z);
    if (round == 0) rep.price_kld_per_byte = mr.price_kld_per_byte;
    rep.marginal_left.clear();
    for (const auto& t : mr.tensors) rep.marginal_left.push_back(t.tensor);
    auto todo = remeasure_list(r.journal, mr, o.measure.stop.max_chunks);
    if (mr.tensors.empty() || todo.empty()) {
      rep.stopped = mr.tensors.empty() ? "stable" : "at the chunk cap";
      break;
    }
    if (round == o.refine.max_rounds) {
      rep.stopped = "rounds";
      break;
    }
    measure::MeasureOptions mo = o.measure;
    mo.resume = true;
    int64_t planned = 0;
    for (const auto& [key, chunks] : todo) {
      if (rep.extra_chunks + planned + chunks > extra_cap) break;
      mo.refine_chunks[key] = chunks, planned += chunks;
    }
    if (mo.refine_chunks.empty()) {
      rep.stopped = "chunk budget";
      break;
    }
    o.logger.info(fmt::format("refine round {}: {} marginal tensors, {} measurements re-measured ({} chunks)",
                              round + 1, mr.tensors.size(), mo.refine_chunks.size(), planned));
    measure::MeasureSummary ms = measure::run_measure(mo, &model);
    r.journal = std::move(ms.journal);
    const Plan before = r.allocation.plan;
    r.allocation = plan_for(r.journal, model, ao);
    rep.extra_chunks += ms.chunks_evaluated;
    rep.rounds.push_back({static_cast<int>(mr.tensors.size()), ms.n_refined, ms.chunks_evaluated,
                          moved(before, r.allocation.plan), r.allocation.plan.predicted_delta_kld});
  }
  return r;
}

nlohmann::json to_json(const RefineReport& r) {
  nlohmann::json rounds = nlohmann::json::array();
  for (const RefineRound& x : r.rounds) {
    rounds.push_back({{"marginal_tensors", x.n_marginal}, {"remeasured", x.n_remeasured}, {"chunks", x.chunks},
                      {"tensors_moved", x.n_moved}, {"predicted_delta_kld", x.predicted_delta_kld}});
  }
  return {{"price_kld_per_byte", r.price_kld_per_byte}, {"sweep_chunks", r.sweep_chunks},
          {"extra_chunks", r.extra_chunks}, {"rounds", rounds}, {"stopped", r.stopped},
          {"marginal_left", r.marginal_left}};
}

}  // namespace cb
