// measure merge: one journal from the shards of a sweep (include/cerebellum/measure/merge.h).
#include "cerebellum/measure/merge.h"

#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/error.h"
#include "cerebellum/measure/measure.h"

namespace cb::measure {
namespace {

void check_same_sweep(const Journal& first, const std::string& first_path, const Journal& j, const std::string& path) {
  auto d = header_difference(first.header, j.header);
  if (!d) {
    d = header_difference(j.header, first.header);
    if (d) std::swap(d->first, d->second);
  }
  if (d) {
    throw MismatchError(fmt::format("{} and {} are not one sweep: {} is {} vs {}", first_path, path, d->field,
                                    d->first, d->second));
  }
  if (j.header.shard_count != first.header.shard_count) {
    throw MismatchError(fmt::format("{} and {} are not one sweep: shard count {} vs {}", first_path, path,
                                    first.header.shard_count, j.header.shard_count));
  }
}

// "prose|ablate|blk.0.attn_q.weight|{...}" -> "prose ablate blk.0.attn_q.weight {...}"
std::string readable(std::string key) {
  for (char& c : key) {
    if (c == '|') c = ' ';
  }
  return key;
}

}  // namespace

MergeResult merge_journals(const std::vector<std::string>& paths) {
  if (paths.empty()) throw UsageError("measure merge needs at least one journal");
  MergeResult r;
  r.inputs = paths;
  std::vector<Journal> in;
  for (const auto& p : paths) in.push_back(read_journal(p));
  Journal& out = r.journal;
  out.header = in.front().header;
  out.header.shard_index = 0;
  out.header.shard_count = 1;
  std::map<std::string, std::string> kept_at;          // measurement key -> input path
  std::map<std::string, size_t> baseline_of;           // domain|config -> index in out.baselines
  std::set<int> shards;
  std::vector<JournalShardPlan> plans;
  for (size_t i = 0; i < in.size(); ++i) {
    const Journal& j = in[i];
    check_same_sweep(in.front(), paths.front(), j, paths[i]);
    shards.insert(j.header.shard_index);
    for (const auto& d : j.duplicates) r.duplicates.push_back(d);
    for (const auto& b : j.baselines) {  // one per domain: the one over the most chunks
      const std::string key = b.domain + "|" + b.config;
      auto it = baseline_of.find(key);
      if (it == baseline_of.end()) {
        baseline_of[key] = out.baselines.size();
        out.baselines.push_back(b);
      } else if (b.metrics.n_chunks > out.baselines[it->second].metrics.n_chunks) {
        out.baselines[it->second] = b;
      }
    }
    for (const auto& m : j.measurements) {
      const std::string key = measurement_key(m.domain, m.direction, m.unit.id, m.types);
      const auto [it, fresh] = kept_at.emplace(key, paths[i]);
      if (fresh) {
        out.measurements.push_back(m);
      } else {
        r.duplicates.push_back(fmt::format("{}: {} was also measured in {} (ΔKLD {:.6g}); the first is kept", paths[i],
                                           readable(key), it->second, m.delta_kld));
      }
    }
    for (const auto& p : j.probes) out.probes.push_back(p);
    for (const auto& sp : j.shard_plans) plans.push_back(sp);
  }
  const int count = in.front().header.shard_count;
  for (int k = 0; count > 1 && k < count; ++k) {
    if (!shards.count(k)) r.missing_shards.push_back(fmt::format("{}/{}", k, count));
  }
  for (const auto& sp : plans) {
    for (const auto& key : sp.unit_keys) {
      if (!kept_at.count(key)) r.missing_units.push_back(fmt::format("shard {}/{} {}", sp.index, sp.count, readable(key)));
    }
  }
  r.n_measurements = static_cast<int>(out.measurements.size());
  return r;
}

std::string journal_text(const Journal& j) {
  std::string text = to_json(j.header).dump() + "\n";
  for (const auto& b : j.baselines) text += to_json(b).dump() + "\n";
  for (const auto& m : j.measurements) text += to_json(m).dump() + "\n";
  for (const auto& p : j.probes) text += to_json(p).dump() + "\n";
  for (const auto& s : j.shard_plans) text += to_json(s).dump() + "\n";
  return text;
}

}  // namespace cb::measure
