#include "engine/mapped_pages.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>

#if defined(__linux__)
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#endif

#include "ggml-backend.h"
#include "ggml.h"

namespace cb::engine {

namespace {

// A /proc/self/maps or smaps mapping line: "begin-end perms offset dev inode path".
struct MapsLine {
  uintptr_t begin = 0, end = 0;
  unsigned dev_major = 0, dev_minor = 0;
  unsigned long inode = 0;
  bool writable = false;
};

bool parse_maps_line(const std::string& line, MapsLine& m) {
  unsigned long long b = 0, e = 0, off = 0;
  char perms[8] = {};
  if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %lu", &b, &e, perms, &off, &m.dev_major,
                  &m.dev_minor, &m.inode) != 7) {
    return false;
  }
  m.writable = perms[1] == 'w';
  m.begin = static_cast<uintptr_t>(b);
  m.end = static_cast<uintptr_t>(e);
  return true;
}

bool overlaps(uintptr_t b, uintptr_t e, const std::vector<AddressRange>& ranges) {
  return std::any_of(ranges.begin(), ranges.end(), [&](const AddressRange& r) { return b < r.second && r.first < e; });
}

// A name llama.cpp's graph gives the last node of a layer (`l_out-N`) or of
// the whole graph (the logits).
bool ends_a_layer(const ggml_tensor* t) {
  return std::strncmp(t->name, "l_out-", 6) == 0 || std::strcmp(t->name, "result_output") == 0;
}

}  // namespace

std::vector<AddressRange> mapped_ranges_of(const std::string& path) {
  std::vector<AddressRange> out;
#if defined(__linux__)
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  MapsLine m;
  while (std::getline(maps, line)) {
    if (!parse_maps_line(line, m)) continue;
    // Read-only mappings only: their pages are the file's bytes, so
    // unmapping one loses nothing (a writable one may hold changes).
    if (!m.writable && m.inode == st.st_ino && m.dev_major == major(st.st_dev) && m.dev_minor == minor(st.st_dev)) {
      out.emplace_back(m.begin, m.end);
    }
  }
#else
  (void)path;
#endif
  return out;
}

int64_t resident_bytes_of(const std::vector<AddressRange>& ranges) {
#if defined(__linux__)
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  MapsLine m;
  bool counting = false;
  int64_t total = 0;
  while (std::getline(smaps, line)) {
    if (parse_maps_line(line, m)) {
      counting = overlaps(m.begin, m.end, ranges);
    } else if (counting && line.rfind("Rss:", 0) == 0) {
      long long kb = 0;
      if (std::sscanf(line.c_str() + 4, "%lld", &kb) == 1) total += kb * 1024;
    }
  }
  return total;
#else
  (void)ranges;
  return -1;
#endif
}

int64_t release_pages(const std::vector<AddressRange>& ranges) {
  int64_t bytes = 0;
#if defined(__linux__)
  for (const auto& [b, e] : ranges) {
    if (b < e && ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED) == 0) bytes += static_cast<int64_t>(e - b);
  }
#else
  (void)ranges;
#endif
  return bytes;
}

PageReleaser::PageReleaser(const std::vector<AddressRange>* file_ranges, EvalCallbackFn chained,
                           void* chained_user_data)
    : file_ranges_(file_ranges), chained_(chained), chained_user_data_(chained_user_data) {}

bool PageReleaser::callback(ggml_tensor* t, bool ask, void* user_data) {
  return static_cast<PageReleaser*>(user_data)->on_eval(t, ask);
}

bool PageReleaser::on_eval(ggml_tensor* t, bool ask) {
  if (ask) {
    note_weights(t);
    chained_asked_ = chained_ && chained_(t, true, chained_user_data_);
    // Only where weights from the file were read: a layer on a GPU is not
    // cut from the next (each cut waits for the device).
    return chained_asked_ || (ends_a_layer(t) && !pending_.empty());
  }
  // The scheduler has computed every node up to this one.
  if (ends_a_layer(t)) release_pending();
  return chained_asked_ ? chained_(t, false, chained_user_data_) : true;
}

void PageReleaser::note_weights(const ggml_tensor* t) {
  for (int i = 0; i < GGML_MAX_SRC; ++i) {
    const ggml_tensor* src = t->src[i];
    if (!src || !src->buffer || !src->data) continue;
    if (ggml_backend_buffer_get_usage(src->buffer) != GGML_BACKEND_BUFFER_USAGE_WEIGHTS) continue;
    if (!ggml_backend_buffer_is_host(src->buffer)) continue;
    const auto b = reinterpret_cast<uintptr_t>(src->data);
    const uintptr_t e = b + ggml_nbytes(src);
    // A weight several nodes read (an SSM's, a tied embedding) is given back once.
    const AddressRange r{b, e};
    if (overlaps(b, e, *file_ranges_) && std::find(pending_.begin(), pending_.end(), r) == pending_.end()) {
      pending_.push_back(r);
    }
  }
}

void PageReleaser::release_pending() {
#if defined(__linux__)
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  std::vector<AddressRange> pages;
  for (const auto& [b, e] : pending_) {
    // Whole pages, kept inside the file's mapping: a page shared with the
    // next weight is mapped again when that one is read (the same bytes).
    for (const auto& [rb, re] : *file_ranges_) {
      const uintptr_t lo = std::max(b & ~(page - 1), rb), hi = std::min((e + page - 1) & ~(page - 1), re);
      if (lo < hi) pages.emplace_back(lo, hi);
    }
  }
  released_bytes_ += release_pages(pages);
#endif
  pending_.clear();
}

}  // namespace cb::engine
