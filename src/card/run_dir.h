// A run directory as read by the card (docs/card.md): which parts exist,
// parsed. Internal to src/card/.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cerebellum/card/card.h"
#include "cerebellum/measure/journal.h"

namespace cb::card {

struct RunFile {
  std::string name;   // relative to the run dir, e.g. "bench/summary.json"
  std::string path;   // absolute
  std::string what;   // one line for the artifact list
};

struct RunDir {
  std::string dir;                             // absolute
  std::string model_path;                      // absolute
  std::optional<RunInfo> run;
  std::optional<Journal> journal;
  std::optional<nlohmann::json> plan;
  std::optional<std::vector<EvalEntry>> eval;   // the first eval text's models
  std::vector<EvalDomain> eval_domains;          // every eval text (eval.json "domains"; empty if absent)
  std::optional<nlohmann::json> bench;         // bench/summary.json
  std::optional<std::string> commands;         // commands.txt
  std::optional<nlohmann::json> fit;           // fit.json (quantize --fit)
  std::string baseline_preset;                 // quantize.json: the stock mix the gate compared with; "" = none
  std::vector<RunFile> files;                  // every artifact present (model included)
  std::vector<std::string> not_run;            // "eval.json (PPL/KLD vs stock mixes)", ...
};

// InputError when the directory or its model is missing, or a present file is
// malformed (naming the file); MismatchError for another schema version.
RunDir load_run_dir(const std::string& dir);

// Copies the small reproducibility files into DIR/bundle/ and writes
// bundle/MANIFEST (sha256sum format, checkable with `sha256sum -c`) and
// bundle/ARTIFACTS.sha256 (the model and per-question files, by path relative
// to bundle/). Returns the bundle dir. IoError if it cannot write.
std::string write_bundle(const RunDir& run, const std::string& model_sha256);

// The card's "Artifacts" and "Reproducibility bundle" sections (Markdown).
std::string section_artifacts(const RunDir& run, const std::string& card_dir, const std::string& bundle_dir,
                              const std::vector<std::string>& figures);

}  // namespace cb::card
