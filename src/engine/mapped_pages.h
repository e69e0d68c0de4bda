// Internal to the library (src/engine/).
//
// A model file's weights on the CPU are read in place from llama.cpp's mmap
// of the file, so after one decode every page of the file is mapped into the
// process and counted in its RSS: a 16 GB F16 reference pass holds 16 GB,
// where stock `llama-perplexity` on the Q4_K_M file holds 4.6 GB. The pages
// are clean and the page cache keeps them, so they can be unmapped as soon
// as a layer is done and mapped again by the next micro-batch (measured:
// 12 ms to map 1.77 GB again from the page cache, against seconds for the
// CPU to compute with it). PageReleaser does that, from llama.cpp's eval
// callback: it asks for the last node of each layer (`l_out-N`, and the
// logits `result_output`) that read weights from the file's mapping, so the
// scheduler computes up to there, and then unmaps (MADV_DONTNEED) the pages
// of those weights, only where they lie in the mapping. Layers on a GPU
// read none and are not cut apart.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

struct ggml_tensor;

namespace cb::engine {

// [begin, end) of this process's address space.
using AddressRange = std::pair<uintptr_t, uintptr_t>;

// Where `path` is mapped into this process (by device and inode, from
// /proc/self/maps); empty if it is not, or off Linux.
std::vector<AddressRange> mapped_ranges_of(const std::string& path);

// Bytes of `ranges` mapped into this process right now (Rss of
// /proc/self/smaps for the mappings that overlap them); -1 off Linux.
int64_t resident_bytes_of(const std::vector<AddressRange>& ranges);

// Gives back (MADV_DONTNEED) the pages of `ranges`, which must be read-only
// file mappings; returns the bytes given back.
int64_t release_pages(const std::vector<AddressRange>& ranges);

using EvalCallbackFn = bool (*)(ggml_tensor* t, bool ask, void* user_data);

class PageReleaser {
 public:
  // `file_ranges`: the model's (LlamaModel::released_ranges, read each time:
  // a view adds to them). `chained` (may be null) is the caller's own
  // callback: asked and told exactly as if it were the only one.
  PageReleaser(const std::vector<AddressRange>* file_ranges, EvalCallbackFn chained, void* chained_user_data);

  // The callback to give llama.cpp, with `this` as user data.
  static bool callback(ggml_tensor* t, bool ask, void* user_data);

  int64_t released_bytes() const { return released_bytes_; }

 private:
  bool on_eval(ggml_tensor* t, bool ask);
  void note_weights(const ggml_tensor* t);
  void release_pending();

  const std::vector<AddressRange>* file_ranges_;
  EvalCallbackFn chained_;
  void* chained_user_data_;
  bool chained_asked_ = false;  // the chained callback wanted the node asked last
  std::vector<AddressRange> pending_;  // weights read since the last release
  int64_t released_bytes_ = 0;
};

}  // namespace cb::engine
