// Journals of one sweep measured apart (`measure --shard K/N`, a Slurm job
// array, or hosts that each took a share) joined into one: `measure merge`
// writes it, `allocate --measurements J1 J2 ...` uses it in memory.
#pragma once

#include <string>
#include <vector>

#include "cerebellum/measure/journal.h"

namespace cb::measure {

struct MergeResult {
  Journal journal;                          // header without a shard; every record once
  std::vector<std::string> inputs;          // the paths, in order
  // Units a shard was given (its shard_plan records) that no input measured:
  // "SHARD K/N DOMAIN DIRECTION UNIT TYPES" lines.
  std::vector<std::string> missing_units;
  std::vector<std::string> missing_shards;  // "K/N" that no input holds
  // Records of one key found in several inputs (or twice in one): the first
  // kept, each repeat named with both values where they differ.
  std::vector<std::string> duplicates;
  int n_measurements = 0;
};

// Joins the journals at `paths`, in order (the first record of a key wins;
// for a domain's baseline, the one over the most chunks). MismatchError
// naming the field when two headers differ (header_difference: model sha256,
// base, texts, a setting) or shard counts disagree; InputError for an
// unreadable journal.
MergeResult merge_journals(const std::vector<std::string>& paths);

// The journal as JSONL (header line, then records), what read_journal reads back.
std::string journal_text(const Journal& j);

}  // namespace cb::measure
