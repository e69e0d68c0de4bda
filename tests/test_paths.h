// Paths of the shared models/data and of the built tools, for integration tests.
#pragma once

#include <string>

namespace cb::test {

inline std::string shared(const std::string& rel) { return std::string(CB_SHARED_DIR) + "/" + rel; }
inline std::string model(const std::string& name) { return shared("models/" + name); }
inline std::string data(const std::string& rel) { return shared("data/" + rel); }
inline std::string stock_tool(const std::string& name) {
  return std::string(CB_LLAMA_BIN_DIR) + "/" + name;
}
inline std::string cli_path() { return CB_CLI_PATH; }
inline std::string gen_model_path() { return CB_GEN_MODEL_PATH; }

// A fresh empty directory under the test temp root.
std::string temp_dir(const std::string& tag);

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout + stderr
};
// Runs a shell command, capturing output.
CommandResult run_command(const std::string& cmd);

// Runs a stock llama.cpp tool until its output matches `pattern` (ECMAScript
// regex), at most `tries` times. Stock's async logger sometimes loses its last
// lines at exit (seen ~1 run in 4 under load), so a successful run without the
// result line is retried; a non-zero exit is returned at once.
CommandResult run_stock_until(const std::string& cmd, const std::string& pattern, int tries = 4);

}  // namespace cb::test
