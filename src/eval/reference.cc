#include "cerebellum/eval/reference.h"
#include "cerebellum/common/schemas.h"

#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "common/sha256.h"

namespace cb::eval {
namespace {

constexpr char kMagic[8] = {'C', 'B', 'R', 'E', 'F', 'S', 'T', '1'};

template <typename T>
void write_vec(AtomicOutputFile& f, const std::vector<T>& v) {
  f.write(v.data(), v.size() * sizeof(T));
}

template <typename T>
void read_vec(std::ifstream& in, std::vector<T>& v, const std::string& path) {
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
  if (!in) throw InputError(fmt::format("{}: truncated reference store", path));
}

// The payload's checksum: a cache bit-flipped on disk is rebuilt, never read
// into measurements (issue 15: 4 changed bytes became "delta_kld": null).
template <typename... V>
std::string payload_sha256(const V&... v) {
  Sha256 h;
  (h.update(v.data(), v.size() * sizeof(v[0])), ...);
  return h.hex();
}

}  // namespace

void check_same_key(const ReferenceKey& expected, const ReferenceKey& actual,
                    const std::string& what) {
  auto fail = [&](const char* field, const std::string& want, const std::string& got) {
    throw MismatchError(fmt::format("{}: reference store was made for another {} ({} != {})",
                                    what, field, got, want));
  };
  if (expected.model_sha256 != actual.model_sha256)
    fail("model (sha256)", expected.model_sha256, actual.model_sha256);
  if (expected.text_sha256 != actual.text_sha256)
    fail("text (sha256)", expected.text_sha256, actual.text_sha256);
  if (expected.ctx != actual.ctx)
    fail("context size", std::to_string(expected.ctx), std::to_string(actual.ctx));
  if (expected.n_chunks != actual.n_chunks)
    fail("chunk count", std::to_string(expected.n_chunks), std::to_string(actual.n_chunks));
  if (expected.top_k != actual.top_k)
    fail("top-K", std::to_string(expected.top_k), std::to_string(actual.top_k));
  if (expected.first_scored != actual.first_scored)
    fail("first scored position", std::to_string(expected.first_scored),
         std::to_string(actual.first_scored));
}

void ReferenceStore::set_filled(int n_chunks) {
  if (n_chunks < 0 || n_chunks > key_.n_chunks) {
    throw UsageError(fmt::format("reference store: {} filled chunks out of range (0..{})", n_chunks,
                                 key_.n_chunks));
  }
  n_filled_ = n_chunks;
}

ReferenceStore::ReferenceStore(ReferenceKey key, int n_vocab, int scored_per_chunk)
    : key_(std::move(key)), n_vocab_(n_vocab), scored_per_chunk_(scored_per_chunk) {
  const int64_t n = static_cast<int64_t>(key_.n_chunks) * scored_per_chunk_;
  ids_.resize(n * key_.top_k);
  log_probs_.resize(n * key_.top_k);
  tail_log_mass_.resize(n);
  target_log_prob_.resize(n);
}

nlohmann::json ReferenceStore::header_json() const {
  return {{"schema", kReferenceSchema},       {"model_sha256", key_.model_sha256},
          {"text_sha256", key_.text_sha256}, {"ctx", key_.ctx},
          {"n_chunks", key_.n_chunks}, {"top_k", key_.top_k},
          {"n_vocab", n_vocab_},     {"scored_per_chunk", scored_per_chunk_},
          {"first_scored", key_.first_scored}, {"n_filled", n_filled_},
          {"payload_sha256", payload_sha256(ids_, log_probs_, tail_log_mass_, target_log_prob_)}};
}

void ReferenceStore::save(const std::string& path) const {
  AtomicOutputFile f(path);
  const std::string header = header_json().dump();
  const uint32_t header_len = static_cast<uint32_t>(header.size());
  f.write(kMagic, sizeof(kMagic));
  f.write(&header_len, sizeof(header_len));
  f.write(header);
  write_vec(f, ids_);
  write_vec(f, log_probs_);
  write_vec(f, tail_log_mass_);
  write_vec(f, target_log_prob_);
  f.commit();
}

ReferenceStore ReferenceStore::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open reference store", path));
  char magic[8] = {};
  uint32_t header_len = 0;
  in.read(magic, 8);
  in.read(reinterpret_cast<char*>(&header_len), 4);
  if (!in || std::memcmp(magic, kMagic, 8) != 0 || header_len > (1u << 20)) {
    throw InputError(fmt::format("{}: not a cerebellum reference store", path));
  }
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(header);
    if (h.at("schema") != kReferenceSchema) throw InputError("schema");
    // Stores written before lazy filling and the scoring offset existed are
    // full and use llama-perplexity's layout.
    const int ctx = h.at("ctx");
    ReferenceKey key{h.at("model_sha256"), h.at("text_sha256"), ctx, h.at("n_chunks"),
                     h.at("top_k"), h.value("first_scored", ctx / 2)};
    ReferenceStore s(key, h.at("n_vocab"), h.at("scored_per_chunk"));
    s.set_filled(h.value("n_filled", key.n_chunks));
    read_vec(in, s.ids_, path);
    read_vec(in, s.log_probs_, path);
    read_vec(in, s.tail_log_mass_, path);
    read_vec(in, s.target_log_prob_, path);
    if (in.peek() != std::char_traits<char>::eof()) {
      throw InputError(fmt::format("{}: reference store is longer than its header says", path));
    }
    // Stores written before the checksum existed have none.
    if (h.contains("payload_sha256") &&
        h["payload_sha256"] != payload_sha256(s.ids_, s.log_probs_, s.tail_log_mass_, s.target_log_prob_)) {
      throw InputError(fmt::format("{}: reference store fails its checksum (damaged on disk)", path));
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: bad reference store header: {}", path, e.what()));
  }
}

ReferenceStore ReferenceStore::load(const std::string& path, const ReferenceKey& expected) {
  ReferenceStore s = load(path);
  check_same_key(expected, s.key(), path);
  return s;
}

}  // namespace cb::eval
