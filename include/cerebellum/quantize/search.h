// Local search after the solver (EvoPress-style): the knapsack optimum of the
// additive damage model is the start; moves that keep the file within the
// budget (promote one tensor, demote one or more others to pay for it, or
// swap a tensor to another type of the same size) are measured end to end on
// calibration text with the evaluator in simulated-swap mode (only the changed
// tensors are re-swapped) against the full-precision reference on a fixed set
// of chunks. A move is kept only when the paired per-chunk KLD difference says
// it helps beyond noise (Δ < −z·se). The allocator stays a pure function;
// this is a separate step. See docs/allocate.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/common/log.h"

namespace cb {

// ---- moves (pure) ------------------------------------------------------------

struct TensorChange {
  int tensor = 0;      // index into AllocationProblem::tensors
  int from = 0, to = 0;  // candidate indices
};

struct SearchMove {
  std::vector<TensorChange> changes;  // sorted by tensor index
  int64_t delta_bytes = 0;            // Σ padded bytes after − before
  double predicted_delta_kld = 0;     // additive model: Σ damage after − before
  bool same_layer = false;            // every changed tensor in one block
  // "blk.3.attn_q.weight:q4_K>q5_K blk.3.attn_k.weight:q5_K>q4_K" (sorted by tensor).
  std::string describe(const AllocationProblem& p) const;
  // Identity of the move's outcome: "name=type,..." (sorted by tensor).
  std::string signature(const AllocationProblem& p) const;
};

struct MoveOptions {
  int levels = 2;           // a tensor moves at most this many distinct sizes up or down
  int max_demotions = 3;    // tensors demoted to pay for one promotion
  int max_moves = 256;      // length of the ranked list returned
  int max_per_tensor = 2;   // a tensor appears in at most this many returned moves
  std::vector<std::string> frozen;  // tensors that must keep their type (e.g. not swappable)
};

// Moves from `choice` whose result fits `tensor_capacity_bytes` (Σ padded
// tensor bytes; the plan's budget minus the fixed overhead), excluding those
// whose signature is in `tried`. Order: predicted ΔKLD ascending (ties: fewer
// changes, then signature), alternating between same-layer moves and the rest
// so both get evaluations. Deterministic.
std::vector<SearchMove> propose_moves(const AllocationProblem& p, const std::vector<int>& choice,
                                      int64_t tensor_capacity_bytes, const MoveOptions& options = {},
                                      const std::vector<std::string>& tried = {});

// ---- the measured search -------------------------------------------------------

struct SearchOptions {
  std::string text_path;     // calibration text (never the held-out eval text)
  int ctx = 512;
  // Chunks [first_chunk, first_chunk + n_chunks) of the text: by default after
  // the 16 the measurement sweep reads at most, so the search's verdicts are
  // not the sweep's noise again.
  int first_chunk = 16;
  int n_chunks = 8;
  int top_k = 128;           // reference log-probs kept per token
  int max_evals = 32;        // measured moves; 0 = measure the plan only (predicted vs measured)
  // Before the moves: while the plan's measured ΔKLD vs the base disagrees
  // with the prediction beyond 2 se, fit the factors of the model's promotion
  // gains and demotion damages on every plan measured so far, solve the
  // corrected problem and measure its plan, at most this many times. The plan
  // kept is the best measured one (or the base, when it fits and measured
  // better). 0 = off. Issue 13.
  int correction_rounds = 3;
  double max_seconds = 0;    // stop starting new evaluations after this; 0 = no limit
  double accept_z = 2.0;     // accept a move when mean paired ΔKLD < −accept_z·se (per-chunk pairs)
  MoveOptions moves;
  std::string imatrix_path;  // the build's imatrix: swaps quantize with it too
  int n_threads = 0;         // 0 = every CPU this run may use (its affinity)
  int n_gpu_layers = 0;      // layers offloaded (999 = all)
  // Device memory cap (the loaded model and its swaps together); 0 = none.
  int64_t max_device_bytes = 0;
  // Without a GPU: the swaps (anonymous memory beside the memory-mapped
  // loaded model) may hold at most this share of the loaded weights; a
  // configuration needing more is loaded as a model of its own (file-backed,
  // its unchanged tensors copied from the base mix). Default 0.25: a plain
  // evaluation's footprint plus a quarter, the memory bar of issue 12.
  // 0 = no limit (every configuration swapped in place).
  double host_swap_share = 0.25;
  std::string reference_model;   // the reference's model when not the source
  // The base mix the sweep built (measure::base_model_path): loaded when it
  // was built for these types and imatrix, else (re)built there; "" = a
  // temporary file in work_dir.
  std::string base_model_path;
  std::string work_dir;          // where the base mix is built to be loaded ("" = system temp dir)
  Logger logger;
  ProgressFn progress;       // ("search", evaluations done, max_evals, move)
};

struct SearchEval {
  std::string move;
  int n_changes = 0;
  bool same_layer = false;
  int64_t delta_bytes = 0;
  double predicted_delta_kld = 0;                  // the additive model (uncorrected)
  double measured_delta_kld = 0, measured_se = 0;  // vs the current plan, paired per chunk
  bool accepted = false;
};

// One correction round: the factors fitted on the plans measured before it,
// and its plan, predicted by the corrected model and then measured.
struct CorrectionRound {
  int round = 0;
  double factor_up = 1, factor_down = 1;
  double predicted_raw = 0, predicted = 0;   // vs the base: the additive model as is / corrected
  double measured = 0, measured_se = 0;      // vs the base, paired per chunk
  double kld = 0;                            // mean KLD vs the reference
  int n_changed = 0;                         // tensors whose type differs from the solver's plan
};

struct SearchResult {
  std::vector<int> initial_choice, final_choice;
  int n_chunks = 0;
  int64_t n_tokens = 0;
  // Mean KLD vs the full-precision reference on the search chunks.
  double base_kld = 0, initial_kld = 0, final_kld = 0;
  // Predicted (additive model) and measured ΔKLD vs the measurement base config.
  double initial_predicted = 0, final_predicted = 0;
  double initial_measured = 0, final_measured = 0;
  double initial_measured_se = 0, final_measured_se = 0;
  std::vector<CorrectionRound> rounds;
  std::string correction_stop;  // "agrees" | "converged" | "max_rounds" | "max_seconds" | "off"
  std::string start_from;       // the plan the moves start from: "solver" | "round N" | "base"
  std::vector<SearchEval> evals;
  int n_accepted = 0;
  // Times a configuration was loaded as a model of its own because its swaps
  // would not fit the device's room (max_device_bytes / free memory).
  int n_reloads = 0;
  double setup_s = 0, elapsed_s = 0;
  std::string stop_reason;   // "max_evals" | "max_seconds" | "no_moves"
};

// Runs the search on `source` (the full-precision GGUF the problem was built
// for). Throws InputError (bad source / text), RecipeError (a candidate type
// the evaluator cannot simulate), EngineError.
SearchResult refine_plan(const std::string& source, const AllocationProblem& problem,
                         const std::vector<int>& choice, int64_t tensor_capacity_bytes,
                         const SearchOptions& options);

// The plan the search ends with: `initial`'s budget and solver report, the
// final choice, method "mckp+search".
Plan searched_plan(const AllocationProblem& problem, const Plan& initial, const SearchResult& result);

nlohmann::json to_json(const SearchResult& result, const AllocationProblem& problem);

}  // namespace cb
