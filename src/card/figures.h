// From run-dir data to the card's figures (internal to src/card/).
#pragma once

#include <vector>

#include "cerebellum/card/card.h"
#include "cerebellum/card/svg.h"
#include "cerebellum/inspect/inspect.h"
#include "cerebellum/measure/journal.h"

namespace cb::card {

// Layer × role heatmap of ablation ΔKLD: per tensor, the mean over domains of
// its tensor-level "ablate" measurements (the largest when ablated at several
// types); whole-layer units go to a "(layer)" column; non-layer tensors to a
// "global" row. Roles and layers come from `model` so unmeasured cells show.
Heatmap sensitivity_heatmap(const Journal& journal, const ModelInfo& model);

// KLD (log y) or PPL against file size (MB): stock mixes as one series, the
// build(s) as another, references as a third; ± one standard error bars.
Chart quality_chart(const std::vector<EvalEntry>& eval, bool kld);

}  // namespace cb::card
