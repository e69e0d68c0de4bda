// The sweep's scoring kernel alone (eval::detail::row_stats: max, first
// argmax, log-sum-exp of one row of logits), timed on this host's CPUs: one
// row hot in cache on one thread, then a chunk's scored rows (448 at ctx 512)
// of fresh logits on 1..N threads through cb::parallel_for, as the evaluator
// scores them. Says whether scoring a chunk on a GPU host takes less than the
// GPU's decode of the next one (docs/measure.md, "Two lanes").
//   bash bench/row_stats.sh [VOCAB=128256] [ROWS=448]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "common/parallel.h"
#include "eval/logits.h"

int main(int argc, char** argv) {
  const int n_vocab = argc > 1 ? std::atoi(argv[1]) : 128256;
  const int n_rows = argc > 2 ? std::atoi(argv[2]) : 448;
  if (n_vocab < 1 || n_vocab > (1 << 24) || n_rows < 1 || n_rows > 65536) {
    std::fprintf(stderr, "row_stats: VOCAB must be 1..16777216 and ROWS 1..65536 (got '%s', '%s')\n",
                 argc > 1 ? argv[1] : "", argc > 2 ? argv[2] : "");
    return 2;
  }
  std::vector<float> logits(static_cast<size_t>(n_vocab) * n_rows);
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0, 3);
  for (float& v : logits) v = d(rng);
  const auto seconds = [](auto t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  double sink = 0;
  auto t0 = std::chrono::steady_clock::now();
  const int reps = 200;
  for (int r = 0; r < reps; ++r) sink += cb::eval::detail::row_stats(logits.data(), n_vocab).log_sum_exp;
  std::printf("one row, hot, 1 thread: %.1f us (vocab %d)\n", seconds(t0) / reps * 1e6, n_vocab);
  const int n_cpu = static_cast<int>(std::thread::hardware_concurrency());
  std::vector<double> out(n_rows);
  for (int threads = 1; threads <= n_cpu; threads *= 2) {
    double best = 1e9;
    for (int rep = 0; rep < 3; ++rep) {
      for (size_t i = 0; i < logits.size(); i += 1024) logits[i] += 1e-3f;  // written again, as a decode would
      t0 = std::chrono::steady_clock::now();
      cb::parallel_for(n_rows, threads, [&](int64_t j) {
        out[j] = cb::eval::detail::row_stats(logits.data() + j * static_cast<size_t>(n_vocab), n_vocab).log_sum_exp;
      });
      best = std::min(best, seconds(t0));
    }
    for (double v : out) sink += v;
    std::printf("%d rows, %2d threads: %7.2f ms (%.1f us a row per thread)\n", n_rows, threads, best * 1e3,
                best * 1e6 * threads / n_rows);
  }
  return sink == 0.123 ? 1 : 0;  // keeps the work
}
