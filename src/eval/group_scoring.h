// Internal to the library (src/eval/): scoring a decoded group's logits,
// on the caller's threads or on a thread of its own while the GPU decodes
// the next group (two lanes, Evaluator).
#pragma once

#include <atomic>
#include <chrono>
#include <exception>
#include <thread>
#include <utility>
#include <vector>

#include "cerebellum/eval/evaluator.h"
#include "engine/llama_model.h"

namespace cb::eval {

using engine::Token;

// One decoded group's rows, scored into its results on n_threads threads:
// log-softmax, NLL, argmax; against `ref` KLD and top-1 agreement; into
// `capture` the top-K distributions. Reads only the rows and the stores.
struct GroupScoring {
  std::vector<const float*> rows;  // sequence-major, n_scored per chunk
  ChunkResult* results = nullptr;  // the group's first chunk
  const Token* targets = nullptr;  // token first_scored + 1 of the group's first chunk
  int ctx = 0, n_scored = 0, n_vocab = 0, n_threads = 1;
  const ReferenceStore* ref = nullptr;
  ReferenceStore* capture = nullptr;
  std::atomic<int>* non_finite_chunk = nullptr;

  void run() const;
};

// The scoring of the group decoded last, on its own thread while the next
// group decodes on the other lane; wait() rethrows what it threw.
class BackgroundScoring {
 public:
  ~BackgroundScoring() {
    if (thread_.joinable()) thread_.join();
  }
  void start(GroupScoring job) {
    thread_ = std::thread([this, job = std::move(job)] {
      try {
        job.run();
      } catch (...) {
        error_ = std::current_exception();
      }
    });
  }
  // Seconds spent waiting.
  double wait() {
    if (!thread_.joinable()) return 0;
    const auto t0 = std::chrono::steady_clock::now();
    thread_.join();
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

 private:
  std::thread thread_;
  std::exception_ptr error_;
};

}  // namespace cb::eval
