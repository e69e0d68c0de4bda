// quantize's gate (private to src/quantize): ours, the same-size stock mix
// and the rivals against the full-precision reference on every held-out text,
// and the task gate. run_quantize (quantize.cc) plans and builds; this scores.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cerebellum/build/build.h"
#include "cerebellum/quantize/quantize.h"

namespace cb {

// A model the gate scores besides ours: built into the run dir, scored, removed.
struct Contender {
  std::string name, kind;                     // "stock Q4_K_S", "stock"
  std::map<std::string, std::string> types;   // or a preset
  std::string preset;
};

// Builds `types` (or a preset) from the source into `path`.
BuildReport build_to(const QuantizeOptions& o, const ModelInfo& model, const std::string& path,
                     const std::map<std::string, std::string>& types, const std::string& preset);

nlohmann::json record_json(const EvalRecord& r, const std::string& kind = "");

// No eval text and no reused journal: splits the first calibration text at a
// line near 1 − held_out_fraction of its bytes into DIR/<domain>-calibration.txt
// (the sweep's and the search's text from now on) and DIR/<domain>-heldout.txt
// (the gate's). InputError when either part would be empty.
void hold_out_calibration_slice(QuantizeOptions& o, const std::string& dir);

// The gate on every GateOptions::eval_texts domain: fills r.domains (and the
// first domain's mirror in r.ours / baseline / rivals / delta_kld), r.ships
// and r.task_gate; writes eval.json (and bench/) into r.run_dir.
void run_gate(const QuantizeOptions& o, const ModelInfo& model, const std::string& candidate,
              const std::string& baseline_path, const std::vector<Contender>& rivals,
              const std::map<std::string, int64_t>& preset_sizes, QuantizeResult& r);

// --fit (fit_run.cc). The file budget the sweep centres on; BudgetError
// before the sweep when the deployment cannot be met at all.
int64_t fit_budget_before_sweep(const QuantizeOptions& o, const ModelInfo& model);
// The baseline under --fit: the largest size-baseline stock mix that fits the
// same deployment ("" if none); `sizes` gets every size computed.
std::string fit_stock_baseline(const ModelInfo& model, const FitReport& fit, const std::string& imatrix_path,
                               std::map<std::string, int64_t>* sizes);
// The built candidate loaded by llama.cpp at the fit's settings with a
// context created; writes run_dir/fit.json. Over the capacity (or not
// loadable): the candidate is removed and a BudgetError says by how much.
FitCheck check_built_fit(const QuantizeOptions& o, const FitReport& fit, const std::string& candidate,
                         const std::string& run_dir);

}  // namespace cb
