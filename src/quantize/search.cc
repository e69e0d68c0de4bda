// The measured local search: moves from moves.cc, each evaluated end to end
// with in-place swaps to the real types on calibration chunks against the F16
// reference.
#include "cerebellum/quantize/search.h"
#include "cerebellum/common/schemas.h"

#include <chrono>
#include <cmath>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/eval/evaluator.h"
#include "cerebellum/imatrix/imatrix.h"
#include "engine/engine.h"
#include "quantize/correct.h"

namespace cb {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Mean and standard error of a − b over paired chunks.
std::pair<double, double> paired(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = a.size();
  double mean = 0;
  for (size_t c = 0; c < n; ++c) mean += a[c] - b[c];
  mean /= static_cast<double>(n);
  double var = 0;
  for (size_t c = 0; c < n; ++c) var += (a[c] - b[c] - mean) * (a[c] - b[c] - mean);
  const double se = n > 1 ? std::sqrt(var / static_cast<double>(n - 1) / static_cast<double>(n)) : 0.0;
  return {mean, se};
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

std::map<std::string, std::string> base_types(const AllocationProblem& p) {
  std::map<std::string, std::string> out;
  for (const auto& t : p.tensors) out[t.name] = t.base_type;
  return out;
}

// The reference from the F16 model (loaded alone, then released), and the
// base mix loaded in its real types, swapped in place to each plan's types.
// Each swapped tensor takes a buffer of its own next to the loaded bytes, so a
// plan far from what is loaded can need up to a second model's memory: when
// the loaded weights plus the swaps would pass the device's room (--max-vram,
// or the GPU's free memory), or on the host would add more than a quarter of
// the loaded weights in anonymous memory, the configuration is loaded as a model of its
// own instead (built from the source, the tensors still in their base type
// copied from the base mix's file; the same bytes, so the same results).
class SwapBench {
 public:
  SwapBench(const std::string& source, const AllocationProblem& p, const SearchOptions& o)
      : o_(o), source_(source) {
    if (!o.imatrix_path.empty()) imatrix_ = load_imatrix(o.imatrix_path);
    if (o.n_chunks < 2) throw UsageError("search: --search-chunks must be at least 2 (paired standard errors)");
    eo_ = {.ctx = o.ctx, .max_chunks = o.first_chunk + o.n_chunks, .n_threads = o.n_threads,
           .top_k = o.top_k, .n_gpu_layers = o.n_gpu_layers, .max_device_bytes = o.max_device_bytes};
    eo_.imatrix = imatrix_.get();
    text_ = read_file(o.text_path);
    for (const auto& t : p.tensors) {
      for (const auto& c : t.candidates) bytes_[t.name][c.type] = c.size_bytes;
    }
    device_room_bytes_ = device_room(o);
    const std::string reference = o.reference_model.empty() ? source : o.reference_model;
    eo_.work_dir = o.work_dir;
    eo_.built_model_path = o.base_model_path;
    // On the CPU the base mix computes the reference too, its weights pointed
    // at the reference's file (one model in memory); else that file is loaded
    // alone first.
    if (o.n_gpu_layers == 0) load(base_types(p));
    if (ev_ && ev_->can_view_reference(reference)) {
      check_chunks(*ev_);
      ref_ = ev_->empty_reference();
      ev_->extend_reference_from(reference, ref_, o.first_chunk + o.n_chunks);
    } else {
      ev_.reset();
      n_loads_ = 0;
      {
        eval::Evaluator f16(reference, text_, eo_without_base(), o.logger);
        check_chunks(f16);
        ref_ = f16.empty_reference();
        f16.extend_reference(ref_, o.first_chunk + o.n_chunks);
      }
      load(base_types(p));
    }
    eo_.built_model_path.clear();  // other configurations: temporary files,
    eo_.donor_model_path = o.base_model_path;  // their unchanged tensors copied from the base mix
  }

  const std::map<std::string, std::string>& memory_types() const { return memory_; }
  void check_chunks(const eval::Evaluator& ev) const {
    if (ev.n_chunks() < o_.first_chunk + o_.n_chunks) {
      throw InputError(fmt::format("{}: {} chunks of {} tokens, the search needs {} (first {} + {})", o_.text_path,
                                   ev.n_chunks(), o_.ctx, o_.first_chunk + o_.n_chunks, o_.first_chunk, o_.n_chunks));
    }
  }
  eval::EvalOptions eo_without_base() const {
    eval::EvalOptions e = eo_;
    e.tensor_types.clear();
    e.built_model_path.clear();
    return e;
  }
  int n_reloads() const { return n_loads_ - 1; }

  // Brings the tensors of `types` that differ from what is loaded to their type.
  void apply(const std::map<std::string, std::string>& types) {
    if (would_pass_room(types)) {
      std::map<std::string, std::string> all = eo_.tensor_types;
      for (const auto& [name, type] : types) all[name] = type;
      load(all);
    }
    for (const auto& [name, type] : types) {
      if (!memory_.count(name)) continue;
      auto it = current_.find(name);
      const std::string& now = it == current_.end() ? memory_.at(name) : it->second;
      if (now == type) continue;
      ev_->set_tensor_type(name, type);  // the loaded type restores
      current_[name] = type;
    }
  }

  // Per-chunk mean KLD vs the reference on the search chunks.
  std::vector<double> measure() {
    const auto chunks = ev_->evaluate(o_.first_chunk, o_.n_chunks, &ref_);
    std::vector<double> out;
    for (const auto& c : chunks) {
      double s = 0;
      for (float k : c.kld_nats) s += k;
      out.push_back(c.kld_nats.empty() ? 0 : s / static_cast<double>(c.kld_nats.size()));
      n_tokens_ = std::max<int64_t>(n_tokens_, static_cast<int64_t>(c.kld_nats.size()) * o_.n_chunks);
    }
    return out;
  }
  int64_t n_tokens() const { return n_tokens_; }

 private:
  // The weights' room on the GPU: --max-vram, else the free memory now, less
  // what the loader keeps for the KV cache and compute buffers
  // (engine::kDeviceReserveBytes); 0 = no GPU, no limit.
  static int64_t device_room(const SearchOptions& o) {
    if (o.n_gpu_layers == 0) return 0;
    int64_t room = o.max_device_bytes;
    const engine::DeviceMemory dev = engine::gpu_memory();
    if (dev.total_bytes > 0) room = room > 0 ? std::min(room, dev.free_bytes) : dev.free_bytes;
    return room > 0 ? std::max<int64_t>(room - engine::kDeviceReserveBytes, 1) : 0;
  }
  // On the GPU: the loaded weights plus the swaps past the device's room. On
  // the host, swapped tensors are anonymous memory beside the memory-mapped
  // loaded file (pages the kernel can evict and read again): past
  // host_swap_share of the loaded weights, a file-backed load instead.
  bool would_pass_room(const std::map<std::string, std::string>& types) const {
    const int64_t with_swaps = weight_bytes(types, true);
    if (device_room_bytes_ > 0) return with_swaps > device_room_bytes_;
    const int64_t loaded = weight_bytes({}, false);
    return o_.host_swap_share > 0 &&
           static_cast<double>(with_swaps - loaded) > o_.host_swap_share * static_cast<double>(loaded);
  }
  // The loaded problem tensors' bytes, plus (with_swaps) the swap buffers
  // `types` would add.
  int64_t weight_bytes(const std::map<std::string, std::string>& types, bool with_swaps) const {
    int64_t total = 0;
    for (const auto& [name, by_type] : bytes_) {
      const auto loaded = eo_.tensor_types.find(name);
      if (loaded == eo_.tensor_types.end()) continue;
      total += size_of(name, loaded->second);
      const auto want = types.find(name);
      if (with_swaps && want != types.end() && want->second != loaded->second) total += size_of(name, want->second);
    }
    return total;
  }
  int64_t size_of(const std::string& name, const std::string& type) const {
    const auto& by_type = bytes_.at(name);
    const auto it = by_type.find(type);
    return it == by_type.end() ? 0 : it->second;
  }
  void load(const std::map<std::string, std::string>& types) {
    ev_.reset();  // free the device first
    eo_.tensor_types = types;
    ev_ = std::make_unique<eval::Evaluator>(source_, text_, eo_, o_.logger);
    memory_.clear();
    current_.clear();
    for (const auto& [name, type] : ev_->tensor_types()) {
      if (ev_->takes_any_type(name)) memory_[name] = type;  // the rest stays as loaded
    }
    if (++n_loads_ > 1) {
      const double loaded_gib = weight_bytes({}, false) / 1073741824.0;
      o_.logger.info(device_room_bytes_ > 0
                         ? fmt::format("search: the configuration is loaded as a model of its own ({:.2f} GiB of "
                                       "weights; its swaps from the last one would pass the device's room of {:.2f} GiB)",
                                       loaded_gib, device_room_bytes_ / 1073741824.0)
                         : fmt::format("search: the configuration is loaded as a model of its own ({:.2f} GiB of "
                                       "weights; its swaps from the last one would hold more than {:.0f}% of that "
                                       "in host memory)", loaded_gib, 100 * o_.host_swap_share));
    }
  }

  const SearchOptions& o_;
  std::string source_, text_;
  eval::EvalOptions eo_;
  std::shared_ptr<const Imatrix> imatrix_;
  std::unique_ptr<eval::Evaluator> ev_;
  eval::ReferenceStore ref_;
  std::map<std::string, std::map<std::string, int64_t>> bytes_;  // tensor -> type -> bytes
  std::map<std::string, std::string> memory_, current_;
  int64_t device_room_bytes_ = 0;
  int n_loads_ = 0;
  int64_t n_tokens_ = 0;
};

std::map<std::string, std::string> types_of(const AllocationProblem& p, const std::vector<int>& choice) {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < p.tensors.size(); ++i) out[p.tensors[i].name] = p.tensors[i].candidates[choice[i]].type;
  return out;
}

// Learns from a measured move: its residual (measured − predicted by `q`) is
// split over the changed tensors and added to the damage of the types they
// moved to, so the ranking stops proposing variations of a move that measured
// worse than predicted, and the reverse of a kept move ranks as costly.
void correct(AllocationProblem& q, const SearchMove& m, double measured) {
  double pred = 0;
  for (const auto& c : m.changes) {
    pred += q.tensors[c.tensor].candidates[c.to].damage_kld - q.tensors[c.tensor].candidates[c.from].damage_kld;
  }
  const double share = (measured - pred) / static_cast<double>(m.changes.size());
  for (const auto& c : m.changes) q.tensors[c.tensor].candidates[c.to].damage_kld += share;
}

// The signature of undoing `m` (SearchMove::signature's format).
std::string reverse_signature(const AllocationProblem& p, const SearchMove& m) {
  SearchMove back = m;
  for (auto& c : back.changes) std::swap(c.from, c.to);
  return back.signature(p);
}

double predicted(const AllocationProblem& p, const std::vector<int>& choice) {
  double s = 0;
  for (size_t i = 0; i < p.tensors.size(); ++i) s += p.tensors[i].candidates[choice[i]].damage_kld;
  return s;
}


// The search loop's state: the plan being improved and what was learned.
struct Loop {
  const AllocationProblem& p;
  const SearchOptions& o;
  SwapBench& bench;
  SearchResult& r;
  AllocationProblem ranked;         // the model, corrected by every measured move
  std::vector<std::string> tried;   // signatures measured (and undoings of kept moves)
  std::vector<double> cur;          // per-chunk KLD of the current plan

