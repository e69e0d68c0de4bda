// `cerebellum audit DIR`: re-reads a results folder (our per-question JSONL,
// or the original project's *_detailed.jsonl records) and flags harness
// smells: the bugs that silently move benchmark scores.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cb::bench {

enum class Severity { kInfo, kWarn, kSevere };

struct Smell {
  std::string kind;      // e.g. "gold_outside_choices"
  Severity severity = Severity::kWarn;
  int64_t count = 0;     // records affected
  std::string detail;    // one line for humans
  std::vector<std::string> examples;  // up to 5 record ids
};

struct FileAudit {
  std::string file;      // relative to the audited folder
  int64_t n = 0, n_wrong = 0, n_unparsable = 0;
  std::vector<nlohmann::json> wrong;      // {id, predicted, gold}
  std::vector<int64_t> prediction_histogram;  // per choice index
  std::vector<Smell> smells;
};

struct AuditOptions {
  double cluster_share = 0.60;     // one predicted index above this share is a smell
  int64_t cluster_min_n = 20;      // ... when at least this many questions
  double empty_severe_share = 0.01;  // empty outputs above this share are severe
};

struct AuditReport {
  std::string dir;
  std::vector<FileAudit> files;
  bool severe() const;
  nlohmann::json to_json() const;  // schema cerebellum.audit/1
};

// Audits every *.jsonl directly in `dir` (not summary/audit files). Throws
// InputError when the folder cannot be read.
AuditReport audit_dir(const std::string& dir, const AuditOptions& options = {});

// Audits one file's lines (exposed for tests).
FileAudit audit_records(const std::string& name, const std::vector<std::string>& lines, const AuditOptions& options);

}  // namespace cb::bench
