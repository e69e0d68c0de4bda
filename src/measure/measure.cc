// run_measure: the sweep driver (journal, resume, per-domain loop, units, auto
// splitting, probes). Configuration evaluators: config_eval.cc; unit planning
// and stopping rule: units.cc; journal header and resume checks: header.cc.
#include "cerebellum/measure/measure.h"
#include "cerebellum/measure/memory.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/common/quant_types.h"
#include "cerebellum/eval/evaluator.h"
#include "cerebellum/recipe/recipe.h"
#include "config_eval.h"
#include "engine/engine.h"
#include "paired.h"

namespace cb::measure {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

class Sweep {
 public:
  Sweep(const MeasureOptions& o, const ModelInfo& model, TypeMap base, JournalWriter* w)
      : o_(o), model_(model), base_(std::move(base)), w_(w) {
    if (!w) return;
    if (w->journal().torn_tail) {
      o_.logger.warn(fmt::format("{}: the last line was torn (a crash mid-write); cut, its record is redone",
                                 o_.out_path));
    }
    for (const auto& d : w->journal().duplicates) o_.logger.warn("duplicate record " + d);
    for (const auto& m : w->journal().measurements) {
      done_[measurement_key(m.domain, m.direction, m.unit.id, m.types)] = m;
    }
    for (const auto& p : w->journal().probes) done_probes_.insert(probe_key(p.domain, p.probe, p.units));
    for (const auto& b : w->journal().baselines) have_baseline_.insert(b.domain);
  }

  void run_domain(const MeasureText& text);
  // Fills the domain's reference store for every chunk a unit may reach
  // (stop.max_chunks) with the full-precision model alone, and saves it.
  void reference_only(const MeasureText& text);
  // After reference_only: the base mix built to J.base.gguf (resident), which
  // shards load instead of each building their own (~60 s each at 8B).
  void build_shared_base(const MeasureText& text);
  MeasureSummary summary;

 private:
  int chunks_per_step() const { return eval_options().n_batch / o_.ctx; }
  eval::EvalOptions eval_options() const { return sweep_eval_options(o_); }
  std::string reference_path(const std::string& domain) const;
  // Loads the domain's cached store into ref_ when it was made for these
  // settings (else starts empty: the journal header guards the results).
  void load_reference_cache(const eval::Evaluator& ev, const std::string& path, const std::string& domain);
  void ensure_chunks(int need, const TypeMap& restore, const TypeMap* upcoming = nullptr);
  void record_baseline(const std::string& domain);
  void save_reference(const std::string& path);
  // Chunks from 0 until the stop rule says (adaptive) or `n_max` (0 = the reference's).
  Outcome measure(const TypeMap& overrides, bool adaptive, int n_max = 0);
  // measure(), the outcome handed to `record` possibly once the next
  // configuration's first decode is under way (its last step's scoring then
  // overlaps that decode: ConfigEval::evaluate_then); cfg_->flush() forces it.
  void measure_then(const TypeMap& overrides, bool adaptive, int n_max, std::function<void(Outcome)> record);
  // The record of `key` re-measured to refine_chunks' length, when it asks for more.
  std::optional<JournalMeasurement> refine(const std::string& key, const JournalMeasurement& kept);
  // Measures `u` unless the journal has it; its record may come after the
  // call (measure_then): cfg_->flush() before reading done_.
  void unit(const std::string& domain, const PlannedUnit& u);
  std::vector<PlannedUnit> plan(PlanLevel level, const std::string& type,
                                const std::string& direction) const;
  void sweep_type(const std::string& domain, const std::string& type, const std::string& dir);
  // This process's share of `units`, each measured (or resumed) in order
  // (spread_heavy_units' when converting ahead).
  std::vector<const JournalMeasurement*> measure_units(const std::string& domain,
                                                       const std::vector<PlannedUnit>& units);
  std::vector<PlannedUnit> domain_units() const;  // every target's and promotion's units, in sweep order
  void plan_shard(const std::string& domain);
  // This process measures the unit: its shard's (--shard), or granted by the
  // MPI coordinator (MeasureOptions::claim), or every unit.
  bool owns(const std::string& domain, const PlannedUnit& u) const {
    const std::string key = measurement_key(domain, u.direction, u.unit.id, u.types);
    if (o_.shard.sharded()) return owned_.count(key) > 0;
    return !o_.claim || o_.claim(key);
  }
  void probes(const std::string& domain);
  void probe(const std::string& domain, const std::string& kind,
             const std::vector<const JournalMeasurement*>& parts);
  void progress(const std::string& item) {
    if (o_.progress) o_.progress(Progress{"measure", done_units_, total_units_, item});
  }