  // Measures `m` from the current plan; keeps it when it helps beyond noise.
  void try_move(const SearchMove& m) {
    tried.push_back(m.signature(p));
    std::vector<int> next = r.final_choice;
    for (const auto& c : m.changes) next[c.tensor] = c.to;
    bench.apply(types_of(p, next));
    const std::vector<double> got = bench.measure();
    SearchEval e{m.describe(p), static_cast<int>(m.changes.size()), m.same_layer, m.delta_bytes,
                 predicted(p, next) - predicted(p, r.final_choice)};
    std::tie(e.measured_delta_kld, e.measured_se) = paired(got, cur);
    e.accepted = e.measured_delta_kld < 0 && e.measured_delta_kld < -o.accept_z * e.measured_se;
    correct(ranked, m, e.measured_delta_kld);
    if (e.accepted) {
      r.final_choice = next;
      cur = got;
      ++r.n_accepted;
      tried.push_back(reverse_signature(p, m));  // measured worse than what is kept now
    } else {
      bench.apply(types_of(p, r.final_choice));
    }
    o.logger.debug(fmt::format("search {}: {} predicted {:+.6f} measured {:+.6f} ± {:.6f}{}", r.evals.size(),
                               e.move, e.predicted_delta_kld, e.measured_delta_kld, e.measured_se,
                               e.accepted ? " ACCEPTED" : ""));
    r.evals.push_back(std::move(e));
  }
};

// A plan measured during the correction rounds.
struct MeasuredChoice {
  std::vector<int> choice;
  std::vector<double> chunks;  // per-chunk KLD
  std::string name;
};

// The correction rounds (SearchOptions::correction_rounds); leaves the best
// measured plan in r.final_choice / loop.cur and the corrected model in loop.ranked.
void run_corrections(Loop& loop, int64_t capacity, const std::vector<double>& base, Clock::time_point t0) {
  const AllocationProblem& p = loop.p;
  SearchResult& r = loop.r;
  std::vector<MeasuredChoice> plans = {{r.final_choice, loop.cur, "solver"}};
  std::vector<correct::MeasuredPlan> measured = {
      {correct::split_damage(p, r.final_choice), r.initial_measured, r.initial_measured_se}};
  correct::Factors f;
  r.correction_stop = "max_rounds";
  for (int round = 1; round <= loop.o.correction_rounds; ++round) {
    const correct::MeasuredPlan& last = measured.back();
    if (std::abs(f.predict(last.predicted) - last.measured) <= 2 * last.se) {
      r.correction_stop = "agrees";
      break;
    }
    if (loop.o.max_seconds > 0 && seconds_since(t0) > loop.o.max_seconds) {
      r.correction_stop = "max_seconds";
      break;
    }
    f = correct::fit_factors(measured);
    const AllocationProblem q = correct::corrected(p, f);
    const std::vector<int> choice = allocate_plan(q, capacity, 0).solver.choice;
    if (std::any_of(plans.begin(), plans.end(), [&](const auto& m) { return m.choice == choice; })) {
      r.correction_stop = "converged";
      break;
    }
    loop.bench.apply(types_of(p, choice));
    CorrectionRound cr{round, f.up, f.down, predicted(p, choice), predicted(q, choice)};
    plans.push_back({choice, loop.bench.measure(), fmt::format("round {}", round)});
    std::tie(cr.measured, cr.measured_se) = paired(plans.back().chunks, base);
    cr.kld = mean_of(plans.back().chunks);
    for (size_t i = 0; i < choice.size(); ++i) cr.n_changed += choice[i] != r.initial_choice[i];
    measured.push_back({correct::split_damage(p, choice), cr.measured, cr.measured_se});
    loop.o.logger.info(fmt::format("correction round {}: factors up {:.3f} down {:.3f}; predicted {:+.6f} measured "
                                   "{:+.6f} ± {:.6f} vs base", round, f.up, f.down, cr.predicted, cr.measured,
                                   cr.measured_se));
    r.rounds.push_back(cr);
  }
  try {  // the base too, when it fits: never worse than the base on these chunks
    const Plan b = base_plan(p, 0);  // no overhead: size_bytes = Σ tensor bytes, as capacity counts
    if (b.size_bytes <= capacity) plans.push_back({choice_of(p, b), base, "base"});
  } catch (const RecipeError&) {
    // constraints exclude the base type of some tensor: not a candidate plan
  }
  const auto best = std::min_element(plans.begin(), plans.end(),
                                     [](const auto& a, const auto& b) { return mean_of(a.chunks) < mean_of(b.chunks); });
  r.final_choice = best->choice;
  r.start_from = best->name;
  loop.cur = best->chunks;
  loop.bench.apply(types_of(p, r.final_choice));
  loop.ranked = correct::corrected(p, correct::fit_factors(measured));
}

}  // namespace

