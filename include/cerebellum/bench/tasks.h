// Bench task suites as data: each task names its loader and how its
// questions are scored, in one table (task_table()).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cb::bench {

// How a question's choices are turned into token sequences and scored.
enum class Scoring {
  // llama-perplexity --hellaswag / --multiple-choice: tokenize
  // prompt + " " + choice (with BOS); score = mean log-prob of the tokens after
  // the prefix all choices share; highest wins.
  kMeanLogprob,
  // llama-perplexity --winogrande: choices are alternative *contexts*, the
  // shared `continuation` is scored (mean log-prob, without the choice word
  // and the final token when the continuation is long enough).
  kWinogrande,
  // LAMBADA: prompt + " " + continuation; correct when every continuation
  // token is the greedy (argmax) token; the log-likelihood is recorded too.
  kGreedyContinuation,
  // HumanEval / HumanEval+: greedy generation, execution of the tests.
  kCodeExecution,
};

struct Question {
  std::string id;                    // stable across runs (file order / subject + row)
  std::string prompt;                // the context or question text
  std::vector<std::string> choices;  // for kWinogrande: the alternative contexts
  std::string continuation;          // kWinogrande / kGreedyContinuation
  std::string joiner = " ";          // kGreedyContinuation: between prompt and continuation
  int gold = -1;                     // index into choices (-1: none, e.g. LAMBADA)
  nlohmann::json meta = nlohmann::json::object();  // subject, flags, tests ...
};

struct TaskOptions {
  std::string data_dir;   // the shared data folder (../shared/data)
  int64_t limit = 0;      // 0 = all questions
  int mmlu_shots = 0;     // k-shot prefix from MMLU's dev split (0-5)
  // HellaSwag: select tasks exactly as llama-perplexity does (mt19937(1)
  // random draw without replacement) so --limit N matches
  // `--hellaswag-tasks N`; false = the first N in file order.
  bool hellaswag_stock_order = true;
};

struct TaskSpec {
  std::string name;         // CLI name, e.g. "arc-challenge"
  std::string description;  // one line for --help and the summary
  std::string data_path;    // relative to data_dir
  Scoring scoring;
  // Loads all questions (honouring limit); throws InputError naming file/line.
  std::function<std::vector<Question>(const TaskOptions&)> load;
};

// Every task this build knows, in default order.
const std::vector<TaskSpec>& task_table();
// Throws UsageError listing the known names.
const TaskSpec& find_task(const std::string& name);
std::vector<std::string> default_task_names();  // all likelihood tasks (no code)

// ---- format helpers, exposed for tests ----
// RFC-4180-ish CSV: quoted fields, doubled quotes, newlines inside quotes.
std::vector<std::vector<std::string>> parse_csv(const std::string& text, char delimiter);
// A Python list literal of strings: ['a', "b's", 'c\'d'].
std::vector<std::string> parse_python_str_list(const std::string& text);
// Bytes that are not valid UTF-8 are read as Windows-1252 and re-encoded.
std::string to_utf8(const std::string& bytes, bool* was_cp1252 = nullptr);
// MMLU-Redux's error_type normalized: "ok", "wrong_groundtruth", ...
std::string normalize_error_type(const std::string& raw);

}  // namespace cb::bench
