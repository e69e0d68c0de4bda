#include "cerebellum/measure/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "common/json_int.h"

namespace cb {
namespace {

using nlohmann::json;

// Integers go through json_integer: a journal is outside input.
template <typename T>
T get_as(const json& v) {
  if constexpr (std::is_integral_v<T>) return json_integer<T>(v);
  else return v.get<T>();
}

template <typename T>
T req(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) throw InputError(fmt::format("{}: missing \"{}\"", where, key));
  try {
    return get_as<T>(*it);
  } catch (const std::exception& e) {
    throw InputError(fmt::format("{}: bad \"{}\": {}", where, key, e.what()));
  }
}

template <typename T>
T opt(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return get_as<T>(*it);
  } catch (const std::range_error& e) {
    throw std::range_error(fmt::format("bad \"{}\": {}", key, e.what()));
  }
}

std::optional<double> opt_num(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

void put_opt(json& j, const char* key, const std::optional<double>& v) {
  if (v) j[key] = *v;
}

void put_metrics(json& j, const JournalMetrics& m) {
  j["n_chunks"] = m.n_chunks;
  j["n_tokens"] = m.n_tokens;
  j["kld_mean"] = m.kld_mean;
  j["kld_se"] = m.kld_se;
  put_opt(j, "ppl", m.ppl);
  put_opt(j, "ppl_se", m.ppl_se);
  put_opt(j, "top1", m.top1);
  put_opt(j, "top1_se", m.top1_se);
}

JournalMetrics get_metrics(const json& j, const std::string& where) {
  JournalMetrics m;
  m.n_chunks = opt<int>(j, "n_chunks", 0);
  m.n_tokens = opt<int64_t>(j, "n_tokens", 0);
  m.kld_mean = req<double>(j, "kld_mean", where);
  m.kld_se = opt<double>(j, "kld_se", 0.0);
  m.ppl = opt_num(j, "ppl");
  m.ppl_se = opt_num(j, "ppl_se");
  m.top1 = opt_num(j, "top1");
  m.top1_se = opt_num(j, "top1_se");
  return m;
}

json unit_json(const JournalUnit& u) {
  return json{{"id", u.id}, {"level", u.level}, {"tensors", u.tensors}};
}

JournalUnit unit_from(const json& j, const std::string& where) {
  JournalUnit u;
  u.id = req<std::string>(j, "id", where);
  u.level = opt<std::string>(j, "level", "tensor");
  u.tensors = opt<std::vector<std::string>>(j, "tensors", {});
  if (u.tensors.empty() && u.level == "tensor") u.tensors.push_back(u.id);
  return u;
}

// Deltas shared by measurement and probe records.
template <typename R>
void put_deltas(json& j, const R& r) {
  j["delta_kld"] = r.delta_kld;
  j["delta_kld_se"] = r.delta_kld_se;
  put_opt(j, "delta_ln_ppl", r.delta_ln_ppl);
  put_opt(j, "delta_ln_ppl_se", r.delta_ln_ppl_se);
  put_opt(j, "delta_top1", r.delta_top1);
  put_opt(j, "delta_top1_se", r.delta_top1_se);
}

template <typename R>
void get_deltas(const json& j, R& r, const std::string& where) {
  r.delta_kld = req<double>(j, "delta_kld", where);
  r.delta_kld_se = opt<double>(j, "delta_kld_se", 0.0);
  r.delta_ln_ppl = opt_num(j, "delta_ln_ppl");
  r.delta_ln_ppl_se = opt_num(j, "delta_ln_ppl_se");
  r.delta_top1 = opt_num(j, "delta_top1");
  r.delta_top1_se = opt_num(j, "delta_top1_se");
}

void check_schema(const json& j, const std::string& where) {
  const std::string schema = opt<std::string>(j, "schema", "");
  if (schema == kMeasureSchema) return;
  if (schema.rfind("cerebellum.measure/", 0) == 0) {
    throw MismatchError(fmt::format("{}: journal schema {} is not supported (expected {})", where,
                                    schema, kMeasureSchema));
  }
  throw InputError(fmt::format("{}: not a measurement journal (line 1 has schema \"{}\", "
                               "expected {})", where, schema, kMeasureSchema));
}

}  // namespace