SearchResult refine_plan(const std::string& source, const AllocationProblem& p, const std::vector<int>& choice,
                         int64_t capacity, const SearchOptions& o) {
  const auto t0 = Clock::now();
  SearchResult r;
  r.initial_choice = r.final_choice = choice;
  r.n_chunks = o.n_chunks;
  SwapBench bench(source, p, o);
  MoveOptions mo = o.moves;
  mo.max_moves = 1;  // first improvement: re-ranked after every measurement
  for (const auto& t : p.tensors) {
    if (!bench.memory_types().count(t.name)) mo.frozen.push_back(t.name);  // cannot be simulated
  }
  bench.apply(base_types(p));
  const std::vector<double> base = bench.measure();
  bench.apply(types_of(p, choice));
  Loop loop{p, o, bench, r, p, {}, bench.measure()};
  r.n_tokens = bench.n_tokens();
  r.base_kld = mean_of(base);
  r.initial_kld = mean_of(loop.cur);
  r.initial_predicted = predicted(p, choice);
  std::tie(r.initial_measured, r.initial_measured_se) = paired(loop.cur, base);
  r.setup_s = seconds_since(t0);
  o.logger.info(fmt::format("search: base KLD {:.5f}, plan {:.5f} on {} calibration chunks ({:.1f} s setup)",
                            r.base_kld, r.initial_kld, o.n_chunks, r.setup_s));
  r.correction_stop = "off";
  r.start_from = "solver";
  // A weight-error-only problem's damages are not nats: nothing to correct.
  const bool in_nats = std::none_of(p.tensors.begin(), p.tensors.end(),
                                    [](const TensorCurve& t) { return t.scale_from == "weight_error"; });
  if (o.correction_rounds > 0 && in_nats) run_corrections(loop, capacity, base, t0);
  r.stop_reason = "max_evals";
  while (static_cast<int>(r.evals.size()) < o.max_evals) {
    if (o.max_seconds > 0 && seconds_since(t0) > o.max_seconds) {
      r.stop_reason = "max_seconds";
      break;
    }
    const auto moves = propose_moves(loop.ranked, r.final_choice, capacity, mo, loop.tried);
    if (moves.empty()) {
      r.stop_reason = "no_moves";
      break;
    }
    if (o.progress) o.progress({"search", static_cast<int64_t>(r.evals.size()), o.max_evals, moves[0].describe(p)});
    loop.try_move(moves[0]);
  }
  if (o.progress) o.progress({"search", static_cast<int64_t>(r.evals.size()), o.max_evals, ""});
  r.final_kld = mean_of(loop.cur);
  r.final_predicted = predicted(p, r.final_choice);
  std::tie(r.final_measured, r.final_measured_se) = paired(loop.cur, base);
  r.n_reloads = bench.n_reloads();
  r.elapsed_s = seconds_since(t0);
  return r;
}

