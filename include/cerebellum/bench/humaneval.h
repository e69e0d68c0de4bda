// HumanEval / HumanEval+: code extraction from a generation and sandboxed
// execution of the tests with python3 (time and memory limits, no network
// where the kernel allows an unprivileged network namespace).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace cb::bench {

struct HumanEvalOptions {
  int max_tokens = 512;            // generation limit per problem
  bool use_chat_template = true;   // when the model has one; raw completion otherwise
  double timeout_s = 20;           // wall and CPU limit per test program
  int64_t memory_mb = 2048;        // RLIMIT_AS of the test program
  std::string python = "python3";
};

// The program to test from a generation. Raw completions continue the prompt;
// chat answers are taken from the first ```python (or ```) fence anywhere in
// the text, keeping indentation (the original project lost it with .strip()).
std::string extract_program(const std::string& prompt, const std::string& generation, const std::string& entry_point,
                            bool chat);

struct ExecResult {
  bool passed = false;
  bool timed_out = false;
  int exit_code = -1;
  double seconds = 0;
  std::string output_tail;  // last ~2 KB of stdout+stderr
};

// Runs `program` with python3 in a fresh temp dir, with limits. Throws IoError
// when the sandbox cannot be set up.
ExecResult run_python(const std::string& program, const HumanEvalOptions& options);
// "unshare -rn" when it works here, else "none".
std::string network_isolation();

// The HumanEval test: program + test + check(entry_point).
std::string base_test_program(const std::string& program, const nlohmann::json& problem);
// HumanEval+: compares outputs with the canonical solution on base_input +
// plus_input (atol for floats), as EvalPlus does.
std::string plus_test_program(const std::string& program, const std::string& prompt, const nlohmann::json& problem);

}  // namespace cb::bench
