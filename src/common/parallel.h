// The one way the library spreads work over threads.
#pragma once

#include <cstdint>
#include <functional>

namespace cb {

// `requested` when positive, else the number of CPUs the calling thread may
// run on (its affinity mask: a Slurm task's or `taskset`'s share), at least 1.
int thread_count(int requested);

// Runs `worker` on n_threads threads (the calling thread is one of them) and
// joins them; workers share the work through their own atomics.
void run_workers(int n_threads, const std::function<void()>& worker);

// fn(i) for every i in [0, n), indices handed out one at a time to up to
// n_threads threads (dynamic: uneven items balance).
void parallel_for(int64_t n, int n_threads, const std::function<void(int64_t)>& fn);

}  // namespace cb
