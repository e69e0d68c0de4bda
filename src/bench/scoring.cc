// Runs the task suites on a model: builds token groups per question, scores
// them through the engine adapter, writes per-question JSONL.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "cerebellum/bench/bench.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "engine/tasks_lm.h"

namespace cb::bench {
namespace fs = std::filesystem;
using nlohmann::json;
using engine::TasksLm;
using engine::TokenGroup;

namespace {

constexpr size_t kQuestionsPerCall = 32;  // progress granularity

size_t common_prefix(const std::vector<std::vector<int32_t>>& seqs) {
  size_t min_len = seqs[0].size();
  for (const auto& s : seqs) min_len = std::min(min_len, s.size());
  size_t k = 0;
  for (; k < min_len; ++k) {
    bool same = true;
    for (const auto& s : seqs) same = same && s[k] == seqs[0][k];
    if (!same) break;
  }
  // Every sequence keeps at least one scored token (stock would read past
  // the end when one choice is a prefix of another).
  return std::max<size_t>(1, std::min(k, min_len - 1));
}

// Per question: its token group and how to turn token scores into a result.
struct Prepared {
  TokenGroup group;
  std::vector<size_t> start, end;  // scored token positions [start, end) per seq
};

Prepared prepare(const TasksLm& lm, const TaskSpec& spec, const Question& q) {
  Prepared p;
  auto& seqs = p.group.seqs;
  if (spec.scoring == Scoring::kMeanLogprob) {
    for (const auto& c : q.choices) seqs.push_back(lm.tokenize(q.prompt + " " + c, true));
    p.group.prefix = common_prefix(seqs);
    for (const auto& s : seqs) {
      p.start.push_back(p.group.prefix);
      p.end.push_back(s.size());
    }
  } else if (spec.scoring == Scoring::kWinogrande) {
    // As winogrande_score(): skip the choice word itself when both
    // continuations are longer than 3 tokens, and never score the last token.
    constexpr size_t kMinTrailing = 3;
    for (const auto& c : q.choices) seqs.push_back(lm.tokenize(c + " " + q.continuation, true));
    p.group.prefix = common_prefix(seqs);
    bool skip_choice = true;
    for (const auto& s : seqs) skip_choice = skip_choice && s.size() - p.group.prefix > kMinTrailing;
    for (size_t i = 0; i < seqs.size(); ++i) {
      size_t start = skip_choice ? lm.tokenize(q.choices[i], true).size() : p.group.prefix;
      start = std::clamp(start, p.group.prefix, seqs[i].size() - 1);
      const size_t last = seqs[i].size() - start > 1 ? 1 : 0;
      p.start.push_back(start);
      p.end.push_back(seqs[i].size() - last);
    }
  } else {  // kGreedyContinuation
    seqs.push_back(lm.tokenize(q.prompt + q.joiner + q.continuation, true));
    seqs.push_back(lm.tokenize(q.prompt, true));
    p.group.prefix = common_prefix(seqs);
    seqs.pop_back();
    p.start.push_back(p.group.prefix);
    p.end.push_back(seqs[0].size());
  }
  return p;
}

QuestionResult finish(const TaskSpec& spec, const Question& q, const Prepared& p, const engine::GroupScores& gs) {
  QuestionResult r;
  r.id = q.id;
  r.gold = q.gold;
  json rec = {{"id", q.id}, {"prompt", q.prompt}, {"choices", q.choices}};
  if (!q.continuation.empty()) rec["continuation"] = q.continuation;
  if (spec.scoring == Scoring::kGreedyContinuation) {
    double sum = 0;
    bool all_greedy = true;
    for (size_t k = p.start[0]; k < p.end[0]; ++k) {
      sum += gs[0][k - p.group.prefix].logprob;
      all_greedy = all_greedy && gs[0][k - p.group.prefix].greedy;
    }
    r.correct = all_greedy;
    r.predicted = all_greedy ? 0 : -1;
    r.scores = {sum};
    rec["n_tokens"] = p.end[0] - p.start[0];
    rec["logprob"] = sum;
  } else {
    for (size_t s = 0; s < gs.size(); ++s) {
      double sum = 0;
      for (size_t k = p.start[s]; k < p.end[s]; ++k) sum += gs[s][k - p.group.prefix].logprob;
      r.scores.push_back(sum / std::max<size_t>(1, p.end[s] - p.start[s]));
    }
    // First maximum wins, as stock (strict >).
    r.predicted = static_cast<int>(std::max_element(r.scores.begin(), r.scores.end()) - r.scores.begin());
    r.correct = r.predicted == r.gold;
  }
  rec["scores"] = r.scores;
  rec["predicted"] = r.predicted;
  rec["gold"] = r.gold;
  rec["correct"] = r.correct;
  if (!q.meta.empty()) rec["meta"] = q.meta;
  r.record = std::move(rec);
  return r;
}

std::vector<QuestionResult> score_likelihood(TasksLm& lm, const TaskSpec& spec, const std::vector<Question>& qs,
                                             const ProgressFn& progress) {
  std::vector<QuestionResult> out;
  for (size_t i0 = 0; i0 < qs.size(); i0 += kQuestionsPerCall) {
    const size_t i1 = std::min(qs.size(), i0 + kQuestionsPerCall);
    std::vector<Prepared> prep;
    std::vector<TokenGroup> groups;
    for (size_t i = i0; i < i1; ++i) {
      prep.push_back(prepare(lm, spec, qs[i]));
      groups.push_back(prep.back().group);
    }
    const auto scores = lm.score(groups);
    for (size_t i = i0; i < i1; ++i) out.push_back(finish(spec, qs[i], prep[i - i0], scores[i - i0]));
    if (progress) progress({"bench", static_cast<int64_t>(i1), static_cast<int64_t>(qs.size()), spec.name});
  }
  return out;
}

// HumanEval prompts: the instruction when the model has a chat template.
std::string code_instruction(const std::string& prompt) {
  return "Complete the following Python function. Reply with the whole function in one ```python code block.\n\n"
         "```python\n" + prompt + "```";
}

std::vector<QuestionResult> score_code(TasksLm& lm, const TaskSpec& spec, const std::vector<Question>& qs,
                                       const HumanEvalOptions& he, const ProgressFn& progress) {
  const bool plus = spec.name == "humanevalplus";
  std::vector<QuestionResult> out;
  for (size_t i = 0; i < qs.size(); ++i) {
    const auto& q = qs[i];
    const std::string entry = q.meta.value("entry_point", "");
    const std::string chat = he.use_chat_template ? lm.chat_prompt(code_instruction(q.prompt)) : std::string();
    engine::GenerateOptions go;
    go.max_tokens = he.max_tokens;
    if (chat.empty()) go.stop = {"\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert "};
    const std::string gen = lm.generate(chat.empty() ? q.prompt : chat, go);
    const std::string program = extract_program(q.prompt, gen, entry, !chat.empty());
    const ExecResult base = run_python(base_test_program(program, q.meta), he);
    QuestionResult r;
    r.id = q.id;
    json rec = {{"id", q.id}, {"prompt", q.prompt}, {"mode", chat.empty() ? "completion" : "chat"},
                {"generation", gen}, {"program", program}, {"base_passed", base.passed},
                {"base_timed_out", base.timed_out}, {"base_output", base.output_tail}};
    bool passed = base.passed;
    if (plus) {
      const ExecResult pr = base.passed ? run_python(plus_test_program(program, q.prompt, q.meta), he) : ExecResult{};
      rec["plus_passed"] = pr.passed;
      rec["plus_timed_out"] = pr.timed_out;
      rec["plus_output"] = pr.output_tail;
      passed = pr.passed;
    }
    r.correct = passed;
    r.predicted = passed ? 1 : 0;
    r.gold = 1;
    rec["correct"] = passed;
    r.record = std::move(rec);
    out.push_back(std::move(r));
    if (progress) progress({"bench", static_cast<int64_t>(i + 1), static_cast<int64_t>(qs.size()), spec.name});
  }
  return out;
}

json task_settings(const TaskSpec& spec, const BenchOptions& o) {
  static const char* kScoring[] = {"mean_logprob", "winogrande", "greedy_continuation", "code_execution"};
  json s = {{"scoring", kScoring[static_cast<int>(spec.scoring)]}, {"data", spec.data_path},
            {"limit", o.task.limit}, {"description", spec.description}};
  if (spec.name == "mmlu") s["shots"] = o.task.mmlu_shots;
  if (spec.name == "hellaswag") s["selection"] = o.task.hellaswag_stock_order ? "llama-perplexity mt19937(1)" : "file order";
  if (spec.scoring == Scoring::kCodeExecution) {
    s["max_tokens"] = o.humaneval.max_tokens;
    s["chat_template"] = o.humaneval.use_chat_template;
    s["timeout_s"] = o.humaneval.timeout_s;
    s["memory_mb"] = o.humaneval.memory_mb;
    s["network_isolation"] = network_isolation();
  }
  return s;
}

void write_jsonl(const std::string& path, const std::vector<QuestionResult>& qs) {
  AtomicOutputFile f(path);
  for (const auto& q : qs) f.write(q.record.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
  f.commit();
}

}  // namespace

const TaskResult* ModelRun::find(const std::string& task) const {
  for (const auto& t : tasks) {
    if (t.task == task) return &t;
  }
  return nullptr;
}

ModelRun run_bench(const std::string& model_path, const BenchOptions& options, const std::string& jsonl_dir,
                   const Logger& logger, const ProgressFn& progress) {
  const auto names = options.tasks.empty() ? default_task_names() : options.tasks;
  std::vector<const TaskSpec*> specs;
  for (const auto& n : names) specs.push_back(&find_task(n));  // fail on a bad name before loading
  ModelRun run;
  run.model_path = model_path;
  std::error_code ec;
  run.model_bytes = fs::file_size(model_path, ec);
  engine::TasksLmOptions lo;
  lo.n_ctx = options.n_ctx;
  lo.n_seq_max = options.n_seq_max;
  lo.n_threads = options.n_threads;
  TasksLm lm(model_path, lo, logger);
  if (!jsonl_dir.empty()) fs::create_directories(jsonl_dir, ec);
  for (const TaskSpec* spec : specs) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto questions = spec->load(options.task);
    logger.info(fmt::format("{}: {} questions", spec->name, questions.size()));
    TaskResult tr;
    tr.task = spec->name;
    tr.questions = spec->scoring == Scoring::kCodeExecution
                       ? score_code(lm, *spec, questions, options.humaneval, progress)
                       : score_likelihood(lm, *spec, questions, progress);
    for (const auto& q : tr.questions) tr.n_correct += q.correct;
    tr.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    tr.settings = task_settings(*spec, options);
    tr.metrics = task_metrics(spec->name, tr.questions);
    tr.metrics["seconds"] = tr.seconds;
    if (!jsonl_dir.empty()) write_jsonl((fs::path(jsonl_dir) / (spec->name + ".jsonl")).string(), tr.questions);
    logger.info(fmt::format("{}: accuracy {:.4f} ({}/{}) in {:.1f} s", spec->name,
                            tr.metrics.value("accuracy", 0.0), tr.n_correct, tr.questions.size(), tr.seconds));
    run.tasks.push_back(std::move(tr));
  }
  return run;
}

}  // namespace cb::bench
