// Issue 16: `mpirun -np 2 cerebellum measure` (dynamic scheduling, rank 0
// coordinating) gives the single-process sweep: same units, bit-equal ΔKLD
// (same reference store, deterministic CPU path), every unit once. A rank
// killed mid-sweep takes the job down; --resume then finishes it with no
// record lost or duplicated. Without MPI in the build, a multi-rank launch is
// refused instead of running N copies of the whole sweep on one journal.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "cerebellum/common/io.h"
#include "cerebellum/measure/journal.h"
#include "test_paths.h"

namespace cb {
namespace {

namespace fs = std::filesystem;

std::string sweep_args(const std::string& out, const std::string& tensors) {
  return fmt::format("measure --source {} --base Q4_K_M --text {} --domain en --plan tensors --targets q2_K "
                     "--promote q6_K --tensors \"{}\" --ctx 128 --min-chunks 2 --max-chunks 3 --threads 1 --out {}",
                     test::model("cb-dense-12l-F16.gguf"), test::data("docs-en-calib.txt"), tensors, out);
}

#ifdef CB_HAVE_MPI

const char* kMpirun = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -np 2 ";

std::map<std::string, double> deltas(const Journal& j) {
  std::map<std::string, double> out;
  for (const auto& m : j.measurements) out[measurement_key(m.domain, m.direction, m.unit.id, m.types)] = m.delta_kld;
  return out;
}

int measurement_lines(const std::string& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().string().find(".rank") == std::string::npos) continue;
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line)) n += line.find("\"kind\":\"measurement\"") != std::string::npos;
  }
  return n;
}

// The single-process sweep on the MPI run's reference stores.
Journal single_sweep(const std::string& dir, const std::string& mpi_journal, const std::string& tensors) {
  const auto r = test::run_command(fmt::format("{} {} --shared-reference {}", test::cli_path(),
                                               sweep_args(dir + "/one.jsonl", tensors), mpi_journal));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return read_journal(dir + "/one.jsonl");
}

TEST(MeasureMpi, TwoRanksGiveTheSingleProcessSweep) {
  const std::string dir = test::temp_dir("measure_mpi");
  const std::string j = dir + "/j.jsonl", tensors = "blk\\.0\\.";
  auto r = test::run_command(kMpirun + test::cli_path() + " " + sweep_args(j, tensors));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("2 journals merged"), std::string::npos) << r.output;
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_EQ(e.path().string().find(".rank"), std::string::npos) << "left behind: " << e.path();
  }
  const Journal merged = read_journal(j);
  EXPECT_TRUE(merged.duplicates.empty());
  EXPECT_EQ(deltas(merged), deltas(single_sweep(dir, j, tensors)));
  // A journal there already: --resume or nothing.
  r = test::run_command(kMpirun + test::cli_path() + " " + sweep_args(j, tensors));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("pass --resume"), std::string::npos) << r.output;
}

TEST(MeasureMpi, AKilledRankLosesOnlyItsUnitInFlightAndResumeFinishes) {
  const std::string dir = test::temp_dir("measure_mpi_kill");
  const std::string j = dir + "/j.jsonl", tensors = "blk\\.[01]\\.";
  const std::string cmd = kMpirun + test::cli_path() + " " + sweep_args(j, tensors);
  test::CommandResult first;
  std::thread run([&] { first = test::run_command(cmd); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (measurement_lines(dir) < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // A rank (the newest of the two): its command line starts with the CLI's
  // path, unlike mpirun's and the shells'.
  test::run_command(fmt::format("pkill -9 -n -f '^{} measure .*measure_mpi_kill'", test::cli_path()));
  run.join();
  ASSERT_NE(first.exit_code, 0) << "the job should have died: " << first.output;
  const int kept = measurement_lines(dir);
  EXPECT_GE(kept, 3);
  const auto r = test::run_command(cmd + " --resume");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Journal merged = read_journal(j);
  EXPECT_TRUE(merged.duplicates.empty());
  EXPECT_EQ(deltas(merged), deltas(single_sweep(dir, j, tensors))) << "no record lost or measured twice";
}

#else

TEST(MeasureMpi, AMultiRankLaunchWithoutMpiInTheBuildIsRefused) {
  const std::string dir = test::temp_dir("measure_mpi_none");
  const auto r = test::run_command("OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=1 " + test::cli_path() + " " +
                                   sweep_args(dir + "/j.jsonl", "blk\\.0\\."));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no MPI"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/j.jsonl"));
}

#endif

}  // namespace
}  // namespace cb
