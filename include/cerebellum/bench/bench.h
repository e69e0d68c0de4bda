// The bench stage: scores a model (and optionally its baseline) on task
// suites, writes per-question JSONL and a summary (cerebellum.bench/1), and
// decides the ship gate. See docs/bench.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cerebellum/bench/humaneval.h"
#include "cerebellum/bench/tasks.h"
#include "cerebellum/common/log.h"

namespace cb::bench {

struct BenchOptions {
  std::vector<std::string> tasks;  // empty = default_task_names() (no code tasks)
  TaskOptions task;                // data_dir, limit, mmlu_shots, HellaSwag order
  int n_threads = 0;               // 0 = every CPU this run may use (its affinity)
  int n_ctx = 2048;                // llama-perplexity: 4 parallel x 512
  int n_seq_max = 32;              // choices decoded together in one batch
  HumanEvalOptions humaneval;
  double gate_alpha = 0.05;        // McNemar p below this + lower accuracy = regression
};

struct QuestionResult {
  std::string id;
  int predicted = -1;                 // choice index (-1: none)
  int gold = -1;
  bool correct = false;
  std::vector<double> scores;         // per choice (mean log-prob)
  nlohmann::json record;              // the whole JSONL line (prompt, choices, ...)
};

struct TaskResult {
  std::string task;
  std::vector<QuestionResult> questions;
  int64_t n_correct = 0;
  double seconds = 0;
  nlohmann::json settings;  // how it was scored (identical for model and baseline)
  nlohmann::json metrics;   // accuracy, ci95, task-specific extras
};

struct ModelRun {
  std::string model_path;
  uint64_t model_bytes = 0;
  std::vector<TaskResult> tasks;
  const TaskResult* find(const std::string& task) const;
};

// Scores `model_path` on every task of `options`; writes
// `jsonl_dir/<task>.jsonl` (atomically, one task at a time) when not empty.
// Throws InputError (data), EngineError (model), IoError (output).
ModelRun run_bench(const std::string& model_path, const BenchOptions& options, const std::string& jsonl_dir,
                   const Logger& logger, const ProgressFn& progress);

// Accuracy, 95% Wilson CI and task-specific metrics from the questions.
nlohmann::json task_metrics(const std::string& task, const std::vector<QuestionResult>& questions);

struct TaskComparison {
  std::string task;
  int64_t n_paired = 0;           // questions both runs answered (matched by id)
  double model_accuracy = 0, baseline_accuracy = 0;
  int64_t model_only = 0;         // right only for the model (McNemar b)
  int64_t baseline_only = 0;      // right only for the baseline (McNemar c)
  double p_value = 1;             // exact McNemar, two-sided
  bool regression = false;        // p < alpha and model accuracy lower
};

struct GateVerdict {
  bool ships = true;
  double alpha = 0.05;
  std::vector<TaskComparison> tasks;
  std::string reason;  // one line, e.g. "significant regression on arc-easy (p=0.003)"
};

// The ship gate, reusable by `quantize`: paired exact McNemar per task shared
// by both runs; does not ship when any task regresses significantly.
GateVerdict ship_gate(const ModelRun& model, const ModelRun& baseline, double alpha = 0.05);
GateVerdict ship_gate_from_correct(const std::vector<std::string>& task_names,
                                   const std::vector<std::vector<std::pair<std::string, bool>>>& model,
                                   const std::vector<std::vector<std::pair<std::string, bool>>>& baseline,
                                   double alpha = 0.05);

// summary.json (schema cerebellum.bench/1); baseline / verdict may be null.
nlohmann::json summary_json(const ModelRun& model, const ModelRun* baseline, const GateVerdict* verdict,
                            const BenchOptions& options);

}  // namespace cb::bench
