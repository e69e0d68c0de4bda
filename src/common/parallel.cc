#include "common/parallel.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace cb {

int thread_count(int requested) {
  if (requested > 0) return requested;
  // The CPUs this thread may run on, not the machine's: a Slurm task, a
  // `taskset` or `numactl` run gets its share, not one thread per core of the
  // whole node (which would oversubscribe its cores several times over).
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void run_workers(int n_threads, const std::function<void()>& worker) {
  std::vector<std::thread> pool;
  for (int i = 1; i < n_threads; ++i) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

void parallel_for(int64_t n, int n_threads, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  std::atomic<int64_t> next{0};
  run_workers(static_cast<int>(std::clamp<int64_t>(n_threads, 1, n)), [&] {
    for (int64_t i = next++; i < n; i = next++) fn(i);
  });
}

}  // namespace cb
