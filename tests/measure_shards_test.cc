// Issue 16: a sweep split into shards (`measure --shard K/N`, as a Slurm job
// array runs it) and joined by `measure merge` is the single-process sweep:
// the same units, the same ΔKLD (bit-equal: same reference store, CPU,
// deterministic), every unit once. A shard cut short is named by the merge
// and finished by --resume; journals of another sweep are refused.
#include <filesystem>
#include <map>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/io.h"
#include "cerebellum/measure/journal.h"
#include "test_paths.h"

namespace cb {
namespace {

std::string sweep(const std::string& out, const std::string& extra) {
  return fmt::format("{} measure --source {} --base Q4_K_M --text {} --domain en --plan tensors --targets q2_K "
                     "--promote q6_K --tensors \"blk\\.0\\.\" --ctx 128 --min-chunks 2 --max-chunks 3 --threads 2 "
                     "--out {} {} 2>&1",
                     test::cli_path(), test::model("cb-dense-12l-F16.gguf"), test::data("docs-en-calib.txt"), out, extra);
}

std::map<std::string, double> deltas(const Journal& j) {
  std::map<std::string, double> out;
  for (const auto& m : j.measurements) out[measurement_key(m.domain, m.direction, m.unit.id, m.types)] = m.delta_kld;
  return out;
}

TEST(MeasureShards, TwoShardsMergedAreTheSingleSweep) {
  const std::string dir = test::temp_dir("measure_shards");
  const std::string ref = dir + "/ref.jsonl", shared = " --shared-reference " + ref;
  auto r = test::run_command(sweep(ref, "--reference-only"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The reference pass also builds the base mix once for every shard (issue 16).
  EXPECT_TRUE(std::filesystem::exists(ref + ".base.gguf")) << r.output;
  r = test::run_command(sweep(dir + "/one.jsonl", ""));  // its own reference and base mix
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int k = 0; k < 2; ++k) {
    r = test::run_command(sweep(fmt::format("{}/s{}.jsonl", dir, k), fmt::format("--shard {}/2{}", k, shared)));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("loading the shared base mix " + ref + ".base.gguf"), std::string::npos) << r.output;
  }
  const Journal one = read_journal(dir + "/one.jsonl");
  const Journal s0 = read_journal(dir + "/s0.jsonl"), s1 = read_journal(dir + "/s1.jsonl");
  EXPECT_EQ(s1.header.shard_index, 1);
  EXPECT_EQ(s1.header.shard_count, 2);
  ASSERT_EQ(s0.shard_plans.size(), 1u);
  // Each shard measured what it was given, and the two split the work.
  EXPECT_EQ(s0.measurements.size(), s0.shard_plans[0].unit_keys.size());
  EXPECT_GT(s0.measurements.size(), 0u);
  EXPECT_GT(s1.measurements.size(), 0u);
  EXPECT_EQ(s0.measurements.size() + s1.measurements.size(), one.measurements.size());

  // Drop shard 1's last measurement (a preempted job): the merge names it and writes nothing.
  std::string s1_text = read_file(dir + "/s1.jsonl");
  const size_t at = s1_text.rfind("\"kind\":\"measurement\"");
  ASSERT_NE(at, std::string::npos);
  const size_t last = s1_text.rfind('\n', at) + 1;
  s1_text.erase(last, s1_text.find('\n', last) + 1 - last);
  write_file_atomic(dir + "/s1.jsonl", s1_text);
  const std::string merge = fmt::format("{} measure merge {}/s0.jsonl {}/s1.jsonl --out {}/m.jsonl 2>&1",
                                        test::cli_path(), dir, dir, dir);
  r = test::run_command(merge);
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("missing unit: shard 1/2 en"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/m.jsonl"));
  // --resume finishes it; now the merge is complete and equals the single sweep.
  r = test::run_command(sweep(dir + "/s1.jsonl", "--shard 1/2 --resume" + shared));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_command(merge);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto summary = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_TRUE(summary["complete"].get<bool>());
  EXPECT_EQ(summary["duplicates"], 0);
  const Journal merged = read_journal(dir + "/m.jsonl");
  EXPECT_EQ(merged.header.shard_count, 1);
  EXPECT_TRUE(merged.duplicates.empty());
  EXPECT_EQ(deltas(merged), deltas(one)) << "same units, bit-equal ΔKLD";
  ASSERT_EQ(merged.baselines.size(), 1u);

  // A shard missing entirely, and a journal of another sweep.
  r = test::run_command(fmt::format("{} measure merge {}/s0.jsonl --out {}/m0.jsonl 2>&1", test::cli_path(), dir, dir));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("missing shard 1/2"), std::string::npos) << r.output;
  auto lines = read_file(dir + "/s0.jsonl");
  auto header = nlohmann::json::parse(lines.substr(0, lines.find('\n')));
  header["settings"]["ctx"] = 256;
  write_file_atomic(dir + "/other.jsonl", header.dump() + lines.substr(lines.find('\n')));
  r = test::run_command(fmt::format("{} measure merge {}/other.jsonl {}/s1.jsonl --out {}/m1.jsonl 2>&1",
                                    test::cli_path(), dir, dir, dir));
  EXPECT_EQ(r.exit_code, 8) << r.output;
  EXPECT_NE(r.output.find("setting ctx is 256 vs 128"), std::string::npos) << r.output;

  // allocate takes the shards directly: the plan equals the one from the merged journal.
  constexpr const char* alloc = "{} allocate --source {} --budget Q4_K_M --measurements {} --out {} 2>&1";
  r = test::run_command(fmt::format(fmt::runtime(alloc), test::cli_path(), test::model("cb-dense-12l-F16.gguf"),
                                    dir + "/s0.jsonl " + dir + "/s1.jsonl", dir + "/p2.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_command(fmt::format(fmt::runtime(alloc), test::cli_path(), test::model("cb-dense-12l-F16.gguf"), dir + "/m.jsonl",
                                    dir + "/p1.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/p2.json"))["types"],
            nlohmann::json::parse(read_file(dir + "/p1.json"))["types"]);
}

TEST(MeasureShards, SharedReferenceMadeForOtherSettingsIsRefused) {
  const std::string dir = test::temp_dir("measure_shards_ref");
  auto r = test::run_command(sweep(dir + "/ref.jsonl", "--reference-only --top-k 16"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_command(sweep(dir + "/s0.jsonl", "--shard 0/2 --shared-reference " + dir + "/ref.jsonl"));
  EXPECT_EQ(r.exit_code, 8) << r.output;
  EXPECT_NE(r.output.find("--shared-reference"), std::string::npos) << r.output;
  // Refused before anything was recorded: no journal, no base mix left behind.
  EXPECT_FALSE(std::filesystem::exists(dir + "/s0.jsonl"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/s0.jsonl.base.gguf"));
  r = test::run_command(sweep(dir + "/s1.jsonl", "--shard 1/2 --shared-reference " + dir + "/nothing.jsonl"));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("reference-only"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/s1.jsonl"));
  r = test::run_command(sweep(dir + "/s2.jsonl", "--shard 2/2"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

}  // namespace
}  // namespace cb
