// The reference store: a reference (full-precision) model's next-token
// distributions on the scored tokens of an evaluation, kept as the top-K
// log-probs plus the log of the remaining (tail) mass per token, so memory and
// disk are bounded: 8*K + 8 bytes per scored token (K=32: 264 B/token).
// KLD against it is computed over the K ids plus one tail bucket, a lower
// bound of the full-vocab KLD (gap measured in docs/evaluator.md).
//
// A store is keyed by what produced it; using it with anything else is a
// MismatchError naming the field that differs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cb::eval {

struct ReferenceKey {
  std::string model_sha256;  // of the reference model file
  std::string text_sha256;   // of the evaluated text's bytes
  int ctx = 0;               // tokens per chunk
  int n_chunks = 0;          // chunks stored (0, 1, ... n_chunks-1)
  int top_k = 0;
  int first_scored = 0;      // first scored position in a chunk (llama-perplexity: ctx/2)
  bool operator==(const ReferenceKey&) const = default;
};

// Throws MismatchError describing the first differing field.
void check_same_key(const ReferenceKey& expected, const ReferenceKey& actual,
                    const std::string& what);

class ReferenceStore {
 public:
  ReferenceStore() = default;
  ReferenceStore(ReferenceKey key, int n_vocab, int scored_per_chunk);

  const ReferenceKey& key() const { return key_; }
  int n_vocab() const { return n_vocab_; }
  int top_k() const { return key_.top_k; }
  int scored_per_chunk() const { return scored_per_chunk_; }
  // Chunks [0, n_filled) hold data. A store is filled lazily by a sweep that
  // stops early (only the chunks some unit reached are ever computed);
  // a store built in one go is full (n_filled == key().n_chunks).
  int n_filled() const { return n_filled_; }
  void set_filled(int n_chunks);
  int64_t n_tokens() const { return static_cast<int64_t>(target_log_prob_.size()); }
  static int64_t bytes_per_token(int top_k) { return 8 * static_cast<int64_t>(top_k) + 8; }

  // Token t = chunk * scored_per_chunk + i.
  int64_t index(int chunk, int i) const {
    return static_cast<int64_t>(chunk) * scored_per_chunk_ + i;
  }
  const int32_t* ids(int64_t t) const { return ids_.data() + t * key_.top_k; }
  const float* log_probs(int64_t t) const { return log_probs_.data() + t * key_.top_k; }
  float tail_log_mass(int64_t t) const { return tail_log_mass_[t]; }
  float target_log_prob(int64_t t) const { return target_log_prob_[t]; }
  int32_t* mutable_ids(int64_t t) { return ids_.data() + t * key_.top_k; }
  float* mutable_log_probs(int64_t t) { return log_probs_.data() + t * key_.top_k; }
  float& mutable_tail(int64_t t) { return tail_log_mass_[t]; }
  float& mutable_target(int64_t t) { return target_log_prob_[t]; }

  // Writes atomically (IoError); reads with validation (InputError) and, when
  // `expected` is given, refuses a store made for something else (MismatchError).
  void save(const std::string& path) const;
  static ReferenceStore load(const std::string& path);
  static ReferenceStore load(const std::string& path, const ReferenceKey& expected);
  nlohmann::json header_json() const;

 private:
  ReferenceKey key_;
  int n_vocab_ = 0;
  int scored_per_chunk_ = 0;
  int n_filled_ = 0;
  std::vector<int32_t> ids_;
  std::vector<float> log_probs_;
  std::vector<float> tail_log_mass_;
  std::vector<float> target_log_prob_;
};

}  // namespace cb::eval
