#include "common/parallel.h"

#include <gtest/gtest.h>

#include <sched.h>

#include <atomic>
#include <thread>
#include <vector>

namespace cb {
namespace {

// A run confined to some CPUs (a Slurm task's cpuset, `taskset`) starts as
// many threads by default as it may use, not one per core of the machine.
TEST(Parallel, DefaultThreadsAreTheCpusThisThreadMayRunOn) {
  cpu_set_t mine;
  ASSERT_EQ(sched_getaffinity(0, sizeof(mine), &mine), 0);
  EXPECT_EQ(thread_count(0), CPU_COUNT(&mine));
  EXPECT_EQ(thread_count(3), 3);  // asked for: as asked
  int first = 0;
  while (!CPU_ISSET(first, &mine)) ++first;
  int confined = -1;
  std::thread([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    if (sched_setaffinity(0, sizeof(one), &one) == 0) confined = thread_count(0);
  }).join();
  EXPECT_EQ(confined, 1);
}

TEST(Parallel, EveryIndexExactlyOnceOnAnyThreadCount) {
  for (const int threads : {1, 2, 7, 64}) {
    std::vector<std::atomic<int>> hits(1000);
    parallel_for(1000, threads, [&](int64_t i) { hits[static_cast<size_t>(i)]++; });
    for (const auto& h : hits) ASSERT_EQ(h.load(), 1) << threads;
  }
  parallel_for(0, 4, [](int64_t) { FAIL(); });
}

}  // namespace
}  // namespace cb