std::vector<std::string> Journal::domains() const {
  std::set<std::string> d;
  for (const auto& b : baselines) d.insert(b.domain);
  for (const auto& m : measurements) d.insert(m.domain);
  return {d.begin(), d.end()};
}

json to_json(const JournalHeader& h) {
  json texts = json::array();
  for (const auto& t : h.texts) {
    texts.push_back({{"domain", t.domain}, {"path", t.path}, {"sha256", t.sha256}});
  }
  json j{{"schema", kMeasureSchema},
              {"kind", "header"},
              {"tool_version", h.tool_version},
              {"model_path", h.model_path},
              {"model_sha256", h.model_sha256},
              {"base", {{"name", h.base_name}, {"types", h.base_types}}},
              {"texts", texts},
              {"settings", json::parse(h.settings_json)}};
  if (h.shard_count > 1) j["shard"] = {{"index", h.shard_index}, {"count", h.shard_count}};
  return j;
}

json to_json(const JournalShardPlan& s) {
  return {{"kind", "shard_plan"}, {"domain", s.domain}, {"index", s.index}, {"count", s.count}, {"units", s.unit_keys}};
}

json to_json(const JournalBaseline& b) {
  json j{{"kind", "baseline"}, {"domain", b.domain}, {"config", b.config}};
  put_metrics(j, b.metrics);
  return j;
}

json to_json(const JournalMeasurement& m) {
  json j{{"kind", "measurement"}, {"domain", m.domain}, {"direction", m.direction},
         {"unit", unit_json(m.unit)}, {"types", m.types}};
  put_metrics(j, m.metrics);
  put_deltas(j, m);
  j["stopped"] = m.stopped;
  j["elapsed_s"] = m.elapsed_s;
  if (m.swap_s > 0) j["swap_s"] = m.swap_s;
  if (!m.delta_kld_samples.empty()) {
    // float precision: the samples' own noise is far above it, and the line stays short
    std::vector<float> samples(m.delta_kld_samples.begin(), m.delta_kld_samples.end());
    j["delta_kld_samples"] = samples;
  }
  if (m.refines > 0) j["refines"] = m.refines;
  return j;
}

json to_json(const JournalProbe& p) {
  json units = json::array();
  for (const auto& u : p.units) units.push_back(unit_json(u));
  json j{{"kind", "probe"}, {"domain", p.domain}, {"units", units}, {"types", p.types}};
  if (!p.probe.empty()) j["probe"] = p.probe;
  put_metrics(j, p.metrics);
  put_deltas(j, p);
  put_opt(j, "predicted_delta_kld", p.predicted_delta_kld);
  put_opt(j, "predicted_delta_kld_se", p.predicted_delta_kld_se);
  if (!p.stopped.empty()) j["stopped"] = p.stopped;
  j["elapsed_s"] = p.elapsed_s;
  return j;
}

JournalHeader header_from_json(const json& j, const std::string& where) {
  check_schema(j, where);
  JournalHeader h;
  h.tool_version = opt<std::string>(j, "tool_version", "");
  h.model_path = opt<std::string>(j, "model_path", "");
  h.model_sha256 = opt<std::string>(j, "model_sha256", "");
  const json base = req<json>(j, "base", where);
  h.base_name = opt<std::string>(base, "name", "");
  h.base_types = opt<std::map<std::string, std::string>>(base, "types", {});
  for (const auto& t : opt<json>(j, "texts", json::array())) {
    h.texts.push_back({opt<std::string>(t, "domain", ""), opt<std::string>(t, "path", ""),
                       opt<std::string>(t, "sha256", "")});
  }
  h.settings_json = opt<json>(j, "settings", json::object()).dump();
  if (j.contains("shard")) {
    const json& s = j["shard"];
    h.shard_index = req<int>(s, "index", where);
    h.shard_count = req<int>(s, "count", where);
    if (h.shard_count < 1 || h.shard_index < 0 || h.shard_index >= h.shard_count) {
      throw InputError(fmt::format("{}: shard {}/{} is not 0 <= index < count", where, h.shard_index, h.shard_count));
    }
  }
  return h;
}

