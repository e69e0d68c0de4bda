// Shared by the libFuzzer targets (docs/errors.md, bench/fuzz.sh): a parser
// may reject any input with a cb::Error (a clear message and exit code); any
// other exception, a crash, a hang or a sanitizer report is a finding.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cerebellum/common/error.h"

namespace cb::fuzz {

inline std::string text(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// Readers that take a path get the input as a file (one per process,
// rewritten for each input, removed when the process exits).
inline std::string as_file(const uint8_t* data, size_t size, const char* suffix) {
  struct ScratchFile {
    std::string path;
    ~ScratchFile() { std::remove(path.c_str()); }
  };
  static const ScratchFile file{[&] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir ? dir : "/tmp") + "/cb-fuzz-" + std::to_string(getpid()) + suffix;
  }()};
  FILE* f = std::fopen(file.path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return file.path;
}

template <typename Fn>
void expect_clean(Fn&& fn) {
  try {
    fn();
  } catch (const cb::Error&) {  // the documented outcome for bad input
  }
}

}  // namespace cb::fuzz
