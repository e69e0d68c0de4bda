// Recipe transfer to a sibling model (other depth) or a same-shape finetune.
#pragma once

#include <string>
#include <vector>

#include "cerebellum/inspect/inspect.h"
#include "cerebellum/recipe/recipe.h"

namespace cb {


struct TransferResult {
  std::vector<RecipeRule> lines;
  std::vector<std::string> notes;  // what was dropped / changed, and why
  bool verbatim = false;           // same depth: copied as is
};

// Maps a per-tensor recipe from a model of `from_layers` layers to `target`:
// target layer j takes the type of source layer round(j·N/M) (clamped), the
// inverse of "layer i of N → round(i·M/N) of M", so every target layer gets
// exactly one source; roles are preserved, non-layer lines are copied. Types
// whose blocks do not fit the target's rows become the stock fallback; lines
// naming tensors the target lacks are dropped (noted).
TransferResult transfer_recipe(const std::vector<RecipeRule>& recipe, int from_layers,
                               const ModelInfo& target);

}  // namespace cb
