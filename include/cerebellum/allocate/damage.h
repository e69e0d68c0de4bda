// The damage model: per-tensor damage curves over candidate types from the
// journal's measurements and the quantization-error table (docs/allocate.md).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cerebellum/allocate/constraints.h"
#include "cerebellum/inspect/inspect.h"
#include "cerebellum/measure/journal.h"

namespace cb {


// Without a quantization-error table only the k-quant ladder (k_ladder(),
// common/quant_types.h) is priced by the 2^(−2·bpw) proxy. Not f16: the proxy
// extrapolates it to zero error, a gain the measured (noise-clamped) q8_0
// point next to it denies.


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

// What a noisy measured Δ becomes before the solver sees it.
//   kBayes: the empirical-Bayes posterior mean between the measurement and its
//           role's quantization-error model, by their uncertainties (issue 13;
//           src/allocate/shrink.h). Small noisy demotions are not free: they
//           lean on what the error model says the tensor's role costs.
//   kClamp: |Δ| < z·se is "not distinguishable from zero": 0.
//   kShrink: soft threshold, Δ moved towards 0 by z·se.  kKeep: raw.
enum class NoisePolicy { kBayes, kClamp, kShrink, kKeep };

// "bayes" | "clamp" | "shrink" | "keep"; UsageError on anything else.
NoisePolicy parse_noise_policy(const std::string& name);
std::string noise_policy_name(NoisePolicy p);

struct DamageOptions {
  NoisePolicy noise = NoisePolicy::kBayes;
  // kClamp / kShrink's band. z = 1: z = 2 threw away real promotion gains
  // (measured in docs/allocate.md, "noise").
  double noise_z = 1.0;
  // Tensors the build's imatrix has entries for: types that need an imatrix
  // (type_needs_imatrix) are candidates only there. Empty = no imatrix.
  std::set<std::string> imatrix_tensors;
  // The weight-error-only plan (`allocate --proxy`): every tensor's damage is
  // its element count × Δ(relative MSE) from the quantization-error table
  // (imatrix-weighted when the table is), measurements ignored. The units are
  // not nats; only the order of plans means something.
  bool weight_error_only = false;
};

struct CandidateType {
  std::string type;
  int64_t size_bytes = 0;           // padded, exact
  double damage_kld = 0;            // predicted ΔKLD vs the base config, nats
  // Its standard error: a measurement's (kBayes: the posterior's sd), or the
  // scale fit's × Δx for a type the tensor's own measurements price; 0 where
  // nothing this tensor measured would narrow it (base type, imputed scale).
  double damage_se_kld = 0;
  bool measured = false;            // damage from a measurement, not the model
};

struct TensorCurve {
  std::string name, role;
  int layer = -1;
  int64_t n_elements = 0;
  std::string source_type, base_type;
  bool stock_quantizable = false;
  double scale = 0;                 // damage per unit of Δ(relative MSE)
  std::string scale_from;           // "measured" | "role:<role>" | "global" | "none" | "weight_error"
  std::optional<double> ablate_delta_kld;  // the tensor's own ablation, raw (for the greedy)
  double ablate_delta_se_kld = 0;
  std::string ablate_type;
  std::vector<CandidateType> candidates;   // sorted by size, then type name
};

// What kBayes did: per role the prior (slope, between-tensor spread), and
// how far the points moved.
struct ShrinkageReport {
  struct Role {
    double slope = 0, tau_rel = 0;
    int n_points = 0;
    bool pooled = false;
  };
  int n_points = 0;
  double mean_weight_on_data = 1;   // 1 = the measurements as they are; 0 = the model alone
  double mean_abs_shift_kld = 0;    // mean |posterior − measured|, nats
  std::map<std::string, Role> groups;  // per role
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
  std::string noise_policy;         // noise_policy_name
  ShrinkageReport shrinkage;        // kBayes only
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

}  // namespace cb
