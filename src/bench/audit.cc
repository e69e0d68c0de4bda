#include "cerebellum/bench/audit.h"
#include "cerebellum/common/schemas.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "common/json_int.h"
#include "cerebellum/common/io.h"
#include "cerebellum/common/strings.h"

namespace cb::bench {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// One record in a common shape, whichever harness wrote it.
struct Rec {
  std::string id;
  int n_choices = -1;  // -1: not a choice task
  int gold = -1, predicted = -1;
  bool has_correct = false, correct = false;
  bool generation = false;
  std::string output;          // generated text / raw response
  std::string prompt;
  std::string gold_label, pred_label;  // the original project's label strings
  bool label_gold_missing = false;     // expected not among labels
};

bool is_number(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

int index_of(const std::vector<std::string>& v, const std::string& x) {
  auto it = std::find(v.begin(), v.end(), x);
  return it == v.end() ? -1 : static_cast<int>(it - v.begin());
}

Rec normalize(const json& j, size_t line_no) {
  Rec r;
  r.id = j.contains("id") ? (j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump())
                          : fmt::format("line {}", line_no);
  if (j.contains("correct") && j["correct"].is_boolean()) {
    r.has_correct = true;
    r.correct = j["correct"].get<bool>();
  }
  r.prompt = j.value("prompt", j.value("question", ""));
  if (j.contains("labels") && j["labels"].is_array()) {
    // The original project's records: string labels, expected / predicted.
    std::vector<std::string> labels;
    for (const auto& l : j["labels"]) labels.push_back(l.is_string() ? l.get<std::string>() : l.dump());
    r.n_choices = static_cast<int>(labels.size());
    auto str = [&](const char* k) {
      return j.contains(k) ? (j[k].is_string() ? j[k].get<std::string>() : j[k].dump()) : std::string();
    };
    r.gold_label = str("expected");
    r.pred_label = str("predicted");
    r.gold = index_of(labels, r.gold_label);
    r.predicted = index_of(labels, r.pred_label);
    r.label_gold_missing = r.gold < 0;
    r.output = str("raw_response");
    r.generation = j.contains("raw_response");
    return r;
  }
  if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
    r.n_choices = static_cast<int>(j["choices"].size());
  }
  if (j.contains("gold") && j["gold"].is_number_integer()) r.gold = json_integer<int>(j["gold"]);
  if (j.contains("predicted") && j["predicted"].is_number_integer()) r.predicted = json_integer<int>(j["predicted"]);
  if (j.contains("generation")) {
    r.generation = true;
    r.output = j["generation"].is_string() ? j["generation"].get<std::string>() : "";
  }
  return r;
}

// Counts "def name(" occurrences per name in generated code.
int max_repeated_def(const std::string& code) {
  std::map<std::string, int> defs;
  size_t pos = 0;
  while ((pos = code.find("def ", pos)) != std::string::npos) {
    const size_t paren = code.find('(', pos);
    if (paren != std::string::npos && paren - pos < 80) defs[code.substr(pos + 4, paren - pos - 4)]++;
    pos += 4;
  }
  int m = 0;
  for (const auto& [n, c] : defs) m = std::max(m, c);
  return m;
}

// A tally of records matching a predicate, turned into a smell.
struct Tally {
  std::string kind;
  Severity severity;
  std::string what;
  int64_t count = 0;
  std::vector<std::string> examples;
  void add(const Rec& r) {
    ++count;
    if (examples.size() < 5) examples.push_back(r.id);
  }
};

void add_cluster_smell(FileAudit& fa, const std::vector<Rec>& recs, const AuditOptions& o) {
  int64_t n_pred = 0;
  std::map<int, int64_t> gold_hist;
  for (const auto& r : recs) {
    if (r.predicted >= 0 && r.n_choices > 0) ++n_pred;
    if (r.gold >= 0) gold_hist[r.gold]++;
  }
  if (n_pred < o.cluster_min_n || fa.prediction_histogram.empty()) return;
  const auto top = std::max_element(fa.prediction_histogram.begin(), fa.prediction_histogram.end());
  const int idx = static_cast<int>(top - fa.prediction_histogram.begin());
  const double share = static_cast<double>(*top) / n_pred;
  const double gold_share = static_cast<double>(gold_hist[idx]) / std::max<int64_t>(1, n_pred);
  if (share <= o.cluster_share) return;
  // A skewed gold distribution explains a skewed prediction; otherwise it is
  // the signature of a parser falling back to one answer or a shifted label.
  Smell s{"prediction_cluster", gold_share > o.cluster_share ? Severity::kWarn : Severity::kSevere, *top,
          fmt::format("{:.0f}% of predictions are choice {} (gold has {:.0f}% there)", 100 * share, idx,
                      100 * gold_share),
          {}};
  fa.smells.push_back(s);
}

// The records that parse; the others counted in `unparsable`.
std::vector<Rec> parse_records(const std::vector<std::string>& lines, Tally& unparsable) {
  std::vector<Rec> recs;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (trim(lines[i]).empty()) continue;
    try {
      const json j = json::parse(lines[i]);
      if (!j.is_object()) throw std::runtime_error("not an object");
      recs.push_back(normalize(j, i + 1));
    } catch (const std::exception&) {
      Rec r;
      r.id = fmt::format("line {}", i + 1);
      unparsable.add(r);
    }
  }
  return recs;
}