JournalBaseline baseline_from_json(const json& j, const std::string& where) {
  JournalBaseline b;
  b.domain = req<std::string>(j, "domain", where);
  b.config = opt<std::string>(j, "config", "base");
  b.metrics = get_metrics(j, where);
  return b;
}

JournalMeasurement measurement_from_json(const json& j, const std::string& where) {
  JournalMeasurement m;
  m.domain = req<std::string>(j, "domain", where);
  m.direction = opt<std::string>(j, "direction", "ablate");
  if (m.direction != "ablate" && m.direction != "promote") {
    throw InputError(fmt::format("{}: direction \"{}\" is not ablate|promote", where, m.direction));
  }
  m.unit = unit_from(req<json>(j, "unit", where), where);
  m.types = req<std::map<std::string, std::string>>(j, "types", where);
  m.metrics = get_metrics(j, where);
  get_deltas(j, m, where);
  m.stopped = opt<std::string>(j, "stopped", "");
  m.elapsed_s = opt<double>(j, "elapsed_s", 0.0);
  m.swap_s = opt<double>(j, "swap_s", 0.0);
  m.delta_kld_samples = opt<std::vector<double>>(j, "delta_kld_samples", {});
  m.refines = opt<int>(j, "refines", 0);
  if (m.refines < 0 || (m.refines > 0 && m.refines >= m.metrics.n_chunks)) {
    throw InputError(fmt::format("{}: \"refines\" {} must be below the record's n_chunks {}", where, m.refines,
                                 m.metrics.n_chunks));
  }
  return m;
}

JournalProbe probe_from_json(const json& j, const std::string& where) {
  JournalProbe p;
  p.domain = req<std::string>(j, "domain", where);
  for (const auto& u : req<json>(j, "units", where)) p.units.push_back(unit_from(u, where));
  p.types = opt<std::map<std::string, std::string>>(j, "types", {});
  p.probe = opt<std::string>(j, "probe", "");
  p.metrics = get_metrics(j, where);
  get_deltas(j, p, where);
  p.predicted_delta_kld = opt_num(j, "predicted_delta_kld");
  p.predicted_delta_kld_se = opt_num(j, "predicted_delta_kld_se");
  p.stopped = opt<std::string>(j, "stopped", "");
  p.elapsed_s = opt<double>(j, "elapsed_s", 0.0);
  return p;
}

std::string measurement_key(const std::string& domain, const std::string& direction,
                            const std::string& unit_id, const std::map<std::string, std::string>& types) {
  return domain + "|" + direction + "|" + unit_id + "|" + json(types).dump();
}

std::string probe_key(const std::string& domain, const std::string& kind,
                      const std::vector<JournalUnit>& units) {
  std::string k = domain + "|" + kind;
  for (const auto& u : units) k += "|" + u.id;
  return k;
}

namespace {

// Keeps the first record per key; a repeat is noted, with both values when
// they differ (a silent pick let ΔKLD jump from −0.0011 to −0.92, issue 15).
class Dedupe {
 public:
  template <typename R>
  bool keep(const std::string& key, const R& r, const std::string& at, std::vector<std::string>& notes) {
    const auto [it, fresh] = first_.emplace(key, std::make_pair(at, value(r)));
    if (fresh) return true;
    const std::string v = value(r);
    notes.push_back(v == it->second.second
                        ? fmt::format("{}: repeats the record of {} (same values); ignored", at, it->second.first)
                        : fmt::format("{}: conflicts with {}: {} vs the kept {}; ignored", at, it->second.first, v,
                                      it->second.second));
    return false;
  }
  // A refinement of the kept record (journal.h, JournalMeasurement::refines):
  // true when it replaces it (the kept record is `refines` chunks long).
  bool supersede(const std::string& key, const JournalMeasurement& m, int kept_chunks, const std::string& at) {
    auto it = first_.find(key);
    if (it == first_.end() || m.refines != kept_chunks) return false;
    it->second = {at, value(m)};
    return true;
  }

