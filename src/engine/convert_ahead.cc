#include "engine/convert_ahead.h"

#include <algorithm>
#include <chrono>

namespace cb::engine {

ConvertAhead::~ConvertAhead() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

bool ConvertAhead::plan(std::vector<Job> next, int64_t max_bytes) {
  std::unique_lock<std::mutex> lk(mu_);
  wanted_.clear();
  for (const Job& j : next) wanted_.insert(key(j.name, j.type_name));
  for (auto it = ready_.begin(); it != ready_.end();) {
    it = wanted_.count(it->first) ? std::next(it) : ready_.erase(it);
  }
  queue_.clear();
  int64_t held = busy_ ? static_cast<int64_t>(busy_->bytes) : 0;
  for (const auto& [k, d] : ready_) held += static_cast<int64_t>(d.bytes.size());
  bool any = !ready_.empty() || (busy_ && wanted_.count(key(busy_->name, busy_->type_name)));
  for (Job& j : next) {
    const std::string k = key(j.name, j.type_name);
    if (ready_.count(k) || (busy_ && key(busy_->name, busy_->type_name) == k)) continue;
    if (held + static_cast<int64_t>(j.bytes) > max_bytes) break;  // in order: nothing skips ahead
    held += static_cast<int64_t>(j.bytes);
    queue_.push_back(std::move(j));
    any = true;
  }
  if (!queue_.empty() && !worker_.joinable()) worker_ = std::thread([this] { run(); });
  lk.unlock();
  cv_.notify_all();
  return any;
}

bool ConvertAhead::pending(const std::string& k) const {
  if (busy_ && key(busy_->name, busy_->type_name) == k) return true;
  return std::any_of(queue_.begin(), queue_.end(), [&](const Job& j) { return key(j.name, j.type_name) == k; });
}

std::optional<std::vector<uint8_t>> ConvertAhead::take(const std::string& name, const std::string& type_name,
                                                       const std::vector<float>& imatrix) {
  const std::string k = key(name, type_name);
  std::unique_lock<std::mutex> lk(mu_);
  // Jobs queued before this one are this unit's other tensors: waited for too.
  cv_.wait(lk, [&] { return ready_.count(k) || !pending(k); });
  auto it = ready_.find(k);
  if (it == ready_.end()) return std::nullopt;
  std::optional<std::vector<uint8_t>> out;
  if (it->second.imatrix == imatrix) out = std::move(it->second.bytes);
  ready_.erase(it);
  wanted_.erase(k);
  return out;
}

void ConvertAhead::clear() {
  std::unique_lock<std::mutex> lk(mu_);
  queue_.clear();
  wanted_.clear();
  cv_.wait(lk, [&] { return !busy_; });
  ready_.clear();
}

double ConvertAhead::busy_s() const {
  std::lock_guard<std::mutex> lk(mu_);
  return busy_s_;
}

void ConvertAhead::run() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    busy_ = std::move(queue_.front());
    queue_.pop_front();
    lk.unlock();
    Done d{busy_->imatrix, {}};
    bool ok = true;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      d.bytes.reserve(busy_->bytes);  // never regrown: the held bytes stay what was counted
      convert_(*busy_, [&](const void* data, size_t n) {
        d.bytes.insert(d.bytes.end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + n);
      });
    } catch (const std::exception&) {
      ok = false;  // converted again at swap time, which reports the error
    }
    lk.lock();
    busy_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::string k = key(busy_->name, busy_->type_name);
    if (ok && wanted_.count(k)) ready_[k] = std::move(d);
    busy_.reset();
    cv_.notify_all();
  }
}

}  // namespace cb::engine
