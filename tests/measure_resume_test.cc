// kill -9 at random points during a CLI sweep, then --resume: no finished
// record lost or duplicated; results equal an uninterrupted run.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "cerebellum/measure/journal.h"
#include "test_paths.h"

namespace cb {
namespace {

std::string sweep_cmd(const std::string& out, bool resume) {
  return test::cli_path() + " measure --source " + test::model("cb-dense-12l-F16.gguf") +
         " --base Q4_K_M --text " + test::data("docs-en-calib.txt") +
         " --domain en --plan tensors --targets q2_K --ctx 128 --min-chunks 2 --max-chunks 3"
         " --threads 2 --limit 10 --out " + out + (resume ? " --resume" : "") +
         " >/dev/null 2>&1";
}

// Starts `cmd`, SIGKILLs it after `delay_ms` unless it finished; true if it finished.
bool run_and_kill(const std::string& cmd, int delay_ms) {
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return false;
}

TEST(MeasureResume, KillNineAtRandomPointsThenResume) {
  const std::string dir = test::temp_dir("measure_kill");
  const std::string clean = dir + "/clean.jsonl", killed = dir + "/killed.jsonl";
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(test::run_command(sweep_cmd(clean, false)).exit_code, 0);
  const int clean_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::steady_clock::now() - t0).count());
  const Journal ref = read_journal(clean);
  ASSERT_EQ(ref.measurements.size(), 10u);

  // Kill points scaled to this machine's speed: 5-35 % of an uninterrupted
  // run, so at least two kills land mid-sweep (each attempt does < 35 %).
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> delay_ms(std::max(50, clean_ms / 20), std::max(100, clean_ms * 35 / 100));
  int kills = 0;
  bool finished = run_and_kill(sweep_cmd(killed, false), delay_ms(rng));
  for (int attempt = 0; !finished && attempt < 12; ++attempt) {
    ++kills;
    // Every surviving record must parse (a torn tail is tolerated and cut).
    if (std::filesystem::exists(killed)) {
      const std::string text = test::run_command("cat " + killed).output;
      if (text.find('\n') != std::string::npos) ASSERT_NO_THROW(read_journal(killed));
    }
    finished = run_and_kill(sweep_cmd(killed, true), attempt < 8 ? delay_ms(rng) : 600000);
  }
  ASSERT_TRUE(finished);
  EXPECT_GE(kills, 2);
  const Journal got = read_journal(killed);
  EXPECT_EQ(got.baselines.size(), 1u);
  std::map<std::string, const JournalMeasurement*> by_id;
  for (const auto& m : got.measurements) {
    EXPECT_TRUE(by_id.emplace(m.unit.id, &m).second) << "duplicated " << m.unit.id;
  }
  ASSERT_EQ(by_id.size(), ref.measurements.size());
  for (const auto& m : ref.measurements) {
    ASSERT_TRUE(by_id.count(m.unit.id)) << "lost " << m.unit.id;
    const auto& g = *by_id.at(m.unit.id);
    const double tol = 3 * std::hypot(m.delta_kld_se, g.delta_kld_se) + 1e-6;
    EXPECT_NEAR(g.delta_kld, m.delta_kld, tol) << m.unit.id;
    EXPECT_EQ(g.types, m.types);
  }
}

}  // namespace
}  // namespace cb
