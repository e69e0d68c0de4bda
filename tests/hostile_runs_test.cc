// Issue 15 findings on runs: concurrent writers, torn and damaged files,
// interrupted builds. Each test failed before its fix.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "cerebellum/common/io.h"
#include "cerebellum/measure/journal.h"
#include "test_paths.h"

namespace cb {
namespace {

namespace fs = std::filesystem;

std::string sweep_cmd(const std::string& out, const std::string& extra = "") {
  return test::cli_path() + " measure --source " + test::model("cb-dense-12l-F16.gguf") +
         " --base Q4_K_M --text " + test::data("docs-en-calib.txt") +
         " --domain en --plan tensors --targets q2_K --ctx 128 --min-chunks 2 --max-chunks 3"
         " --threads 1 --limit 4 --out " + out + " " + extra;
}

pid_t spawn(const std::string& cmd) {
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd + " >/dev/null 2>&1").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

bool wait_for(const std::function<bool()>& cond, int timeout_ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

std::string slurp(const std::string& path) { return read_file(path); }

void spit(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// Two measure runs on one journal both exited 0 and wrote every unit twice.
TEST(HostileRuns, SecondWriterOfAJournalIsRefusedNamingThePid) {
  const std::string dir = test::temp_dir("hostile_lock");
  const std::string j = dir + "/m.jsonl";
  const pid_t first = spawn(sweep_cmd(j));
  ASSERT_TRUE(wait_for([&] { return fs::exists(j + ".lock"); }, 60000));
  const auto second = test::run_command(sweep_cmd(j, "--resume"));
  int status = 0;
  waitpid(first, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(second.exit_code, 2) << second.output;
  EXPECT_NE(second.output.find("in use by another run (pid " + std::to_string(first)), std::string::npos)
      << second.output;
  const Journal got = read_journal(j);
  EXPECT_EQ(got.measurements.size(), 4u);
  EXPECT_TRUE(got.duplicates.empty());
  EXPECT_FALSE(fs::exists(j + ".lock"));
}

// A crash mid-way through the final baseline line: resume cut it and exited 0
// without writing it again.
TEST(HostileRuns, TornFinalBaselineIsRewrittenOnResume) {
  const std::string dir = test::temp_dir("hostile_torn");
  const std::string j = dir + "/m.jsonl";
  ASSERT_EQ(test::run_command(sweep_cmd(j)).exit_code, 0);
  const Journal clean = read_journal(j);
  ASSERT_EQ(clean.baselines.size(), 1u);
  std::string text = slurp(j);
  const size_t last = text.rfind('\n', text.size() - 2) + 1;
  ASSERT_NE(text.find("\"baseline\"", last), std::string::npos) << "the last line is the baseline";
  spit(j, text.substr(0, last + (text.size() - last) / 2));  // torn halfway, no newline
  const auto r = test::run_command(sweep_cmd(j, "--resume"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("torn"), std::string::npos) << r.output;
  const Journal got = read_journal(j);
  EXPECT_FALSE(got.torn_tail);
  ASSERT_EQ(got.baselines.size(), 1u);
  EXPECT_EQ(got.baselines[0].metrics.n_chunks, clean.baselines[0].metrics.n_chunks);
  EXPECT_DOUBLE_EQ(got.baselines[0].metrics.kld_mean, clean.baselines[0].metrics.kld_mean);
  EXPECT_EQ(got.measurements.size(), clean.measurements.size());
}

// 4 changed bytes in the reference store became "delta_kld": null in the
// journal; a truncated store was fatal. Both are caches: rebuilt, same values.
TEST(HostileRuns, DamagedOrTruncatedReferenceStoreIsRebuilt) {
  const std::string dir = test::temp_dir("hostile_ref");
  const std::string j = dir + "/m.jsonl";
  ASSERT_EQ(test::run_command(sweep_cmd(j)).exit_code, 0);
  const Journal clean = read_journal(j);
  const std::string full = slurp(j);
  std::string ref;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".ref") ref = e.path().string();
  }
  ASSERT_FALSE(ref.empty());
  const std::string store = slurp(ref);
  // Keep the header and the first measurement: the resume re-measures 3 units.
  const size_t cut = full.find('\n', full.find('\n') + 1) + 1;
  for (int damage = 0; damage < 2; ++damage) {
    std::string bad = store;
    if (damage == 0) {
      for (size_t i = 0; i < 4; ++i) bad[bad.size() / 2 + i] ^= 0x5A;
    } else {
      bad.resize(bad.size() / 2);
    }
    spit(ref, bad);
    spit(j, full.substr(0, cut));
    const auto r = test::run_command(sweep_cmd(j, "--resume"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("damaged"), std::string::npos) << r.output;
    const std::string again = slurp(j);
    EXPECT_EQ(again.find("null"), std::string::npos);
    const Journal got = read_journal(j);
    ASSERT_EQ(got.measurements.size(), clean.measurements.size());
    for (size_t i = 0; i < got.measurements.size(); ++i) {
      EXPECT_DOUBLE_EQ(got.measurements[i].delta_kld, clean.measurements[i].delta_kld) << i;
    }
  }
}

// kill, Ctrl-C and a closed terminal left OUT.tmp.<pid> (GBs on a big model).
TEST(HostileRuns, InterruptedBuildLeavesNoTemporaryAndStaleOnesAreRemoved) {
  const std::string dir = test::temp_dir("hostile_tmp");
  const std::string out = dir + "/out.gguf";
  const std::string build = test::cli_path() + " build --source " + test::model("cb-dense-12l-F16.gguf") +
                            " --base Q4_K_M --threads 1 --out " + out;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    const pid_t pid = spawn(build);
    const std::string tmp = out + ".tmp." + std::to_string(pid);
    ASSERT_TRUE(wait_for([&] { return fs::exists(tmp); }, 60000)) << "no temporary seen";
    kill(pid, sig);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << "signal " << sig;
    EXPECT_FALSE(fs::exists(tmp)) << "signal " << sig;
    EXPECT_FALSE(fs::exists(out)) << "signal " << sig;
  }
  // kill -9 cannot be caught: the next run to that path removes what it left.
  const std::string stale = out + ".tmp.999999999";
  spit(stale, std::string(4096, 'x'));
  const auto r = test::run_command(build);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_NE(r.output.find("removed " + stale + " (4096 bytes)"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace cb