// Whether a generation repeats its prompt's signature line.
bool echoes_prompt(const Rec& r) {
  const std::string sig = r.prompt.substr(0, r.prompt.find('\n'));
  const size_t def = r.prompt.find("def ");
  const std::string def_line = def == std::string::npos ? sig : r.prompt.substr(def, r.prompt.find('\n', def) - def);
  return trim(def_line).size() > 8 && r.output.find(trim(def_line)) != std::string::npos;
}

}  // namespace

FileAudit audit_records(const std::string& name, const std::vector<std::string>& lines, const AuditOptions& o) {
  FileAudit fa;
  fa.file = name;
  Tally unparsable{"unparsable_record", Severity::kSevere, "lines that are not JSON objects"};
  const std::vector<Rec> recs = parse_records(lines, unparsable);
  fa.n = static_cast<int64_t>(recs.size());
  fa.n_unparsable = unparsable.count;
  Tally gold_out{"gold_outside_choices", Severity::kSevere, "gold index/label not among the choices"};
  Tally pred_out{"prediction_outside_choices", Severity::kSevere, "predicted index outside the choices"};
  Tally no_pred{"no_prediction", Severity::kSevere, "choice records without a parsable predicted answer"};
  Tally flag{"correct_flag_inconsistent", Severity::kSevere, "'correct' disagrees with predicted == gold"};
  Tally empty{"empty_output", Severity::kWarn, "empty or whitespace-only model outputs"};
  Tally echo{"prompt_echo", Severity::kWarn, "generations that repeat the prompt's signature"};
  Tally redef{"repeated_definition", Severity::kWarn, "generations defining the same function twice or more"};
  std::map<std::string, int64_t> label_kinds;  // "numeric" / "letter" gold labels
  for (const auto& r : recs) {
    const bool choice = r.n_choices > 0;
    if (choice && r.gold >= 0 && r.gold < r.n_choices && r.predicted >= 0 && r.predicted < r.n_choices) {
      if (static_cast<int>(fa.prediction_histogram.size()) < r.n_choices) fa.prediction_histogram.resize(r.n_choices);
      fa.prediction_histogram[r.predicted]++;
    }
    if (choice && (r.gold < 0 || r.gold >= r.n_choices)) gold_out.add(r);
    if (choice && r.predicted >= r.n_choices) pred_out.add(r);
    if (choice && r.predicted < 0) no_pred.add(r);
    if (choice && r.has_correct && r.gold >= 0 && r.predicted >= 0 && r.correct != (r.gold == r.predicted)) flag.add(r);
    if (!r.gold_label.empty()) label_kinds[is_number(r.gold_label) ? "numeric" : "other"]++;
    if (r.generation && trim(r.output).empty()) empty.add(r);
    if (r.generation && !r.prompt.empty() && echoes_prompt(r)) echo.add(r);
    if (r.generation && max_repeated_def(r.output) >= 2) redef.add(r);
    const bool wrong = r.has_correct ? !r.correct : (choice && r.predicted != r.gold);
    if (wrong) {
      ++fa.n_wrong;
      fa.wrong.push_back({{"id", r.id}, {"predicted", r.predicted}, {"gold", r.gold}});
    }
  }
  if (fa.n > 0 && static_cast<double>(empty.count) / fa.n > o.empty_severe_share) empty.severity = Severity::kSevere;
  for (Tally* t : {&unparsable, &gold_out, &pred_out, &no_pred, &flag, &empty, &echo, &redef}) {
    if (t->count) fa.smells.push_back({t->kind, t->severity, t->count, fmt::format("{} {}", t->count, t->what), t->examples});
  }
  if (label_kinds.size() > 1) {
    fa.smells.push_back({"mixed_label_styles", Severity::kSevere, label_kinds["numeric"],
                         fmt::format("{} records use numeric gold labels, {} others: compare labels of one style",
                                     label_kinds["numeric"], label_kinds["other"]),
                         {}});
  }
  add_cluster_smell(fa, recs, o);
  return fa;
}

bool AuditReport::severe() const {
  for (const auto& f : files) {
    for (const auto& s : f.smells) {
      if (s.severity == Severity::kSevere) return true;
    }
  }
  return false;
}

json AuditReport::to_json() const {
  static const char* kSev[] = {"info", "warn", "severe"};
  json j = {{"schema", kAuditSchema}, {"dir", dir}, {"severe", severe()}, {"files", json::object()}};
  for (const auto& f : files) {
    json sm = json::array();
    for (const auto& s : f.smells) {
      sm.push_back({{"kind", s.kind}, {"severity", kSev[static_cast<int>(s.severity)]}, {"count", s.count},
                    {"detail", s.detail}, {"examples", s.examples}});
    }
    j["files"][f.file] = {{"n", f.n}, {"n_wrong", f.n_wrong}, {"n_unparsable", f.n_unparsable},
                          {"prediction_histogram", f.prediction_histogram}, {"smells", sm}, {"wrong", f.wrong}};
  }
  return j;
}

AuditReport audit_dir(const std::string& dir, const AuditOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw InputError(fmt::format("{}: not a directory", dir));
  AuditReport rep;
  rep.dir = dir;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file() && e.path().extension() == ".jsonl") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& p : files) {
    std::vector<std::string> lines;
    std::istringstream in(read_file(p.string()));
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
    rep.files.push_back(audit_records(p.filename().string(), lines, options));
  }
  return rep;
}

}  // namespace cb::bench
