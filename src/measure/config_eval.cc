#include "config_eval.h"

#include <algorithm>
#include <utility>

#include "cerebellum/common/quant_types.h"

namespace cb::measure {

eval::EvalOptions sweep_eval_options(const MeasureOptions& o) {
  eval::EvalOptions e;
  e.ctx = o.ctx;
  e.max_chunks = o.stop.max_chunks;
  e.n_threads = o.n_threads;
  e.n_gpu_layers = o.n_gpu_layers;
  e.max_device_bytes = o.max_device_bytes;
  // Chunks per decode: up to 2048 tokens, at most min_chunks (the first
  // stopping check) and 4.
  e.n_batch = o.ctx * std::clamp(std::min(2048 / std::max(1, o.ctx), o.stop.min_chunks), 1, 4);
  e.top_k = o.top_k;
  e.first_scored = o.first_scored < 0 ? o.ctx / 8 : o.first_scored;
  e.reference_model_path = o.reference_model;
  e.lanes = o.lanes;
  e.cpu_repack = o.cpu_repack;
  return e;
}

namespace {

class SimulatedEval : public ConfigEval {
 public:
  SimulatedEval(eval::Evaluator& ev, const TypeMap& base) : ev_(ev), memory_(ev.tensor_types()) {
    for (const auto& [name, mem_type] : memory_) {
      auto b = base.find(name);
      if (b != base.end()) base_[name] = type_by_name(b->second).name;
    }
    // The base is applied by the first set(); the reference usually comes first.
  }

  void set(const TypeMap& overrides) override {
    timed(ev_, [&] {
      if (at_source_) {
        for (const auto& [name, type] : base_) {
          if (!overrides.count(name)) to_base(name);
        }
        at_source_ = false;
      }
      for (const auto& [name, type] : current_) {
        if (!overrides.count(name)) to_base(name);
      }
      // Always from the original F16 data (the swapper never compounds).
      for (const auto& [name, type] : overrides) ev_.set_tensor_type_simulated(name, type);
    });
    current_ = overrides;
  }

  std::vector<eval::ChunkResult> evaluate(int first, int count,
                                          const eval::ReferenceStore& ref) override {
    return timed_evaluate(ev_, first, count, ref);
  }

  void extend_reference(eval::ReferenceStore& ref, int n_chunks) override {
    if (ref.n_filled() >= n_chunks) return;
    ev_.restore_all();
    at_source_ = true;
    current_.clear();
    ev_.extend_reference(ref, n_chunks);
  }

 private:
  void to_base(const std::string& name) {
    auto b = base_.find(name);
    if (b == base_.end() || b->second == memory_.at(name)) {
      ev_.restore_tensor(name);
    } else {
      ev_.set_tensor_type_simulated(name, b->second);
    }
  }

  eval::Evaluator& ev_;
  TypeMap memory_;  // in-memory (source) types of swappable tensors
  TypeMap base_;
  TypeMap current_;
  bool at_source_ = true;  // every tensor holds its source data (reference state)
};

// The base mix loaded once in its real types; a configuration is a set of
// in-place swaps to real types (converted from the source). The reference
// pass, on the CPU, runs the base mix with its weights pointed at the
// reference file's mapped bytes (Evaluator::extend_reference_from); with
// layers on a device it loads the reference on its own, the base released.
class ResidentEval : public ConfigEval {
 public:
  ResidentEval(std::unique_ptr<eval::Evaluator> base_ev, std::string source, std::string reference,
               std::string text, eval::EvalOptions opts, Logger logger)
      : source_(std::move(source)), reference_(std::move(reference)), text_(std::move(text)),
        opts_(std::move(opts)), logger_(std::move(logger)), ev_(std::move(base_ev)) {
    if (reference_.empty()) reference_ = source_;
  }

  void set(const TypeMap& overrides) override {
    load();
    timed(*ev_, [&] {
      for (const auto& [name, type] : current_) {
        if (!overrides.count(name)) ev_->restore_tensor(name);
      }
      for (const auto& [name, type] : overrides) {
        auto it = current_.find(name);
        if (it == current_.end() || it->second != type) ev_->set_tensor_type(name, type);
      }
    });
    current_ = overrides;
  }

  std::vector<eval::ChunkResult> evaluate(int first, int count,
                                          const eval::ReferenceStore& ref) override {
    load();
    return timed_evaluate(*ev_, first, count, ref);
  }

  void evaluate_then(int first, int count, const eval::ReferenceStore& ref,
                     eval::Evaluator::ResultsFn then) override {
    load();
    timed(*ev_, [&] { ev_->evaluate_then(first, count, &ref, std::move(then)); });
  }

