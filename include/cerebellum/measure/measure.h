// The measure stage: an ablation sweep. Per text, the full-precision
// reference is computed with the source loaded on its own; the base mix is
// then loaded once in its real types (the baseline configuration); each unit
// (a tensor, a role group, a layer) is swapped in place to a target type
// converted from the source, evaluated against the reference chunk by chunk
// until its paired delta is precise enough (adaptive stopping), and swapped
// back (EvalMode::kResident; docs/measure.md for the other modes). Results are appended to the
// journal (docs/formats.md, journal.h) so a killed sweep resumes losing at
// most the measurement in flight. See docs/measure.md.
//
//   MeasureOptions o;  o.source_path = "m-F16.gguf";  o.base = "Q4_K_M";
//   o.texts = {{"en", "calib.txt"}};  o.targets = {"q2_K"};  o.out_path = "m.jsonl";
//   MeasureSummary s = run_measure(o);
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cerebellum/common/log.h"
#include "cerebellum/eval/evaluator.h"
#include "cerebellum/inspect/inspect.h"
#include "cerebellum/measure/journal.h"

namespace cb::measure {

enum class PlanLevel { kTensors, kGroups, kLayers, kAuto };
enum class EvalMode {
  kResident,   // the base mix loaded once in real types; units swapped in place to
               // real types converted from the source (no F16 copy, no reload)
  kSimulated,  // in-place quantize->dequantize swaps on the F16 model (no reload)
  kExact,      // a model built with the real types per configuration (reload each)
};
PlanLevel parse_plan_level(const std::string& s);  // UsageError on anything else
EvalMode parse_eval_mode(const std::string& s);
std::string to_string(PlanLevel p);
std::string to_string(EvalMode m);

struct MeasureText {
  std::string domain;  // "en", "code", ...
  std::string path;
};

// When a unit's paired ΔKLD is known well enough to stop. The samples are
// block means: each chunk's scored tokens split into `blocks_per_chunk` runs
// of consecutive tokens. Tokens inside a block share context and are
// correlated, block means much less so (batch means); docs/measure.md
// compares the block SE with the per-chunk SE on the same sweep.
struct StopRule {
  // Defaults chosen on cb-dense-12l against a 100-chunk exact truth ranking of
  // all 86 tensors (docs/measure.md, "Choosing the stopping rule"); min 4, as
  // quantize's sweep uses, since resident mode ranked at 0.978 with 3.
  int min_chunks = 4;          // first check after this many chunks (>= 1)
  int step_chunks = 2;         // then every this many chunks
  int max_chunks = 40;         // cap ("cap")
  int blocks_per_chunk = 4;    // samples per chunk for the SE (1 = per-chunk means)
  double rel_tol = 0.1;        // "tight": se <= rel_tol * |Δ| + abs_tol_nats
  double abs_tol_nats = 1e-4;  //   (abs_tol lets negligible effects stop early)
  double sep_z = 4.0;          // "separated": |Δ| >= sep_z * se (sign and size settled)
};

// Decision after `n_chunks` chunks gave `block_deltas`: "tight", "separated",
// or "" (go on; also while fewer than 2 samples). Reaching max_chunks is the
// caller's "cap".
std::string stop_reason(const std::vector<double>& block_deltas, int n_chunks,
                        const StopRule& rule);

// Mean and standard error of per-chunk values (se = sd / sqrt(n), 0 if n < 2).
struct ChunkStats {
  double mean = 0;
  double se = 0;
  int n = 0;
};
ChunkStats chunk_stats(const std::vector<double>& values);

// One thing to measure: a unit and, per tensor, the type it takes.
struct PlannedUnit {
  JournalUnit unit;
  std::string direction = "ablate";            // "ablate" | "promote"
  std::string target;                          // requested type
  std::map<std::string, std::string> types;    // tensor -> type actually used (fallbacks applied)
  double expected_damage = 0;                  // ordering key: elements x MSE-proxy change
};

// Units of one plan level for one requested type. Only tensors the
// evaluator can swap (`swappable`), whose base type is quantized (or that
// stock would quantize), are included; a tensor whose rows cannot take
// `type` gets stock's fallback; a unit whose types all equal the base is
// dropped. Sorted by expected damage, largest first; ties by id.
// `tensor_regex` (ECMAScript, searched) restricts the tensors; "" = all.
std::vector<PlannedUnit> plan_units(const ModelInfo& model,
                                    const std::map<std::string, std::string>& base_types,
                                    const std::vector<std::string>& swappable, PlanLevel level,
                                    const std::string& type, const std::string& direction,
                                    const std::string& tensor_regex = "");

// `measure --shard K/N`: this process measures shard `index` (0-based) of
// `count`; N such processes (a Slurm job array) cover every unit once.
struct ShardSpec {
  int index = 0;
  int count = 1;  // 1 = not sharded
  bool sharded() const { return count > 1; }
};
// "K/N" with 0 <= K < N (a job array's task id / task count). UsageError otherwise.
ShardSpec parse_shard(const std::string& s);

// Which shard measures each unit (indices into `units`), deterministic and
// balanced in both of a unit's costs: its evaluations (the same chunks for
// every unit) and converting its tensors (elements x the type's measured
// cost per weight: q2_K costs ~2x q6_K). Which one bounds a shard depends
// on the machine, so the greedy (largest conversion first) keeps each
// shard's larger share of the two totals smallest (ties: lowest shard).
std::vector<int> assign_shards(const std::vector<PlannedUnit>& units, const ModelInfo& model, int count);

// Units converted ahead (MeasureOptions::prefetch_max_bytes): how many units
// past the one in flight, and the order they are measured in. The order
// spreads the heaviest units (by `weights`, their elements) evenly among the
// rest, each group keeping its order: a unit is taken from the heavy ones
// when the running credit (the mean weight per unit taken) covers it. So the
// conversions, which cost about their elements, run at the average pace and
// stay ahead of the evaluations, which cost about the same per unit. Returns
// a permutation of 0..weights.size()-1.
inline constexpr size_t kPrefetchUnits = 32;
std::vector<size_t> spread_heavy_units(const std::vector<int64_t>& weights);
// The same for `order` (indices into `units`), weighed by their elements.
std::vector<size_t> spread_heavy_units(const std::vector<PlannedUnit>& units, std::vector<size_t> order,
                                       const ModelInfo& model);
std::vector<int64_t> unit_elements(const std::vector<PlannedUnit>& units, const ModelInfo& model);

struct ProbeOptions {
  bool enabled = false;
  int n_top = 4;       // probes are built from the top-n tensor/layer units by ΔKLD
  int ladder_max = 4;  // ladder steps 1..ladder_max
};

struct MeasureOptions {
  std::string source_path;                 // full-precision GGUF (the reference; swaps convert from it)
  // The reference model when not the source, e.g. the user's Q8_0 when the
  // F16 does not fit RAM (resident mode only). Recorded in the journal.
  std::string reference_model;
  std::string base = "Q4_K_M";             // stock preset name, or a recipe file
  std::vector<MeasureText> texts;          // one per domain (required)
  PlanLevel plan = PlanLevel::kTensors;
  std::vector<std::string> targets = {"q2_K"};  // ablation types
  std::vector<std::string> promote;             // promotion types (reverse ablation)
  std::string tensor_regex;                // restrict to matching tensors ("" = all)
  int limit_units = 0;                     // per domain and type, the first N by order (0 = all)
  int ctx = 512;                           // tokens per chunk
  StopRule stop;                           // min/max chunks, tolerances
  int top_k = 32;                          // reference log-probs kept per token
  // First scored position per chunk; -1 = ctx/8 (1.75x the scored tokens of
  // llama-perplexity's ctx/2 for the same compute; docs/measure.md).
  int first_scored = -1;
  int n_threads = 0;                       // 0 = every CPU this run may use (its affinity)
  int n_gpu_layers = 0;                    // layers offloaded to the GPU (CPU-only builds ignore it)
  int64_t max_device_bytes = 0;            // cap per loaded model (the F16 reference offloads fewer layers); 0 = none
  // With n_gpu_layers: the next units' tensors (up to kPrefetchUnits) are
  // converted on a background thread while this unit is evaluated, held in
  // host memory up to this many bytes (a unit that does not fit converts
  // when swapped in), and the units with the most weights are spread among
  // the others so the conversion runs ahead during the light ones; 0 = off.
  // Not on the CPU, where the conversion would take the evaluation's cores.
  int64_t prefetch_max_bytes = int64_t{512} << 20;
  // Contexts that decode a step's chunks in turn, one's logits scored on the
  // CPU while the other decodes (eval::EvalOptions::lanes): 0 = 2 with every
  // layer on a GPU, else 1.
  int lanes = 0;
  // CPU-only runs: the resident model's matrix weights repacked as stock
  // llama.cpp does (eval::EvalOptions::cpu_repack): faster, and the base mix
  // then held in memory rather than read from its file layer by layer.
  bool cpu_repack = false;
  // Leave the built base mix (base_model_path) when the sweep ends, for a
  // caller that uses it next (quantize: its search loads it, its builds copy
  // from it) and removes it.
  bool keep_base_model = false;
  int64_t max_host_bytes = 0;              // refuse up front when the projection exceeds it (memory.h); 0 = none
  EvalMode mode = EvalMode::kResident;
  double auto_split_frac = 0.05;           // auto: split groups with Δ-2se > frac * max group Δ
  ProbeOptions probes;
  ShardSpec shard;                         // not with plan auto or probes (they read other shards' results)
  // Dynamic scheduling (MPI, measure/mpi.h): asked before each unit with its
  // measurement_key; false = another process measures it. Empty = all units.
  std::function<bool(const std::string&)> claim;
  bool resume = false;                     // continue an existing journal (else it is an error)
  // Units to measure again with more chunks (quantize's refinement of the
  // units its plan is marginal on, issue 13): measurement_key -> chunks,
  // fixed (no early stop), capped at stop.max_chunks. A journal record with
  // fewer chunks is re-measured from chunk 0 (the record stays what one
  // measurement of that length gives) and appended with `refines`.
  std::map<std::string, int> refine_chunks;
  // Only fill the reference stores (every chunk up to stop.max_chunks) with
  // the full-precision model, then stop: no journal is written. A later
  // sweep with the same settings then never loads the full-precision model.
  bool reference_only = false;
  std::string out_path;                    // the journal (measurements.jsonl)
  std::string reference_dir;               // reference store cache ("" = next to the journal)
  // Shards' common reference: the stores `--reference-only --out J` wrote
  // (J.<domain>.ref), read only; a missing one or one made for other settings
  // is refused. "" = each sweep keeps its own (reference_dir).
  std::string shared_reference;
  std::string tool_version = "0.1.0";
  Logger logger;                           // default: silent
  ProgressFn progress;                     // stage "measure": units done / total
};

// The sweep `quantize` runs end to end: ablations (q2_K, q3_K) and
// promotions (q5_K, q6_K, q8_0) around the base, so the allocator can move
// tensors both ways, and 4..16 chunks per unit (fixed 4 chunks already rank
// tensors at Spearman 0.989 against the 100-chunk truth, docs/measure.md;
// the cap keeps chunks 16+ free for the search). Otherwise MeasureOptions'.
MeasureOptions end_to_end_sweep();

// The k-ladder rungs around a stock k-quant mix's main type (Q5_K_M: q5_K):
// up to two below (targets) and three above (promote). Q4_K_M gives
// q2_K,q3_K / q5_K,q6_K,q8_0. nullopt for other bases (i-quant, legacy mixes
// and recipe files).
struct SweepTypes {
  std::vector<std::string> targets, promote;
};
std::optional<SweepTypes> sweep_around(const std::string& base_preset);

// Where a resident sweep builds the base mix in real types: next to the
// journal (kept for a resume; removed when the sweep ends unless
// MeasureOptions::keep_base_model).
inline std::string base_model_path(const std::string& journal) { return journal + ".base.gguf"; }

// Where a sweep keeps its reference stores: <dir>/<journal file name>, then
// ".<domain>.ref" per domain (reference_store_path); dir = reference_dir, or
// the journal's folder. --shared-reference J reads reference_store_path(J, domain).
std::string reference_store_prefix(const MeasureOptions& o);
std::string reference_store_path(const std::string& prefix, const std::string& domain);

struct MeasureSummary {
  int n_measured = 0;         // measurements appended by this run
  int n_resumed = 0;          // found already done in the journal
  int n_probes = 0;           // probes appended by this run
  int n_refined = 0;          // measurements re-measured with more chunks (refine_chunks)
  int64_t n_prefetched = 0;   // tensor swaps converted ahead, during the previous unit (prefetch_max_bytes)
  int64_t chunks_evaluated = 0;
  eval::EvalTimings eval_timings;  // the sweep's evaluations: decode / rows / scoring
  std::map<std::string, int> stopped;  // "tight"/"separated"/"cap" -> count
  double elapsed_s = 0;
  // The journal after the run, as read_journal would give it (resumed records
  // and this run's): allocate it without reading the file again. Empty for
  // reference_only.
  Journal journal;
};

// Runs the sweep. Throws UsageError (bad options, journal exists without
// resume), InputError, RecipeError, MismatchError (resume on a journal from
// another model / base / texts / settings), EngineError, IoError.
// The base configuration's per-tensor types: a stock preset name (any case) or
// a recipe file (`name` gets "file:sha256[:12]"). UsageError for neither.
std::map<std::string, std::string> resolve_base(const std::string& base, const ModelInfo& model, std::string* name);

// `source`: the source's inspection when the caller has it (else inspected here).
MeasureSummary run_measure(const MeasureOptions& options, const ModelInfo* source = nullptr);

// A --reference-model must be the same model in other types: same
// architecture, tensor names and shapes as `source`. Throws InputError (no
// such file, not a readable GGUF), MismatchError (another model).
void check_reference_model(const std::string& path, const ModelInfo& source);

// The header run_measure writes for these options (model sha256, base
// types, text hashes, settings); exposed for tests and for resume checks.
JournalHeader make_header(const MeasureOptions& options, const ModelInfo& model,
                          const std::map<std::string, std::string>& base_types);
// The first field in which two journals' headers differ (model sha256, base,
// base types, texts, a setting of `b` that `a` lacks or has otherwise): what
// makes their records incomparable. The shard and the paths are not compared.
struct HeaderDifference {
  std::string field, first, second;  // "setting ctx", "512", "256"
};
std::optional<HeaderDifference> header_difference(const JournalHeader& a, const JournalHeader& b);

// MismatchError naming the first field of `existing` that differs from `wanted`
// (header_difference, then the shard).
void check_resume_header(const JournalHeader& existing, const JournalHeader& wanted,
                         const std::string& path);

}  // namespace cb::measure
