// Internal: evaluates "base + overrides" configurations of one model on one
// text: by in-place swaps to real types on the base mix loaded once
// (resident, the default), by in-place simulated swaps on the F16 model, or
// by loading a model built with the real types per configuration (exact).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cerebellum/eval/evaluator.h"
#include "cerebellum/measure/measure.h"

namespace cb::measure {

using TypeMap = std::map<std::string, std::string>;

// How a sweep evaluates (chunk layout, chunks per decode, scoring offset,
// devices): one place for the sweep and its memory projection.
eval::EvalOptions sweep_eval_options(const MeasureOptions& o);

// Where the resident base mix is built: next to the journal, kept for a resume.
// Refuses options no sweep can run with, before anything is built
// (UsageError; InputError for a missing --shared-reference store).
void check_measure_options(const MeasureOptions& o);

// A journal whose header line itself was torn (killed while creating it)
// holds nothing: removes it, so the sweep starts over.
void drop_torn_header(const std::string& path);

inline std::string base_model_path(const MeasureOptions& o) { return base_model_path(o.out_path); }

class ConfigEval {
 public:
  virtual ~ConfigEval() = default;
  // Configuration = base types with `overrides` on top (replaces the previous one).
  virtual void set(const TypeMap& overrides) = 0;
  virtual std::vector<eval::ChunkResult> evaluate(int first, int count,
                                                  const eval::ReferenceStore& ref) = 0;
  // evaluate() with the results handed to `then`, possibly later (resident
  // mode with two lanes: Evaluator::evaluate_then), from the next evaluate
  // or flush(); set() may come before. At once here.
  virtual void evaluate_then(int first, int count, const eval::ReferenceStore& ref,
                             eval::Evaluator::ResultsFn then) {
    then(evaluate(first, count, ref));
  }
  // Hands over any results evaluate_then still holds.
  virtual void flush() {}
  // Fills `ref` up to `n_chunks` with the full-precision model's distributions.
  // Afterwards the configuration is unspecified: call set() again.
  virtual void extend_reference(eval::ReferenceStore& ref, int n_chunks) = 0;
  // The configurations set() will most likely get next, in order: resident
  // mode converts them in the background (Evaluator::prefetch_tensor_types);
  // false if not.
  virtual bool prefetch(const std::vector<TypeMap>& /*next*/, int64_t /*max_bytes*/) { return false; }
  virtual int64_t prefetched_swaps() const { return 0; }  // swaps served from a prefetch
  // Where set()'s and evaluate()'s time went (reference passes not counted).
  const eval::EvalTimings& timings() const { return timings_; }

 protected:
  // Runs `work` on `ev`, adding the evaluator's timings meanwhile to timings_.
  void timed(eval::Evaluator& ev, const std::function<void()>& work);
  // ev.evaluate(), timed.
  std::vector<eval::ChunkResult> timed_evaluate(eval::Evaluator& ev, int first, int count,
                                                const eval::ReferenceStore& ref);
  eval::EvalTimings timings_;
};

// Takes the F16 evaluator and brings every swappable tensor to its base type;
// extend_reference restores the source data for the reference chunks.
std::unique_ptr<ConfigEval> make_simulated(eval::Evaluator& ev, const TypeMap& base);

// `base_ev` holds the source loaded with the base types (EvalOptions::
// tensor_types = base, as in `opts`); swaps convert from `source`, and
// extend_reference computes `reference` ("" = source) through the base mix
// on the CPU (its weights pointed at the file's bytes), or, with layers on a
// device, releases the base and loads the reference alone.
std::unique_ptr<ConfigEval> make_resident(std::unique_ptr<eval::Evaluator> base_ev,
                                          const std::string& source, const std::string& reference,
                                          const std::string& text, const eval::EvalOptions& opts,
                                          const Logger& logger);

// Rebuilds the model from `source` with real types for each new configuration
// (the reference needs the source model: it is loaded for extend_reference).
std::unique_ptr<ConfigEval> make_exact(const std::string& source, const std::string& text,
                                       const eval::EvalOptions& opts, const TypeMap& base,
                                       const Logger& logger);

}  // namespace cb::measure