 private:
  static std::string value(const JournalBaseline& b) { return fmt::format("KLD {:.6g}", b.metrics.kld_mean); }
  template <typename R>
  static std::string value(const R& r) {
    return fmt::format("ΔKLD {:.6g} ± {:.3g}", r.delta_kld, r.delta_kld_se);
  }
  std::map<std::string, std::pair<std::string, std::string>> first_;  // key -> (line, value)
};

// One parsed line into `out`: the header first, then records (first per key kept).
void add_record(const json& j, const std::string& at, Journal& out, Dedupe& seen, bool& have_header) {
  const std::string kind = opt<std::string>(j, "kind", "");
  if (!have_header) {
    if (kind != "header") check_schema(j, at);  // gives the precise error
    out.header = header_from_json(j, at);
    have_header = true;
  } else if (kind == "baseline") {
    JournalBaseline b = baseline_from_json(j, at);
    if (seen.keep("b|" + b.domain + "|" + b.config, b, at, out.duplicates)) out.baselines.push_back(std::move(b));
  } else if (kind == "measurement") {
    JournalMeasurement m = measurement_from_json(j, at);
    const std::string key = "m|" + measurement_key(m.domain, m.direction, m.unit.id, m.types);
    if (m.refines > 0) {
      for (JournalMeasurement& kept : out.measurements) {
        if ("m|" + measurement_key(kept.domain, kept.direction, kept.unit.id, kept.types) != key) continue;
        if (seen.supersede(key, m, kept.metrics.n_chunks, at)) {
          kept = std::move(m);
          return;
        }
        break;
      }
    }
    if (seen.keep(key, m, at, out.duplicates)) out.measurements.push_back(std::move(m));
  } else if (kind == "probe") {
    JournalProbe p = probe_from_json(j, at);
    const std::string key = "p|" + probe_key(p.domain, p.probe, p.units);
    if (seen.keep(key, p, at, out.duplicates)) out.probes.push_back(std::move(p));
  } else if (kind == "shard_plan") {  // one per domain (a resume does not write it again); the first is kept
    JournalShardPlan sp{req<std::string>(j, "domain", at), req<int>(j, "index", at), req<int>(j, "count", at),
                        req<std::vector<std::string>>(j, "units", at)};
    bool known = false;
    for (const auto& e : out.shard_plans) known = known || (e.domain == sp.domain && e.index == sp.index);
    if (!known) out.shard_plans.push_back(std::move(sp));
  }  // other kinds: newer writers within /1, skipped
}

}  // namespace

// Lines in, a Journal out: parse_journal reads a file's lines with it, and
// JournalWriter keeps one fed with what it appends, so its journal() is what
// reading the file back would give.
class JournalParser {
 public:
  explicit JournalParser(std::string where) : where_(std::move(where)) {}
  // One line (without its '\n'); `terminated`: a newline followed it.
  // Returns false for a torn last line (unterminated, not JSON): not an error.
  bool add_line(const std::string& line, bool terminated) {
    ++line_no_;
    if (line.find_first_not_of(" \t\r") == std::string::npos) return true;
    const std::string at = fmt::format("{}:{}", where_, line_no_);
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      if (!terminated && have_header_) {  // a crash mid-append
        journal_.torn_tail = true;
        return false;
      }
      throw InputError(fmt::format("{}: not a JSON object", at));
    }
    add_json(j, at);
    return true;
  }
  // A record this process wrote (as a line): no text round trip needed.
  void add_written(const json& j) { add_json(j, fmt::format("{}:{}", where_, ++line_no_)); }
  Journal& journal() { return journal_; }
  bool have_header() const { return have_header_; }

 private:
  void add_json(const json& j, const std::string& at) {
    try {  // a value of the wrong JSON type is the file's fault: InputError naming the line
      add_record(j, at, journal_, seen_, have_header_);
    } catch (const json::exception& e) {
      throw InputError(fmt::format("{}: malformed record ({})", at, e.what()));
    } catch (const std::range_error& e) {
      throw InputError(fmt::format("{}: malformed record ({})", at, e.what()));
    }
  }
  std::string where_;
  Journal journal_;
  Dedupe seen_;
  bool have_header_ = false;
  int line_no_ = 0;
};