Plan searched_plan(const AllocationProblem& p, const Plan& initial, const SearchResult& r) {
  Plan plan = plan_from_choice(p, r.final_choice, initial.fixed_overhead_bytes);
  plan.method = "mckp+search";
  plan.budget_bytes = initial.budget_bytes;
  plan.solver = initial.solver;
  return plan;
}

nlohmann::json to_json(const SearchResult& r, const AllocationProblem& p) {
  nlohmann::json evals = nlohmann::json::array();
  for (const auto& e : r.evals) {
    evals.push_back({{"move", e.move}, {"n_changes", e.n_changes}, {"same_layer", e.same_layer},
                     {"delta_bytes", e.delta_bytes}, {"predicted_delta_kld", e.predicted_delta_kld},
                     {"measured_delta_kld", e.measured_delta_kld}, {"measured_se", e.measured_se},
                     {"accepted", e.accepted}});
  }
  const auto side = [](double pred, double meas, double se, double kld) {
    return nlohmann::json{{"predicted_delta_kld_vs_base", pred}, {"measured_delta_kld_vs_base", meas},
                          {"measured_se", se}, {"kld", kld}};
  };
  nlohmann::json rounds = nlohmann::json::array();
  for (const auto& c : r.rounds) {
    rounds.push_back({{"round", c.round}, {"factor_up", c.factor_up}, {"factor_down", c.factor_down},
                      {"predicted_raw_delta_kld_vs_base", c.predicted_raw}, {"predicted_delta_kld_vs_base", c.predicted},
                      {"measured_delta_kld_vs_base", c.measured}, {"measured_se", c.measured_se}, {"kld", c.kld},
                      {"n_changed", c.n_changed}});
  }
  nlohmann::json changed = nlohmann::json::object();
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    if (r.final_choice[i] == r.initial_choice[i]) continue;
    changed[p.tensors[i].name] = {p.tensors[i].candidates[r.initial_choice[i]].type,
                                  p.tensors[i].candidates[r.final_choice[i]].type};
  }
  return {{"schema", kSearchSchema}, {"n_chunks", r.n_chunks}, {"n_tokens", r.n_tokens},
          {"base_kld", r.base_kld},
          {"before", side(r.initial_predicted, r.initial_measured, r.initial_measured_se, r.initial_kld)},
          {"after", side(r.final_predicted, r.final_measured, r.final_measured_se, r.final_kld)},
          {"correction", {{"rounds", rounds}, {"stop", r.correction_stop}, {"start_from", r.start_from}}},
          {"n_evals", r.evals.size()}, {"n_accepted", r.n_accepted}, {"changed", changed},
          {"stop_reason", r.stop_reason}, {"n_reloads", r.n_reloads}, {"setup_s", r.setup_s}, {"elapsed_s", r.elapsed_s}, {"evals", evals}};
}

}  // namespace cb