  const MeasureOptions& o_;
  const ModelInfo& model_;
  TypeMap base_;
  JournalWriter* w_;  // null for reference_only
  std::map<std::string, JournalMeasurement> done_;
  std::set<std::string> done_probes_;
  std::set<std::string> have_baseline_;
  std::vector<std::string> swappable_;
  std::set<std::string> owned_;  // --shard: the measurement keys of this shard's units in the current domain
  std::unique_ptr<ConfigEval> cfg_;
  std::vector<TypeMap> ahead_types_;  // the units after the one in flight, to convert ahead
  eval::ReferenceStore ref_;
  std::vector<eval::ChunkResult> base_chunks_;
  bool ref_dirty_ = false;
  int64_t done_units_ = 0, total_units_ = 0;
};

std::string Sweep::reference_path(const std::string& domain) const {
  const std::string path = reference_store_path(reference_store_prefix(o_), domain);
  const fs::path dir = fs::path(path).parent_path();
  if (!dir.empty()) {
    std::error_code ec;  // a failure surfaces as the store's own IoError when it is written
    fs::create_directories(dir, ec);
  }
  return path;
}

Outcome Sweep::measure(const TypeMap& overrides, bool adaptive, int n_max) {
  Outcome out;
  measure_then(overrides, adaptive, n_max, [&out](Outcome o) { out = std::move(o); });
  cfg_->flush();
  return out;
}

void Sweep::measure_then(const TypeMap& overrides, bool adaptive, int n_max, std::function<void(Outcome)> record) {
  const double t0 = now_s();
  const int n = n_max > 0 ? std::min(n_max, ref_.key().n_chunks) : ref_.key().n_chunks;
  // The baseline's first chunks before the swap, while the model is at its
  // base: the unit is then swapped in once, not swapped, restored for the
  // baseline and converted again.
  ensure_chunks(std::min(o_.stop.min_chunks, n), {}, &overrides);
  const double t_swap = now_s();
  cfg_->set(overrides);
  auto out = std::make_shared<Outcome>();
  out->swap_s = now_s() - t_swap;
  const int blocks = o_.stop.blocks_per_chunk;
  // A step's results into the outcome; true when the stop rule says so.
  const auto take = [this, out, blocks, adaptive](const std::vector<eval::ChunkResult>& results, int done) {
    for (const eval::ChunkResult& r : results) {
      const eval::ChunkResult& b = base_chunks_.at(r.chunk);
      push_block_diffs(r.kld_nats, b.kld_nats, blocks, &out->d_kld);
      push_block_diffs(r.nll_nats, b.nll_nats, blocks, &out->d_nll);
      push_block_diffs(r.top1_match, b.top1_match, blocks, &out->d_top1);
      out->series.append(r);
    }
    out->n_chunks = done;
    summary.chunks_evaluated += static_cast<int64_t>(results.size());
    if (adaptive) out->stopped = stop_reason(out->d_kld, out->n_chunks, o_.stop);
    return !out->stopped.empty();
  };
  const auto finish = [out, t0, record] {
    if (out->stopped.empty()) out->stopped = "cap";
    out->elapsed_s = now_s() - t0;
    record(std::move(*out));
  };
  for (int done = 0; done < n;) {
    const int next_check = done == 0 ? o_.stop.min_chunks : done + o_.stop.step_chunks;
    const int count = std::min(next_check, n) - done;
    ensure_chunks(done + count, overrides);
    // The next unit is converted while this one is evaluated (after any
    // reference pass, which would release the model and the prefetch).
    if (!ahead_types_.empty()) cfg_->prefetch(ahead_types_, o_.prefetch_max_bytes);
    ahead_types_.clear();
    done += count;
    if (done >= n) {  // the last step whatever it shows: nothing waits on it
      cfg_->evaluate_then(done - count, count, ref_, [take, finish, done](std::vector<eval::ChunkResult> r) {
        take(r, done);
        finish();
      });
      return;
    }
    if (take(cfg_->evaluate(done - count, count, ref_), done)) break;
  }
  finish();
}

// The reference and the baseline are computed only for the chunks some unit
// reaches (most stop after a few), growing geometrically so the whole model
// is re-swapped to its base O(log n) times.
void Sweep::ensure_chunks(int need, const TypeMap& restore, const TypeMap* upcoming) {
  const int n_total = ref_.key().n_chunks;
  const int have = static_cast<int>(base_chunks_.size());
  need = std::min(need, n_total);
  if (need <= have) return;
  const int to = std::min(n_total, std::max({need, 2 * have, o_.stop.min_chunks}));
  if (ref_.n_filled() < to) {
    // The reference grows faster than the baseline: on a GPU each extension
    // loads the full-precision model on its own (resident mode), so do it rarely.
    const int ref_to = std::min(n_total, std::max({to, 2 * ref_.n_filled(), 4 * o_.stop.min_chunks}));
    cfg_->extend_reference(ref_, ref_to);
    ref_dirty_ = true;
  }
  cfg_->set({});
  if (upcoming && !ahead_types_.empty()) {  // the unit about to be swapped in converts meanwhile
    std::vector<TypeMap> next{*upcoming};
    next.insert(next.end(), ahead_types_.begin(), ahead_types_.end());
    cfg_->prefetch(next, o_.prefetch_max_bytes);
  }
  for (int done = have; done < to;) {
    const int count = std::min(chunks_per_step(), to - done);
    for (eval::ChunkResult& r : cfg_->evaluate(done, count, ref_)) {
      base_chunks_.push_back(std::move(r));
    }
    done += count;
    summary.chunks_evaluated += count;
  }
  cfg_->set(restore);
}

// The baseline's own record (informational: deltas are paired per chunk), with
// the chunks this sweep computed. Written once per domain.
void Sweep::record_baseline(const std::string& domain) {
  if (have_baseline_.count(domain)) return;
  if (base_chunks_.empty()) {  // every unit resumed: a baseline line torn by a crash is redone
    int need = 0;
    for (const auto& [key, m] : done_) {
      if (m.domain == domain) need = std::max(need, m.metrics.n_chunks);
    }
    if (need == 0) return;  // nothing measured in this domain
    ensure_chunks(need, {});
  }
  have_baseline_.insert(domain);
  eval::TokenSeries series;
  for (const eval::ChunkResult& r : base_chunks_) series.append(r);
  JournalBaseline b;
  b.domain = domain;
  b.metrics = metrics_of(series, static_cast<int>(base_chunks_.size()));
  w_->append(b);
}

void Sweep::unit(const std::string& domain, const PlannedUnit& u) {
  const std::string key = measurement_key(domain, u.direction, u.unit.id, u.types);
  auto it = done_.find(key);
  if (it != done_.end()) {
    if (auto r = refine(key, it->second)) it->second = std::move(*r);
    else ++summary.n_resumed;
    ++done_units_;
    progress(u.unit.id);
    return;
  }
  progress(u.unit.id);
  measure_then(u.types, true, 0, [this, domain, u, key](Outcome out) {
    JournalMeasurement m;
    m.domain = domain;
    m.direction = u.direction;
    m.unit = u.unit;
    m.types = u.types;
    m.stopped = out.stopped;
    fill_deltas(out, &m);
    m.delta_kld_samples = out.d_kld;
    w_->append(m);
    ++summary.n_measured;
    ++summary.stopped[m.stopped];
    done_.emplace(key, std::move(m));
    ++done_units_;
    progress(u.unit.id);
  });
}

std::optional<JournalMeasurement> Sweep::refine(const std::string& key, const JournalMeasurement& kept) {
  auto want = o_.refine_chunks.find(key);
  if (want == o_.refine_chunks.end()) return std::nullopt;
  const int chunks = std::min(want->second, o_.stop.max_chunks);
  if (chunks <= kept.metrics.n_chunks) return std::nullopt;
  progress(kept.unit.id + " (refine)");
  const Outcome out = measure(kept.types, false, chunks);
  JournalMeasurement m = kept;
  m.stopped = "refined";
  fill_deltas(out, &m);
  m.delta_kld_samples = out.d_kld;
  m.refines = kept.metrics.n_chunks;
  w_->append(m);
  ++summary.n_refined, ++summary.stopped[m.stopped];
  return m;
}

std::vector<PlannedUnit> Sweep::plan(PlanLevel level, const std::string& type,
                                     const std::string& direction) const {
  std::vector<PlannedUnit> units =
      plan_units(model_, base_, swappable_, level, type, direction, o_.tensor_regex);
  if (o_.limit_units > 0 && static_cast<int>(units.size()) > o_.limit_units) {
    units.resize(o_.limit_units);
  }
  return units;
}

void Sweep::sweep_type(const std::string& domain, const std::string& type,
                       const std::string& dir) {
  const std::vector<PlannedUnit> units = plan(o_.plan, type, dir);
  const std::vector<const JournalMeasurement*> results = measure_units(domain, units);
  if (o_.plan != PlanLevel::kAuto || results.empty()) return;
  // Auto: split the groups that matter into their tensors (a group's members
  // are one per layer, so per-tensor = per-layer for that role).
  double max_delta = 0;
  for (const auto* m : results) max_delta = std::max(max_delta, std::abs(m->delta_kld));
  std::set<std::string> split;
  for (const auto* m : results) {
    if (m->unit.tensors.size() > 1 &&
        std::abs(m->delta_kld) - 2 * m->delta_kld_se > o_.auto_split_frac * max_delta) {
      split.insert(m->unit.tensors.begin(), m->unit.tensors.end());
    }
  }
  std::vector<PlannedUnit> members;
  for (PlannedUnit& u : plan_units(model_, base_, swappable_, PlanLevel::kTensors, type, dir,
                                   o_.tensor_regex)) {
    if (split.count(u.unit.id)) members.push_back(std::move(u));
  }
  total_units_ += static_cast<int64_t>(members.size());
  measure_units(domain, members);
}

std::vector<const JournalMeasurement*> Sweep::measure_units(const std::string& domain,
                                                            const std::vector<PlannedUnit>& units) {
  // Converted ahead (not under MPI, where the coordinator hands units out),
  // the heavy units spread out; otherwise in the plan's order.
  const bool ahead = o_.n_gpu_layers != 0 && o_.prefetch_max_bytes > 0 && !o_.claim;
  std::vector<size_t> order;
  for (size_t j = 0; j < units.size(); ++j) {
    if (owns(domain, units[j])) order.push_back(j);
  }
  if (ahead) order = spread_heavy_units(units, std::move(order), model_);
  std::vector<bool> todo;  // not yet in the journal
  for (size_t j : order) {
    todo.push_back(!done_.count(measurement_key(domain, units[j].direction, units[j].unit.id, units[j].types)));
  }
  std::vector<const JournalMeasurement*> results;
  for (size_t p = 0; p < order.size(); ++p) {
    ahead_types_.clear();
    for (size_t q = p + 1; ahead && q < order.size() && ahead_types_.size() < kPrefetchUnits; ++q) {
      if (todo[q]) ahead_types_.push_back(units[order[q]].types);
    }
    unit(domain, units[order[p]]);
  }
  ahead_types_.clear();
  cfg_->flush();  // the last unit's record
  for (size_t j : order) {
    results.push_back(&done_.at(measurement_key(domain, units[j].direction, units[j].unit.id, units[j].types)));
  }
  return results;
}

// --shard: every unit of the domain (all types, both directions), split
// across the shards; this one's keys recorded in the journal for a merge.
std::vector<PlannedUnit> Sweep::domain_units() const {
  std::vector<PlannedUnit> all;
  for (const std::string& t : o_.targets) {
    for (PlannedUnit& u : plan(o_.plan, t, "ablate")) all.push_back(std::move(u));
  }
  for (const std::string& t : o_.promote) {
    for (PlannedUnit& u : plan(o_.plan, t, "promote")) all.push_back(std::move(u));
  }
  return all;
}

void Sweep::plan_shard(const std::string& domain) {
  owned_.clear();
  if (!o_.shard.sharded()) return;
  const std::vector<PlannedUnit> all = domain_units();
  const std::vector<int> shard = assign_shards(all, model_, o_.shard.count);
  JournalShardPlan sp{domain, o_.shard.index, o_.shard.count, {}};
  for (size_t i = 0; i < all.size(); ++i) {
    if (shard[i] != o_.shard.index) continue;
    sp.unit_keys.push_back(measurement_key(domain, all[i].direction, all[i].unit.id, all[i].types));
    owned_.insert(sp.unit_keys.back());
  }
  for (const auto& done : w_->journal().shard_plans) {
    if (done.domain == domain) return;  // a resume: recorded already (the same assignment)
  }
  w_->append(sp);
}

void Sweep::save_reference(const std::string& path) {
  if (!ref_dirty_) return;
  ref_.save(path);
  ref_dirty_ = false;
}

void Sweep::load_reference_cache(const eval::Evaluator& ev, const std::string& path, const std::string& domain) {
  ref_ = ev.empty_reference();
  if (!o_.shared_reference.empty() && w_) {  // a sweep (not --reference-only) reading the shared stores
    // Read only: chunks this shard adds are saved to its own store (`path`),
    // so shards never write one file together. Anything but a store made for
    // these settings is refused, not rebuilt.
    const std::string shared = reference_store_path(o_.shared_reference, domain);  // exists: checked up front
    try {
      ref_ = eval::ReferenceStore::load(shared, ev.reference_key());
    } catch (const MismatchError& e) {
      throw MismatchError(fmt::format("--shared-reference {} was made for other settings: {}", shared, e.what()));
    }
    return;
  }
  if (!fs::exists(path)) return;
  try {
    ref_ = eval::ReferenceStore::load(path, ev.reference_key());
  } catch (const MismatchError& e) {
    o_.logger.info(fmt::format("reference cache {} is stale ({}); rebuilding", path, e.what()));
  } catch (const InputError& e) {  // truncated, bit-flipped: only a cache
    o_.logger.warn(fmt::format("reference cache is damaged ({}); rebuilding it", e.what()));
  }
}

void Sweep::reference_only(const MeasureText& text) {
  const std::string ref_path = reference_path(text.domain), body = read_file(text.path);
  const std::string reference = o_.reference_model.empty() ? o_.source_path : o_.reference_model;
  // On the CPU the base mix the shards load anyway (built here, once) computes
  // the reference, its weights pointed at the reference's file: one model in memory.
  eval::EvalOptions eo = eval_options();
  bool view = o_.mode == EvalMode::kResident && eo.n_gpu_layers == 0;
  if (view) {
    eo.cpu_repack = false;  // a skeleton here: its weights point at the reference's file
    eo.tensor_types = base_;
    eo.built_model_path = base_model_path(o_);
    eo.work_dir = fs::path(o_.out_path).parent_path().string();
  }
  auto ev = std::make_unique<eval::Evaluator>(view ? o_.source_path : reference, body, eo, o_.logger);
  if (view && !ev->can_view_reference(reference)) {  // e.g. pages not released: load the reference itself
    ev.reset();
    ev = std::make_unique<eval::Evaluator>(reference, body, eval_options(), o_.logger);
    view = false;
  }
  load_reference_cache(*ev, ref_path, text.domain);
  const int n = ref_.key().n_chunks;
  if (ref_.n_filled() < n) {
    const auto progress = [&](const Progress& p) {
      if (o_.progress) o_.progress({"reference", p.done, p.total, text.domain});
    };
    view ? ev->extend_reference_from(reference, ref_, n, progress) : ev->extend_reference(ref_, n, progress);
    ref_dirty_ = true;
  }
  summary.chunks_evaluated += n;
  save_reference(ref_path);
}

void Sweep::build_shared_base(const MeasureText& text) {
  eval::EvalOptions eo = eval_options();
  eo.tensor_types = base_;
  eo.built_model_path = base_model_path(o_);
  eo.work_dir = fs::path(o_.out_path).parent_path().string();
  eval::Evaluator(o_.source_path, read_file(text.path), eo, o_.logger);  // builds (or finds) it, loads it once
  o_.logger.info("base mix for the shards: " + base_model_path(o_) + " (remove it when the sweep is merged)");
}

void Sweep::run_domain(const MeasureText& text) {
  const std::string body = read_file(text.path);
  const std::string ref_path = reference_path(text.domain);
  eval::EvalOptions eo = eval_options();
  eo.work_dir = fs::path(ref_path).parent_path().string();
  if (o_.mode == EvalMode::kResident) {
    // The base mix in real types, built once next to the journal (kept for a
    // resume; removed when the sweep ends).
    eo.tensor_types = base_;
    eo.built_model_path = base_model_path(o_);
    if (!o_.shared_reference.empty()) eo.shared_built_model_path = base_model_path(o_.shared_reference);
  }
  auto ev = std::make_unique<eval::Evaluator>(o_.source_path, body, eo, o_.logger);
  load_reference_cache(*ev, ref_path, text.domain);
  for (const auto& [name, type] : ev->tensor_types()) {
    // Real types only where the graph's ops take them (not ssm_conv1d).
    if (o_.mode != EvalMode::kResident || ev->takes_any_type(name)) swappable_.push_back(name);
  }
  base_chunks_.clear();
  if (o_.mode == EvalMode::kResident) {
    cfg_ = make_resident(std::move(ev), o_.source_path, o_.reference_model, body, eo, o_.logger);
  } else if (o_.mode == EvalMode::kSimulated) {
    cfg_ = make_simulated(*ev, base_);
  } else {
    ev.reset();
    cfg_ = make_exact(o_.source_path, body, eo, base_, o_.logger);
  }
  // The whole domain's units up front, so progress and its ETA cover the run.
  plan_shard(text.domain);
  total_units_ += static_cast<int64_t>(o_.shard.sharded() ? owned_.size() : domain_units().size());
  for (const std::string& t : o_.targets) sweep_type(text.domain, t, "ablate");
  for (const std::string& t : o_.promote) sweep_type(text.domain, t, "promote");
  if (o_.probes.enabled && !o_.targets.empty()) probes(text.domain);
  record_baseline(text.domain);
  save_reference(ref_path);
  summary.n_prefetched += cfg_->prefetched_swaps();
  summary.eval_timings += cfg_->timings();
  cfg_.reset();
  swappable_.clear();
}

void Sweep::probe(const std::string& domain, const std::string& kind,
                  const std::vector<const JournalMeasurement*>& parts) {
  JournalProbe p;
  p.domain = domain;
  p.probe = kind;
  double pred = 0, pred_se2 = 0;
  for (const auto* m : parts) {
    p.units.push_back(m->unit);
    for (const auto& [t, ty] : m->types) p.types[t] = ty;
    pred += m->delta_kld;
    pred_se2 += m->delta_kld_se * m->delta_kld_se;
  }
  if (!done_probes_.insert(probe_key(domain, kind, p.units)).second) return;
  progress(kind);
  const Outcome out = measure(p.types, true);
  fill_deltas(out, &p);
  p.stopped = out.stopped;
  p.predicted_delta_kld = pred;
  p.predicted_delta_kld_se = std::sqrt(pred_se2);
  w_->append(p);
  ++summary.n_probes;
}

void Sweep::probes(const std::string& domain) {
  // Probes combine single units of the first ablation target, largest ΔKLD first.
  std::set<std::string> first_target;
  for (const PlannedUnit& u : plan(PlanLevel::kTensors, o_.targets.front(), "ablate")) {
    first_target.insert(u.unit.id);
  }
  std::vector<const JournalMeasurement*> top;
  for (const auto& [k, m] : done_) {
    if (m.domain == domain && m.direction == "ablate" && m.unit.level != "group" &&
        (m.unit.level != "tensor" || first_target.count(m.unit.id))) {
      top.push_back(&m);
    }
  }
  std::sort(top.begin(), top.end(), [](auto* a, auto* b) {
    return a->delta_kld != b->delta_kld ? a->delta_kld > b->delta_kld : a->unit.id < b->unit.id;
  });
  auto layer_of = [&](const JournalMeasurement* m) { return tensor_layer(m->unit.tensors.front()); };
  const int n_top = std::min<int>(o_.probes.n_top, static_cast<int>(top.size()));
  for (int k = 2; k <= std::min(o_.probes.ladder_max, n_top); ++k) {
    probe(domain, fmt::format("ladder_{}", k), {top.begin(), top.begin() + k});
  }
  for (int i = 0; i < n_top; ++i) {
    for (size_t j = 0; j < top.size(); ++j) {
      if (static_cast<int>(j) != i && layer_of(top[j]) == layer_of(top[i]) && top[i]->unit.level == "tensor") {
        probe(domain, "same_layer", {top[i], top[j]});
        break;
      }
    }
    for (size_t j = i + 1; j < top.size(); ++j) {
      if (layer_of(top[j]) != layer_of(top[i])) {
        probe(domain, "cross_layer", {top[i], top[j]});
        break;
      }
    }
  }
}

}  // namespace

