// Helpers shared by the build/recipe/imatrix integration tests.
#pragma once

#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "test_paths.h"

namespace cb::test {

// An imatrix of cb-dense-12l made once per test process by stock llama-imatrix
// (8 chunks of 512 tokens), in `format` ("gguf" or "dat"). Empty on failure.
inline std::string dense_imatrix(const std::string& format = "gguf") {
  static std::string paths[2];
  std::string& path = paths[format == "dat" ? 1 : 0];
  if (!path.empty()) return path;
  const std::string dir = temp_dir("imatrix-" + format);
  const std::string out = dir + "/dense." + format;
  const auto r = run_command(fmt::format(
      "{} -m {} -f {} --chunks 8 -c 512 -nr -t 2 --output-format {} -o {}", stock_tool("llama-imatrix"),
      model("cb-dense-12l-F16.gguf"), data("docs-en-calib.txt"), format, out));
  if (r.exit_code != 0 || !std::filesystem::exists(out)) {
    ADD_FAILURE() << "llama-imatrix failed:\n" << r.output;
    return "";
  }
  path = out;
  return path;
}

inline std::string shell_quote(const std::string& s) { return "'" + s + "'"; }

}  // namespace cb::test
