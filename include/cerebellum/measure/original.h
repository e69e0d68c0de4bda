// Interoperability with the original Cerebellum project's ablation files
// (ablation_results.json): single-domain {"baseline_ppl": x, "tests":
// {key: {"gguf_tensor": name-or-regex, "ppl": y}}} and multi-domain
// {"baseline_ppl": {domain: x}, "tests": {key: {"gguf_tensor", "tensor_count",
// "ppl": {domain: y}, "delta": {...}, "delta_pct": {...}}}, "base_type",
// "ablate_type"}.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "cerebellum/inspect/inspect.h"
#include "cerebellum/measure/journal.h"

namespace cb::measure {

struct ExportOriginalOptions {
  // The ablation type to export (the original format holds one); "" = the
  // first ablation type found in the journal.
  std::string type;
  // Multi-domain layout even for one domain (default: single-domain layout
  // when the journal has exactly one domain).
  bool force_multi_domain = false;
};

// Journal -> original JSON. A test's ppl is the paired estimate
// baseline_ppl * exp(Δln PPL) (the measurement itself may have used fewer
// chunks than the baseline). Group/layer units export gguf_tensor as an
// anchored regex of their tensors. Throws InputError when the journal has no
// baseline with a PPL or no ablation of the type.
nlohmann::json export_original(const Journal& journal, const ExportOriginalOptions& options = {});

struct ImportOriginalOptions {
  std::string type = "q2_K";     // ablation type when the file has no "ablate_type"
  std::string domain = "en";     // domain of a single-domain file
  std::string base = "";         // base name when the file has no "base_type"
  const ModelInfo* model = nullptr;  // optional: resolve regex gguf_tensor to tensors, sha256
  std::string model_sha256;      // recorded in the header (optional)
};

// Original JSON -> journal records (PPL only: kld fields are 0 placeholders
// and the header's settings say {"imported_from":"cerebellum-original",
// "metrics":["ppl"]}). Entries with "error" or without ppl are skipped.
// Throws InputError on a malformed file.
Journal import_original(const nlohmann::json& original, const ImportOriginalOptions& options = {});

// Whether a journal came from import_original (its ΔKLD are placeholders).
bool is_imported(const Journal& journal);

}  // namespace cb::measure