MeasureSummary run_measure(const MeasureOptions& o, const ModelInfo* source) {
  const double t0 = now_s();
  check_measure_options(o);
  if (o.cpu_repack && o.mode == EvalMode::kResident && !engine::cpu_repack_buffer_type()) {
    o.logger.warn("--cpu-repack: not here (a GPU is present, the CPU offers AMX, or llama.cpp has no repacking); "
                  "the weights are read from the file as without it");
  }
  const ModelInfo model = source ? *source : inspect_model(o.source_path);
  if (!o.reference_model.empty()) check_reference_model(o.reference_model, model);
  std::error_code ec;
  if (o.reference_only) {
    std::string base_name;
    Sweep sweep(o, model, o.mode == EvalMode::kResident ? resolve_base(o.base, model, &base_name) : TypeMap{}, nullptr);
    for (const MeasureText& t : o.texts) sweep.reference_only(t);
    if (o.mode == EvalMode::kResident) sweep.build_shared_base(o.texts.front());
    sweep.summary.elapsed_s = now_s() - t0;
    return sweep.summary;
  }
  // One writer per journal for the whole run, taken before the existence
  // check so two runs cannot both start it (issue 15: 5 races in 7).
  const ExclusiveLock lock(o.out_path, "journal " + o.out_path);
  if (o.resume) {
    drop_torn_header(o.out_path);
  } else if (fs::exists(o.out_path, ec) && fs::file_size(o.out_path, ec) > 0) {
    throw UsageError(fmt::format("{} exists: pass --resume to continue it, or remove it",
                                 o.out_path));
  }
  std::string base_name;
  const TypeMap base = resolve_base(o.base, model, &base_name);
  if (o.mode == EvalMode::kResident) {
    const MemoryProjection need = project_memory(o, model, base);
    o.logger.info(need.describe());
    check_memory(o, need);
  }
  JournalHeader header = make_header(o, model, base);
  header.base_name = base_name;
  const bool fresh = !(fs::exists(o.out_path, ec) && fs::file_size(o.out_path, ec) > 0);
  JournalWriter writer(o.out_path, header,
                       [&](const JournalHeader& existing) { check_resume_header(existing, header, o.out_path); });
  Sweep sweep(o, model, base, &writer);
  try {
    for (const MeasureText& t : o.texts) sweep.run_domain(t);
  } catch (...) {
    // A run that failed before recording anything leaves nothing behind (a
    // header-only journal and the built base mix would only be clutter).
    const Journal& j = writer.journal();
    if (fresh && j.measurements.empty() && j.baselines.empty() && j.probes.empty()) {
      fs::remove(o.out_path, ec);
      fs::remove(base_model_path(o), ec);
    }
    throw;
  }
  if (!o.keep_base_model) fs::remove(base_model_path(o), ec);  // the resident base mix (kept for a resume)
  sweep.summary.elapsed_s = now_s() - t0;
  sweep.summary.journal = writer.journal();
  return sweep.summary;
}

}  // namespace cb::measure
