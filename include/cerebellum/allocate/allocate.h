// allocate: spend a byte budget where measured damage says it matters.
//
//   measurements (journal) + model tensors + constraints + objective
//     -> build_problem()   per-tensor damage curves over candidate types, exact sizes
//     -> allocate_plan()   exact multiple-choice knapsack (the optimum of the additive model)
//     -> greedy_original_plan()  the original project's greedy rule, as a baseline
//
// Everything here is a pure function of its inputs: no llama types, no I/O.
// Outputs plan.json (cerebellum.plan/1) and tensor_types.txt. See docs/allocate.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cerebellum/allocate/solver.h"
#include "cerebellum/inspect/inspect.h"
#include "cerebellum/measure/journal.h"
#include "cerebellum/recipe/recipe.h"
#include "cerebellum/common/schemas.h"

namespace cb {


// ---- sizes -----------------------------------------------------------------

int64_t pad_bytes(int64_t size_bytes, int64_t alignment_bytes);

// The type stock llama-quantize actually writes when asked for `type` on this
// tensor: the source type for tensors it refuses, the fallback type (Q4_K→Q5_0,
// Q2_K→Q4_0, ..., then F16) when the rows do not fit the blocks.
std::string stock_effective_type(const TensorInfo& t, const std::string& type);

// Exact bytes of the tensor's data at `type` (priced at its stock fallback),
// padded to the GGUF alignment.
int64_t tensor_bytes_at(const TensorInfo& t, const std::string& type, int64_t alignment_bytes);

// File size: fixed header/metadata bytes + Σ padded tensor bytes. Tensors not in
// `types` keep their current type.
int64_t model_size_bytes(const ModelInfo& model, const std::map<std::string, std::string>& types,
                         int64_t fixed_overhead_bytes);

// "7.4MB" (1e6), "7.4MiB", "7400000", "3.5bpw" (× the model's parameters / 8).
int64_t parse_budget_bytes(const std::string& spec, int64_t n_elements);

// ---- constraints (data, cerebellum.constraints/1) --------------------------

struct TypeRule {
  std::string name_regex;   // matches the whole tensor name; empty = any
  std::string role_regex;   // matches the whole role; empty = any
  std::string min_type;     // floor by bits per weight; empty = none
  std::string max_type;     // ceiling by bits per weight; empty = none
  std::vector<std::string> types;  // if non-empty, only these
};

struct Constraints {
  // Candidate types for every tensor (the base type is always added): the
  // k-quant ladder, the i-quants and legacy types stock llama-quantize writes
  // and runs on CPU, f16. Types that need an imatrix (iq3_xxs, iq2_*: see
  // type_needs_imatrix) are candidates only for tensors the build's imatrix
  // covers (DamageOptions::imatrix_tensors). Without a quantization-error table
  // only the ladder (kProxyLadder) is priced: the bpw proxy cannot tell type
  // families of one size apart.
  std::vector<std::string> allowed_types{"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_0",
                                         "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s",
                                         "iq4_xs", "iq4_nl", "q4_0", "q4_1", "q5_0", "q5_1", "f16"};
  std::vector<std::string> never_quantize;  // name regexes: keep the source type
  // Roles that keep their source type unless the journal measured them (routers
  // steer every token; an unmeasured change there is a blind bet).
  std::vector<std::string> keep_source_unless_measured_roles{"router", "router_shexp"};
  std::vector<TypeRule> rules;  // all matching rules apply (intersection)
  // Let tensors stock llama-quantize refuses (norms, routers, conv1d) change type;
  // such types go only to plan.json / our build, never to tensor_types.txt.
  bool allow_stock_refused = false;
};

Constraints constraints_from_json(const nlohmann::json& j, const std::string& where);
// A constraints JSON file ("" = the defaults); RecipeError / InputError naming it.
Constraints load_constraints(const std::string& path);
nlohmann::json to_json(const Constraints& c);

// ---- objective ----------------------------------------------------------------

// Domain weights, normalised to sum 1. "general" = every domain in the journal,
// equal weights; a domain name = that domain alone; "wiki:0.4,code:0.6" = explicit.
std::map<std::string, double> parse_objective(const std::string& spec,
                                              const std::vector<std::string>& journal_domains);

// ---- damage model ----------------------------------------------------------------

// Types priced without a quantization-error table (the 2^(−2·bpw) proxy): the
// k-quant ladder of the previous default. Not f16: the proxy extrapolates it to
// zero error, a gain the measured (noise-clamped) q8_0 point next to it denies.
inline const std::vector<std::string> kProxyLadder{"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_0"};


// Relative quantization MSE (Σ w·(W − deq(q(W)))² / Σ w·W², w = imatrix column
// weights if given, else 1) per tensor and type; computed by the engine
// (include/cerebellum/build/quant_error.h, `cerebellum qerror`).
struct QuantErrorTable {
  std::map<std::string, std::map<std::string, double>> rel_mse;  // tensor -> type -> value
  std::string weighting = "uniform";  // "uniform" | "imatrix"
  std::optional<double> find(const std::string& tensor, const std::string& type) const;
};

// Reads {"schema":"cerebellum.qerror/1","rel_mse":{tensor:{type:v}}, ...} or a
// bare {tensor:{type:v}}; InputError on a malformed body, RecipeError on an
// unknown type, negative or non-finite values.
QuantErrorTable quant_error_from_json(const nlohmann::json& j, const std::string& where);

enum class NoisePolicy { kClamp, kShrink, kKeep };

struct DamageOptions {
  // |Δ| < z·se is "not distinguishable from zero": clamped to 0 (kClamp), or
  // shrunk towards 0 by z·se (kShrink, soft threshold), or kept (kKeep).
  // Measured on cb-dense-12l at the Q4_K_M size (docs/allocate.md): z = 2 threw away
  // real promotion gains (KLD 10.6% below stock), z = 1 kept them (17.6%).
  double noise_z = 1.0;
  NoisePolicy noise = NoisePolicy::kClamp;
  // Tensors the build's imatrix has entries for: types that need an imatrix
  // (type_needs_imatrix) are candidates only there. Empty = no imatrix.
  std::set<std::string> imatrix_tensors;
};

struct CandidateType {
  std::string type;
  int64_t size_bytes = 0;           // padded, exact
  double damage_kld = 0;            // predicted ΔKLD vs the base config, nats
  bool measured = false;            // damage from a measurement, not the model
};

struct TensorCurve {
  std::string name, role;
  int layer = -1;
  int64_t n_elements = 0;
  std::string source_type, base_type;
  bool stock_quantizable = false;
  double scale = 0;                 // damage per unit of Δ(relative MSE)
  std::string scale_from;           // "measured" | "role:<role>" | "global" | "none"
  std::optional<double> ablate_delta_kld;  // the tensor's own ablation, raw (for the greedy)
  double ablate_delta_se_kld = 0;
  std::string ablate_type;
  std::vector<CandidateType> candidates;   // sorted by size, then type name
};

// How well the damage model predicts measurements it did not see.
struct ModelErrorReport {
  int n_points = 0;                 // measured (tensor, type) points used
  int n_tensors_measured = 0, n_tensors_imputed = 0;
  int n_loto = 0;                   // leave-one-type-out predictions (tensors with ≥2 types)
  double loto_mae_kld = 0, loto_rmse_kld = 0;
  int n_loo_tensor = 0;             // leave-one-tensor-out via the role scale
  double loo_tensor_mae_kld = 0, loo_tensor_rmse_kld = 0;
  double mean_abs_measured_kld = 0; // for scale
  int n_noise_clamped = 0;
  int n_probes_ignored = 0;         // interaction probes are not in the additive model
  std::string mse_source;           // "table" | "bpw-proxy"
};

struct AllocationProblem {
  std::string model_sha256;
  std::string base_name;
  int64_t alignment_bytes = 32;
  int64_t n_elements = 0;
  std::map<std::string, double> objective;
  Constraints constraints;
  std::vector<TensorCurve> tensors;  // model order
  ModelErrorReport model_error;
};

// Builds damage curves from the journal. Throws MismatchError if the journal
// names tensors the model lacks, RecipeError if a constraint leaves a tensor
// with no candidate.
AllocationProblem build_problem(const ModelInfo& model, const Journal& journal,
                                const std::map<std::string, double>& objective,
                                const Constraints& constraints, const QuantErrorTable* quant_error,
                                const DamageOptions& options = {});

// The problem before anything is measured: every type the constraints allow
// (a quantization-error table may price any of them) with zero damage. Its
// sizes bound every plan a sweep could lead to (budget_range).
AllocationProblem unmeasured_problem(const ModelInfo& model, const std::map<std::string, std::string>& base_types,
                                     const Constraints& constraints, const std::set<std::string>& imatrix_tensors);

// ---- plans -------------------------------------------------------------------

// The smallest and largest file a plan of `problem` can be.
struct BudgetRange {
  int64_t min_bytes = 0, max_bytes = 0;
};
BudgetRange budget_range(const AllocationProblem& problem, int64_t fixed_overhead_bytes);
// BudgetError naming the feasible range when `budget_bytes` is below it (no
// plan fits) or above it (nothing to trade: every tensor at its largest type).
void check_budget_in_range(int64_t budget_bytes, const BudgetRange& range);

struct TensorPlan {
  std::string name, type, base_type;
  int64_t size_bytes = 0;
  double predicted_delta_kld = 0;
  bool measured = false;
  bool stock_quantizable = false;
};

struct Plan {
  std::string method;  // "mckp" | "mckp+search" | "greedy_original" | "base"
  std::string model_sha256;
  int64_t budget_bytes = 0, size_bytes = 0, fixed_overhead_bytes = 0;
  double predicted_delta_kld = 0;
  std::vector<TensorPlan> tensors;
  KnapsackResult solver;  // for "mckp"
  std::map<std::string, std::string> types() const;
};

// The optimum of the additive model under budget_bytes (file bytes). BudgetError
// (with the smallest feasible file size) when nothing fits.
Plan allocate_plan(const AllocationProblem& problem, int64_t budget_bytes,
                   int64_t fixed_overhead_bytes, const SolverOptions& solver = {});

// A priced, scored plan from a choice: candidate index per tensor of `problem`
// (method left empty for the caller to name).
Plan plan_from_choice(const AllocationProblem& problem, const std::vector<int>& choice,
                      int64_t fixed_overhead_bytes);

// The candidate index per tensor of `plan`'s types; RecipeError when a type is
// not a candidate of its tensor.
std::vector<int> choice_of(const AllocationProblem& problem, const Plan& plan);

// The base configuration itself, priced and scored (damage 0 by definition).
Plan base_plan(const AllocationProblem& problem, int64_t fixed_overhead_bytes);

struct GreedyOptions {
  // Classification threshold on the tensor's ablation Δ (nats). The original used
  // a fixed 0.02 PPL; 0 here means "z·se of that measurement" (DamageOptions).
  double noise_threshold_kld = 0;
  double noise_z = 2.0;
};

// The original project's rule (osmosis/cerebellum.py ablation_aware_allocate),
// reimplemented on our measurements and exact sizes; docs/allocate.md spells it out.
// Scored with the same damage model as allocate_plan so the two compare.
Plan greedy_original_plan(const AllocationProblem& problem, int64_t budget_bytes,
                          int64_t fixed_overhead_bytes, const GreedyOptions& options = {});

// The damage curves (per tensor: scale, candidates with size, predicted damage,
// measured flag), for inspection and held-out checks (`allocate --write-curves`).
nlohmann::json curves_to_json(const AllocationProblem& problem);

// plan.json body. `extra` (e.g. baselines to compare) is merged at top level.
nlohmann::json plan_to_json(const Plan& plan, const AllocationProblem& problem,
                            const nlohmann::json& extra = nlohmann::json::object());

// tensor_types.txt: one anchored, escaped regex per stock-quantizable tensor
// ("^blk\.0\.attn_q\.weight$=q4_K"), because llama-quantize matches the left side
// with regex_search and the first match wins ("output.weight" would also hit
// "blk.0.attn_output.weight"). Tensors stock refuses are left out (plan.json only).
// Leave header_comment empty for stock: its parser rejects '#' lines.
std::string tensor_types_text(const Plan& plan, const std::string& header_comment = "");

// ---- transfer ----------------------------------------------------------------

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