namespace {

void parse_lines(const std::string& text, JournalParser& parser) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    const bool terminated = end != std::string::npos;
    if (!terminated) end = text.size();
    if (!parser.add_line(text.substr(pos, end - pos), terminated)) break;
    pos = end + 1;
  }
}

}  // namespace

Journal parse_journal(const std::string& text, const std::string& where) {
  JournalParser parser(where);
  parse_lines(text, parser);
  if (!parser.have_header()) throw InputError(fmt::format("{}: empty journal (no header line)", where));
  return std::move(parser.journal());
}

Journal read_journal(const std::string& path) { return parse_journal(read_file(path), path); }

JournalWriter::JournalWriter(const std::string& path, const JournalHeader& header,
                             const std::function<void(const JournalHeader&)>& check_existing)
    : path_(path), parser_(std::make_unique<JournalParser>(path)) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool exists = fs::exists(path, ec) && fs::file_size(path, ec) > 0;
  if (exists) {
    const std::string text = read_file(path);
    parse_lines(text, *parser_);
    const Journal& existing = parser_->journal();
    if (!parser_->have_header()) throw InputError(fmt::format("{}: empty journal (no header line)", path));
    if (check_existing) check_existing(existing.header);
    if (existing.header.model_sha256 != header.model_sha256 || existing.header.base_name != header.base_name) {
      throw MismatchError(fmt::format(
          "{}: journal is for model {} base {}, not model {} base {}", path,
          existing.header.model_sha256, existing.header.base_name, header.model_sha256,
          header.base_name));
    }
    // Cut a torn tail so the next record starts on its own line.
    const size_t keep = text.empty() || text.back() == '\n' ? text.size() : text.rfind('\n') + 1;
    if (keep != text.size() && truncate(path.c_str(), static_cast<off_t>(keep)) != 0) {
      throw IoError(fmt::format("{}: cannot truncate torn tail ({})", path, std::strerror(errno)));
    }
  }
  file_ = std::fopen(path.c_str(), "ab");
  if (!file_) throw IoError(fmt::format("{}: cannot open ({})", path, std::strerror(errno)));
  if (!exists) append_record(to_json(header));
}

JournalWriter::~JournalWriter() {
  if (file_) std::fclose(file_);
}

const Journal& JournalWriter::journal() const { return parser_->journal(); }

void JournalWriter::append_record(const nlohmann::json& j) {
  const std::string buf = j.dump() + "\n";
  if (std::fwrite(buf.data(), 1, buf.size(), file_) != buf.size() || std::fflush(file_) != 0 ||
      fsync(fileno(file_)) != 0) {
    throw IoError(fmt::format("{}: append failed ({})", path_, std::strerror(errno)));
  }
  parser_->add_written(j);
}

void JournalWriter::append(const JournalBaseline& b) { append_record(to_json(b)); }
void JournalWriter::append(const JournalMeasurement& m) { append_record(to_json(m)); }
void JournalWriter::append(const JournalProbe& p) { append_record(to_json(p)); }
void JournalWriter::append(const JournalShardPlan& s) { append_record(to_json(s)); }

}  // namespace cb
