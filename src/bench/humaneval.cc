#include "cerebellum/bench/humaneval.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"

namespace cb::bench {
namespace fs = std::filesystem;

std::string extract_program(const std::string& prompt, const std::string& generation, const std::string& entry_point,
                            bool chat) {
  if (!chat) return prompt + generation;
  std::string code = generation;
  // Fence anywhere (explanations before it are common), language tag optional.
  size_t open = generation.find("```python");
  size_t skip = 9;
  if (open == std::string::npos) {
    open = generation.find("```");
    skip = 3;
  }
  if (open != std::string::npos) {
    size_t start = generation.find('\n', open + skip);
    start = start == std::string::npos ? generation.size() : start + 1;
    const size_t close = generation.find("```", start);
    code = generation.substr(start, close == std::string::npos ? std::string::npos : close - start);
  }
  // Strip blank lines only: leading spaces are indentation.
  while (!code.empty() && code.front() == '\n') code.erase(code.begin());
  while (!code.empty() && (code.back() == '\n' || code.back() == ' ')) code.pop_back();
  if (code.find("def " + entry_point + "(") != std::string::npos) {
    // A whole function: keep the prompt first for its imports and helpers;
    // the later definition wins.
    return prompt + "\n\n" + code + "\n";
  }
  return prompt + code + "\n";  // a body continuing the prompt's signature
}

std::string network_isolation() {
  static std::once_flag once;
  static std::string how = "none";
  std::call_once(once, [] {
    if (std::system("unshare -rn true >/dev/null 2>&1") == 0) how = "unshare -rn";
  });
  return how;
}

namespace {

std::string tail(const std::string& s, size_t n) { return s.size() > n ? s.substr(s.size() - n) : s; }

// A unique temp dir, removed on scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "cb-humaneval-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw IoError(fmt::format("{}: cannot create a temp dir", tmpl));
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

ExecResult run_python(const std::string& program, const HumanEvalOptions& options) {
  TempDir dir;
  const std::string script = (dir.path / "prog.py").string();
  const std::string log = (dir.path / "out.txt").string();
  write_file_atomic(script, program);
  const bool isolate = network_isolation() != "none";
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid < 0) throw IoError("fork failed for the HumanEval sandbox");
  if (pid == 0) {
    setpgid(0, 0);
    if (chdir(dir.path.c_str()) != 0) _exit(126);
    const rlim_t mem = static_cast<rlim_t>(options.memory_mb) << 20;
    const rlim_t cpu = static_cast<rlim_t>(options.timeout_s + 1);
    rlimit r{mem, mem};
    setrlimit(RLIMIT_AS, &r);
    r = {cpu, cpu};
    setrlimit(RLIMIT_CPU, &r);
    r = {1 << 20, 1 << 20};
    setrlimit(RLIMIT_FSIZE, &r);  // no huge files from a runaway program
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    if (isolate) {
      execlp("unshare", "unshare", "-rn", options.python.c_str(), "-I", "prog.py", nullptr);
    } else {
      execlp(options.python.c_str(), options.python.c_str(), "-I", "prog.py", nullptr);
    }
    _exit(127);
  }
  ExecResult res;
  int status = 0;
  for (;;) {
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (el > options.timeout_s) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      res.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  res.passed = !res.timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  std::error_code ec;
  if (fs::exists(log, ec)) res.output_tail = tail(read_file(log), 2048);
  return res;
}

std::string base_test_program(const std::string& program, const nlohmann::json& problem) {
  return program + "\n\n" + problem.value("test", "") + "\n\ncheck(" + problem.value("entry_point", "") + ")\n";
}

std::string plus_test_program(const std::string& program, const std::string& prompt, const nlohmann::json& problem) {
  nlohmann::json inputs = nlohmann::json::array();
  for (const char* key : {"base_input", "plus_input"}) {
    if (problem.contains(key) && problem[key].is_array()) {
      for (const auto& x : problem[key]) inputs.push_back(x);
    }
  }
  std::string atol = "0";
  if (problem.contains("atol")) atol = problem["atol"].is_string() ? problem["atol"].get<std::string>() : problem["atol"].dump();
  const nlohmann::json payload = {{"candidate", program},
                                  {"reference", prompt + problem.value("canonical_solution", "")},
                                  {"entry_point", problem.value("entry_point", "")},
                                  {"inputs", inputs.dump()},
                                  {"atol", atol}};
  // The reference runs first, so the candidate cannot patch it.
  return "import json, math, copy, sys\nP = json.loads(" + nlohmann::json(payload.dump()).dump() + ")\n" + R"PY(
sys.setrecursionlimit(10000)
ref_ns, cand_ns = {}, {}
exec(compile(P["reference"], "reference.py", "exec"), ref_ns)
inputs = json.loads(P["inputs"])
atol = float(P["atol"])
expected = [ref_ns[P["entry_point"]](*copy.deepcopy(a)) for a in inputs]
exec(compile(P["candidate"], "candidate.py", "exec"), cand_ns)
cand = cand_ns[P["entry_point"]]
def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool):
            return a == b
        try:
            a, b = float(a), float(b)
        except Exception:
            return False
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=1e-7, abs_tol=max(atol, 1e-9))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) == type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b
for i, a in enumerate(inputs):
    got = cand(*copy.deepcopy(a))
    if not same(expected[i], got):
        print("plus test %d failed: input %r expected %r got %r" % (i, str(a)[:200], str(expected[i])[:200], str(got)[:200]))
        sys.exit(1)
print("all %d plus tests passed" % len(inputs))
)PY";
}

}  // namespace cb::bench
