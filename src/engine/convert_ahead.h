// Tensors converted ahead of their swaps, on one background thread, in the
// order they will be swapped in (internal to src/engine; eval_swap.cc).
//
// plan() says what comes next (several units' tensors, in order); the thread
// converts down that list while the caller evaluates, holding at most
// `max_bytes` (converted, in flight and queued). take() hands over a tensor's
// bytes, waiting for them if they are being (or about to be) converted, and
// gives nothing for a tensor not planned, or whose conversion failed: the
// caller then converts it itself, which reports the error where it belongs.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace cb::engine {

class ConvertAhead {
 public:
  struct Job {
    std::string name, type_name;
    std::vector<float> imatrix;  // empty = none
    size_t bytes = 0;            // the converted size
  };
  // Converts one job, handing its bytes to the sink in order.
  using ConvertFn = std::function<void(const Job&, const std::function<void(const void*, size_t)>& sink)>;

  explicit ConvertAhead(ConvertFn convert) : convert_(std::move(convert)) {}
  ~ConvertAhead();
  ConvertAhead(const ConvertAhead&) = delete;
  ConvertAhead& operator=(const ConvertAhead&) = delete;

  // The tensors that come next, in order: what is converted and still in the
  // list is kept, the rest dropped; the list is queued from its start while
  // the held bytes stay within `max_bytes`. False if nothing of it is held or
  // queued (e.g. its first tensor alone is over the cap).
  bool plan(std::vector<Job> next, int64_t max_bytes);
  // The converted bytes of `name` as `type_name` with `imatrix`, if planned.
  std::optional<std::vector<uint8_t>> take(const std::string& name, const std::string& type_name,
                                           const std::vector<float>& imatrix);
  void clear();  // drops everything; waits for a conversion in flight
  double busy_s() const;  // seconds spent converting so far

 private:
  static std::string key(const std::string& name, const std::string& type_name) { return name + '\n' + type_name; }
  bool pending(const std::string& k) const;
  void run();

  ConvertFn convert_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::optional<Job> busy_;          // being converted (the lock is not held meanwhile)
  std::set<std::string> wanted_;     // keys of the last plan
  struct Done {
    std::vector<float> imatrix;
    std::vector<uint8_t> bytes;
  };
  std::map<std::string, Done> ready_;
  bool stop_ = false;
  double busy_s_ = 0;
  std::thread worker_;  // started by the first plan
};

}  // namespace cb::engine