  void flush() override {
    if (ev_) timed(*ev_, [&] { ev_->finish_pending(); });
  }

  bool prefetch(const std::vector<TypeMap>& next, int64_t max_bytes) override {
    return ev_ && ev_->prefetch_tensor_types(next, max_bytes);
  }
  int64_t prefetched_swaps() const override { return prefetched_ + (ev_ ? ev_->prefetched_swaps() : 0); }

  void extend_reference(eval::ReferenceStore& ref, int n_chunks) override {
    if (ref.n_filled() >= n_chunks) return;
    flush();  // the evaluator may go, and `ref` grows
    current_.clear();
    if (opts_.n_gpu_layers == 0) {  // on the CPU: through the base mix, viewing the reference's file
      load();
      if (ev_->can_view_reference(reference_)) {
        ev_->extend_reference_from(reference_, ref, n_chunks);
        return;
      }
    }
    prefetched_ = prefetched_swaps();
    ev_.reset();  // never both models at once
    eval::EvalOptions o = opts_;
    o.tensor_types.clear();
    o.built_model_path.clear();
    o.reference_model_path.clear();
    eval::Evaluator reference(reference_, text_, o, logger_);
    reference.extend_reference(ref, n_chunks);
  }

 private:
  void load() {
    if (!ev_) ev_ = std::make_unique<eval::Evaluator>(source_, text_, opts_, logger_);
  }
  std::string source_, reference_, text_;
  eval::EvalOptions opts_;
  Logger logger_;
  TypeMap current_;
  int64_t prefetched_ = 0;  // by evaluators released for a reference pass
  std::unique_ptr<eval::Evaluator> ev_;
};

class ExactEval : public ConfigEval {
 public:
  ExactEval(std::string source, std::string text, eval::EvalOptions opts, TypeMap base,
            Logger logger)
      : source_(std::move(source)), text_(std::move(text)), opts_(std::move(opts)),
        base_(std::move(base)), logger_(std::move(logger)) {}

  void set(const TypeMap& overrides) override {
    if (ev_ && overrides == current_) return;
    TypeMap types = base_;
    for (const auto& [name, type] : overrides) types[name] = type;
    eval::EvalOptions o = opts_;
    o.tensor_types = std::move(types);
    ev_.reset();  // free the previous model first
    ev_ = std::make_unique<eval::Evaluator>(source_, text_, o, logger_);
    current_ = overrides;
  }

  std::vector<eval::ChunkResult> evaluate(int first, int count,
                                          const eval::ReferenceStore& ref) override {
    if (!ev_) set({});
    return timed_evaluate(*ev_, first, count, ref);
  }

  void extend_reference(eval::ReferenceStore& ref, int n_chunks) override {
    if (ref.n_filled() >= n_chunks) return;
    ev_.reset();
    eval::Evaluator source(source_, text_, opts_, logger_);
    source.extend_reference(ref, n_chunks);
  }

 private:
  std::string source_, text_;
  eval::EvalOptions opts_;
  TypeMap base_;
  Logger logger_;
  TypeMap current_;
  std::unique_ptr<eval::Evaluator> ev_;
};

}  // namespace

void ConfigEval::timed(eval::Evaluator& ev, const std::function<void()>& work) {
  const eval::EvalTimings before = ev.timings();
  work();
  timings_ += ev.timings() - before;
}

std::vector<eval::ChunkResult> ConfigEval::timed_evaluate(eval::Evaluator& ev, int first, int count,
                                                          const eval::ReferenceStore& ref) {
  std::vector<eval::ChunkResult> out;
  timed(ev, [&] { out = ev.evaluate(first, count, &ref); });
  return out;
}

std::unique_ptr<ConfigEval> make_simulated(eval::Evaluator& ev, const TypeMap& base) {
  return std::make_unique<SimulatedEval>(ev, base);
}

std::unique_ptr<ConfigEval> make_resident(std::unique_ptr<eval::Evaluator> base_ev,
                                          const std::string& source, const std::string& reference,
                                          const std::string& text, const eval::EvalOptions& opts,
                                          const Logger& logger) {
  return std::make_unique<ResidentEval>(std::move(base_ev), source, reference, text, opts, logger);
}

std::unique_ptr<ConfigEval> make_exact(const std::string& source, const std::string& text,
                                       const eval::EvalOptions& opts, const TypeMap& base,
                                       const Logger& logger) {
  return std::make_unique<ExactEval>(source, text, opts, base, logger);
}

}  // namespace cb::measure
