// quantize's refinement of marginal units (RefineOptions in quantize.h;
// private to src/quantize): re-measure, re-solve, until the plan is stable
// under its measurements' uncertainty.
#pragma once

#include "cerebellum/allocate/plan_for.h"
#include "cerebellum/measure/journal.h"
#include "cerebellum/quantize/quantize.h"

namespace cb {

struct Refined {
  Journal journal;       // the sweep's journal with the refined records
  Allocation allocation; // plan_for on it
  RefineReport report;
};

// `journal`: the sweep's; `o`: the staged options (measure resumes the
// journal at o.measure.out_path). Throws as measure and plan_for do.
Refined refine_sweep(const QuantizeOptions& o, const ModelInfo& model, Journal journal);

nlohmann::json to_json(const RefineReport& r);

}  // namespace cb
