// build: write a GGUF with the per-tensor types of a recipe, through ggml's
// own quantizers (byte-identical to llama-quantize for the same types),
// streaming one slab of rows at a time; and surgery: recast single tensors of
// an existing GGUF, copying the rest byte for byte.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cerebellum/common/log.h"
#include "cerebellum/recipe/recipe.h"

namespace cb {

struct ModelInfo;

struct BuildOptions {
  std::string source;             // source GGUF (F32/F16/BF16 or already quantized)
  std::string out;                // output GGUF; unused when dry_run
  Recipe recipe;                  // rules (and optional base preset) to resolve
  std::string base;               // stock preset applied first; overrides recipe.base when set. "" = none
  std::string imatrix_path;       // GGUF or legacy .dat imatrix; "" = none
  bool dry_run = false;           // default: write. true = sizes and types only
  int n_threads = 0;              // default 0 = every CPU this run may use (its affinity)
  int64_t max_slab_bytes = 64ll << 20;  // default 64 MiB: rows per slab = this / (source + output row bytes)
  bool fallback_exact_names = false;    // default: an exact-name misfit is an error (see ResolveOptions)
  // general.file_type: default "" = the base preset's, else the "mostly" type
  // of the type holding most weights; or a preset name ("Q4_K_M").
  std::string file_type;
  // The source's inspection when the caller already has it (a run inspects
  // its model once); null = inspect `source` here.
  const ModelInfo* source_model = nullptr;
  // A GGUF an evaluation built from the same source and imatrix (e.g. the
  // base mix a sweep measured): tensors it holds in their wanted type are
  // copied from it, not converted again (the same bytes). Default "" = none;
  // a donor of another origin is not read.
  std::string donor;
};

struct BuildTensor {
  std::string name;
  std::string from_type;
  std::string to_type;
  std::vector<int64_t> shape;
  int64_t size_bytes = 0;        // output data bytes
  bool used_imatrix = false;
  std::string fallback_reason;   // non-empty: rows did not fit the requested type
  std::string requested_type;
};

struct BuildReport {
  std::string out;               // written path ("" for dry runs)
  int64_t output_size_bytes = 0; // exact file size (predicted == written)
  int64_t source_size_bytes = 0;
  std::vector<BuildTensor> tensors;
  int n_fallbacks = 0;
  double elapsed_s = 0;
  bool dry_run = false;
};

// Resolves the recipe against the source and builds. Throws InputError (bad
// source/imatrix), RecipeError (recipe cannot apply, type needs an imatrix),
// MismatchError (imatrix of another model), IoError (cannot write); leaves no
// output or temporary file behind on failure.
BuildReport build_model(const BuildOptions& options, const Logger& logger = {}, const ProgressFn& progress = {});

// Exact output file size of `source` with these per-tensor types (absent
// tensors unchanged), without writing: what the allocator budgets with.
// Pass the imatrix the build will use: its metadata keys add a few bytes.
int64_t predict_output_size_bytes(const std::string& source, const std::map<std::string, std::string>& types,
                                  const std::string& imatrix_path = "");
// The exact file size of stock `preset` (llama-quantize's own type choices)
// built from `source` with that imatrix ("" = none). RecipeError when, without
// an imatrix, the preset needs one (as build_model would refuse it).
int64_t stock_preset_size_bytes(const std::string& source, const std::string& preset,
                                const std::string& imatrix_path = "");

struct SurgeryOptions {
  std::string in;                         // existing GGUF, possibly quantized
  std::string out;
  std::vector<RecipeRule> sets;           // NAME_OR_REGEX=TYPE, resolved like recipe rules
  std::string imatrix_path;               // optional
  bool dry_run = false;
  int n_threads = 0;                      // 0 = every CPU this run may use (its affinity)
  int64_t max_slab_bytes = 64ll << 20;
};

// Recasts the named tensors; every other tensor and all metadata are copied
// byte for byte, tensor order kept. Warns when re-quantizing an already
// quantized tensor (dequantize -> quantize loses more than quantizing once).
BuildReport surgery(const SurgeryOptions& options, const Logger& logger = {}, const ProgressFn& progress = {});

nlohmann::json to_json(const BuildReport& report);

}  // namespace cb
