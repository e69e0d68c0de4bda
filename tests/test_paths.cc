#include "test_paths.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <regex>

namespace cb::test {

std::string temp_dir(const std::string& tag) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() /
                       ("cerebellum-test-" + std::to_string(getpid())) / tag;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

CommandResult run_command(const std::string& cmd) {
  CommandResult result;
  FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) result.output.append(buf.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

CommandResult run_stock_until(const std::string& cmd, const std::string& pattern, int tries) {
  const std::regex re(pattern);
  CommandResult r;
  for (int attempt = 0; attempt < tries; ++attempt) {
    r = run_command(cmd);
    if (r.exit_code != 0 || std::regex_search(r.output, re)) break;
  }
  return r;
}

}  // namespace cb::test
