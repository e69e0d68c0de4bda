// Paired differences per block of a chunk (internal to src/measure).
#pragma once

#include <algorithm>
#include <vector>

namespace cb::measure {

// Per-block mean paired differences a - b of one chunk (blocks of consecutive
// scored tokens; the last block takes the remainder), appended to `out`.
template <typename T>
void push_block_diffs(const std::vector<T>& a, const std::vector<T>& b, int n_blocks,
                      std::vector<double>* out) {
  const size_t n = a.size();
  n_blocks = std::max(1, std::min<int>(n_blocks, static_cast<int>(n)));
  const size_t per = n / n_blocks;
  for (int k = 0; k < n_blocks; ++k) {
    const size_t lo = k * per, hi = k + 1 == n_blocks ? n : lo + per;
    double s = 0;
    for (size_t i = lo; i < hi; ++i) s += static_cast<double>(a[i]) - static_cast<double>(b[i]);
    out->push_back(hi > lo ? s / static_cast<double>(hi - lo) : 0.0);
  }
}

}  // namespace cb::measure
