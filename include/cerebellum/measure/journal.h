// The measurement journal (measurements.jsonl, schema "cerebellum.measure/1",
// see docs/formats.md): a header line, then one line per finished
// baseline / measurement / probe, appended and fsynced so that a crash loses at
// most the line being written. These are plain data types plus (de)serialisation;
// the measure stage writes them, the allocator reads them.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include "cerebellum/common/schemas.h"

namespace cb {


struct JournalText {
  std::string domain;  // "en", "code", "wiki", ...
  std::string path;
  std::string sha256;
};

struct JournalHeader {
  std::string tool_version;
  std::string model_path;
  std::string model_sha256;
  std::string base_name;                           // e.g. "Q4_K_M"
  std::map<std::string, std::string> base_types;   // tensor -> type of the base config
  std::vector<JournalText> texts;
  // The settings object, kept verbatim as JSON text (a json member would need
  // the full nlohmann header here).
  std::string settings_json = "{}";
  // `measure --shard K/N`: which share of the units this journal holds
  // ("shard": {"index", "count"}; absent = every unit).
  int shard_index = 0, shard_count = 1;
};

// Metrics shared by baselines, measurements and probes. Optional fields are
// absent from the JSON when not measured.
struct JournalMetrics {
  int n_chunks = 0;
  int64_t n_tokens = 0;
  double kld_mean = 0, kld_se = 0;
  std::optional<double> ppl, ppl_se, top1, top1_se;
};

struct JournalBaseline {
  std::string domain;
  std::string config = "base";
  JournalMetrics metrics;
};

struct JournalUnit {
  std::string id;                    // e.g. "blk.5.ffn_down.weight" or "blk.5"
  std::string level = "tensor";      // "tensor" | "group" | "layer"
  std::vector<std::string> tensors;  // the tensors the unit covers
};

struct JournalMeasurement {
  std::string domain;
  std::string direction = "ablate";            // "ablate" | "promote"
  JournalUnit unit;
  std::map<std::string, std::string> types;    // tensor -> type used in this run
  JournalMetrics metrics;
  double delta_kld = 0, delta_kld_se = 0;      // paired vs the baseline, nats
  std::optional<double> delta_ln_ppl, delta_ln_ppl_se, delta_top1, delta_top1_se;
  std::string stopped;                         // "tight" | "separated" | "cap" | "refined"
  double elapsed_s = 0;
  // Of elapsed_s, the seconds spent putting the unit's types in place (its
  // tensors converted from the source and swapped in; resident mode), the
  // rest evaluating: where a sweep's time goes (issue 16).
  double swap_s = 0;
  // The ΔKLD samples the SE came from (block means, chunk order): lets a
  // later pass pool or extend the measurement, and stopping rules be audited.
  std::vector<double> delta_kld_samples;
  // > 0: this record re-measures its unit with more chunks (quantize's
  // refinement of marginal units, issue 13) and replaces the record of its
  // key that has `refines` chunks. 0: a first measurement.
  int refines = 0;
};

// Interaction probe: several units changed together.
struct JournalProbe {
  std::string domain;
  std::string probe;                           // "ladder" | "same_layer" | "cross_layer" ("" = unnamed)
  std::vector<JournalUnit> units;
  std::map<std::string, std::string> types;
  JournalMetrics metrics;
  double delta_kld = 0, delta_kld_se = 0;
  std::optional<double> delta_ln_ppl, delta_ln_ppl_se, delta_top1, delta_top1_se;
  // Additivity: the sum of the units' single measurements (same domain/types).
  std::optional<double> predicted_delta_kld, predicted_delta_kld_se;
  std::string stopped;                         // as for measurements ("" when absent)
  double elapsed_s = 0;
};

// The units a shard was given in one domain (measurement_key strings), written
// when the shard starts the domain: a merge names the ones never measured.
struct JournalShardPlan {
  std::string domain;
  int index = 0, count = 1;
  std::vector<std::string> unit_keys;
};

// One record per key: what a resume skips and a reader de-duplicates on.
std::string measurement_key(const std::string& domain, const std::string& direction,
                            const std::string& unit_id, const std::map<std::string, std::string>& types);
std::string probe_key(const std::string& domain, const std::string& kind,
                      const std::vector<JournalUnit>& units);

struct Journal {
  JournalHeader header;
  std::vector<JournalBaseline> baselines;
  std::vector<JournalMeasurement> measurements;
  std::vector<JournalProbe> probes;
  std::vector<JournalShardPlan> shard_plans;
  bool torn_tail = false;  // the last line was incomplete (a crash mid-write) and was dropped
  // Records repeated for one key (two writers, a replayed file): the first is
  // kept; one line per repeat, with both values where they conflict. A
  // measurement with `refines` = the kept record's chunks (and more chunks of
  // its own) replaces it instead: not a repeat.
  std::vector<std::string> duplicates;

  // Domains with a baseline or measurement, sorted.
  std::vector<std::string> domains() const;
};

nlohmann::json to_json(const JournalHeader& h);
nlohmann::json to_json(const JournalBaseline& b);
nlohmann::json to_json(const JournalMeasurement& m);
nlohmann::json to_json(const JournalProbe& p);
nlohmann::json to_json(const JournalShardPlan& s);

// Parse one record (throws InputError with `where` in the message).
JournalHeader header_from_json(const nlohmann::json& j, const std::string& where);
JournalBaseline baseline_from_json(const nlohmann::json& j, const std::string& where);
JournalMeasurement measurement_from_json(const nlohmann::json& j, const std::string& where);
JournalProbe probe_from_json(const nlohmann::json& j, const std::string& where);

// Reads a journal. The header must be line 1 with schema cerebellum.measure/1
// (else InputError / MismatchError for another version). A last line that does
// not parse and has no trailing newline is a torn write: dropped, torn_tail set.
// Any other bad line is an InputError naming the line. Unknown kinds are skipped
// (forward compatible within /1).
Journal read_journal(const std::string& path);
Journal parse_journal(const std::string& text, const std::string& where);

// Append-only writer: each record is one line, flushed and fsynced before
// append() returns. Opening an existing journal checks its header matches
// (same model_sha256 and base) and cuts a torn tail off before appending.
class JournalParser;

class JournalWriter {
 public:
  // Creates `path` with `header` if absent; otherwise resumes it: the
  // existing header goes to `check_existing` (when given), then MismatchError
  // if it is for another model/base.
  JournalWriter(const std::string& path, const JournalHeader& header,
                const std::function<void(const JournalHeader&)>& check_existing = {});
  ~JournalWriter();
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

  void append(const JournalBaseline& b);
  void append(const JournalMeasurement& m);
  void append(const JournalProbe& p);
  void append(const JournalShardPlan& s);
  // What read_journal(path) would give now: the records the file held when
  // opened and those appended since (so nobody re-reads what was just written).
  const Journal& journal() const;

 private:
  void append_record(const nlohmann::json& j);
  std::string path_;
  FILE* file_ = nullptr;
  std::unique_ptr<JournalParser> parser_;
};

}  // namespace cb
