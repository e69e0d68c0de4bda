// --fit: a deployment ("fits a 16 GB card at 8K context", "experts in RAM,
// the rest on the 24 GB GPU") to per-pool weight budgets, and the plan that
// is best under them (issue 17, docs/allocate.md "Deployment budgets").
//
//   parse_fit_spec("gpu=24GiB,cpu=48GiB@8192")
//     -> placements (where llama.cpp puts each tensor: -ngl, -ot exps=CPU),
//        each with llama.cpp's projected context + compute bytes per pool
//     -> solve_fit(): one capacity per pool; with the placement fixed the
//        pools are independent knapsacks, so the optimum is exact per
//        placement, and every placement is tried.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cerebellum/allocate/plan.h"
#include "cerebellum/build/deploy.h"
#include "cerebellum/inspect/inspect.h"

namespace cb {

// "16GiB@8192": the one device (the GPU; host memory when the engine has no
// GPU). "gpu=24GiB,cpu=48GiB@8192": both pools (either may be left out: an
// unnamed pool is not bounded). Sizes in the budget grammar's units; the
// context in tokens, "8192" or "8k" (×1024). UsageError otherwise.
struct FitSpec {
  std::map<std::string, int64_t> pool_bytes;  // "device" | "gpu" | "cpu" -> bytes
  int64_t n_ctx_tokens = 0;
};
FitSpec parse_fit_spec(const std::string& spec);

// What `--fit` and its companions ask for (allocate and quantize).
struct FitOptions {
  std::string spec;            // "" = no deployment budget (--budget applies)
  std::string kv_type = "f16"; // --kv-type: the KV cache's type (-ctk/-ctv)
  int n_parallel = 1;          // --parallel: sequences (-np)
  int n_ubatch = 512;          // --ubatch (-ub)
  // --margin: kept free on every bounded pool for what llama.cpp's breakdown
  // does not count (the CUDA context, its matmul pool). 1 GiB is llama.cpp's
  // own fit target (common_params::fit_params_target).
  std::string margin = "1GiB";
  // --placement: "layers" (-ngl: the last layers on the GPU, every count
  // tried when the host pool is bounded too), "experts" (-ot exps=CPU:
  // routed experts in host memory, the rest on the GPU), "auto" (experts
  // when the model has routed experts and both pools are named, else layers).
  std::string placement = "auto";
};

// One pool's share of a deployment.
struct FitPool {
  std::string name;                      // "gpu" | "cpu"
  std::optional<int64_t> capacity_bytes; // none: not bounded
  int64_t context_bytes = 0, compute_bytes = 0, margin_bytes = 0;  // llama.cpp's projection
  int64_t fixed_bytes = 0;               // weights outside the problem (norms, ...) placed here
  int64_t weight_budget_bytes() const;   // capacity − context − compute − margin − fixed; INT64_MAX if unbounded
};

// A placement: llama.cpp's settings, and where they put every tensor.
struct FitPlacement {
  DeploySettings settings;
  std::vector<FitPool> pools;                   // "gpu" then "cpu" (present ones)
  std::map<std::string, std::string> pool_of;   // tensor -> pool name
  // Tensors llama.cpp also copies into a second pool (tied_output_copies).
  std::map<std::string, std::string> copy_in;   // tensor -> the other pool
  const FitPool* find(const std::string& pool) const;
  bool holds(const std::string& pool, const std::string& tensor) const;  // home pool or copy
};

// The pool of each tensor under llama.cpp's rules (src/llama-model.cpp at the
// pin): token_embd is the input layer, always host; blk.N is on the GPU when
// N ≥ n_layer + 1 − ngl; other tensors are the output layer (GPU when ngl ≥ 1);
// names matching cpu_tensor_regex are host. Without a GPU everything is host.
std::map<std::string, std::string> place_tensors(const ModelInfo& model, const DeploySettings& s, bool have_gpu);

// A model without output.weight ties its output layer to token_embd; llama.cpp
// then loads token_embd a second time into the output layer's buffer when that
// is another device (TENSOR_DUPLICATED, src/llama-model-loader.cpp at the pin).
// {token_embd -> that pool} in that case, else empty.
std::map<std::string, std::string> tied_output_copies(const ModelInfo& model, const std::map<std::string, std::string>& pool_of,
                                                      const DeploySettings& s, bool have_gpu);

struct FitSolution {
  Plan plan;                                   // method "fit"
  size_t placement_index = 0;                  // into the placements given
  std::map<std::string, int64_t> weight_bytes; // pool -> planned weight bytes (fixed included)
  int n_infeasible = 0;                        // placements where some pool could not fit
  int64_t weights_in(const std::string& pool) const;  // weight_bytes of `pool`, 0 when absent
};

// The least-damage plan over `placements`: per placement each bounded pool is
// an exact knapsack over its tensors (capacity = its weight budget), each
// unbounded pool's tensors take their least-damage type (ties: the smaller).
// Ties between placements go to the later one (callers order them by GPU
// share, ascending). BudgetError when no placement fits, naming the pool and
// the bytes it lacks.
FitSolution solve_fit(const AllocationProblem& problem, const std::vector<FitPlacement>& placements,
                      int64_t fixed_overhead_bytes);

// What a --fit allocation settled on (Allocation::fit).
struct FitReport {
  FitSpec spec;
  FitPlacement placement;   // the chosen one
  FitSolution solution;
  int n_placements = 0;     // tried
  // One bounded pool: tensors of the others are pinned to their planned type
  // in the problem, and a file-byte budget is then the same constraint, so
  // the measured search and correction rounds may run under it. Two bounded
  // pools: they may not (a file budget cannot hold both).
  bool file_budget_equivalent = false;
  std::vector<std::string> notes;  // placement-rule checks against llama.cpp
  // llama.cpp memory-maps the host tensors as one span of the file, from the
  // first to the end of the last, GPU tensors between them included (their
  // pages are read once for the upload and stay as evictable page cache); its
  // breakdown counts the span. 0 when there are no host tensors.
  int64_t host_mapped_bytes = 0;
  // What llama.cpp's breakdown will count as the pool's model bytes: the
  // planned weights, or for the host the mapped span when larger.
  int64_t projected_model_bytes(const FitPool& pool) const;
};

// plan.json's "fit": the spec, settings, per-pool breakdown (capacity,
// context, compute, margin, weight budget, planned weights) and the
// llama-server arguments.
nlohmann::json fit_json(const FitReport& fit);

// "36.0 MiB" under a GiB, "7.50 GiB" above: the fit's messages.
std::string fit_bytes_text(int64_t bytes);

// The breakdown for the log: one line per pool, then the llama.cpp arguments.
std::string describe_fit(const FitReport& fit);

}  // namespace cb
