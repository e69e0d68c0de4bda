// Engine adapter for the bench stage: a loaded model + context that scores
// token sequences (log-likelihood, as llama-perplexity's --hellaswag /
// --winogrande / --multiple-choice do) and generates greedily (HumanEval).
// Internal header: only src/bench uses it; no llama types leak out.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cerebellum/common/log.h"

namespace cb::engine {

struct TasksLmOptions {
  int n_ctx = 2048;      // llama-perplexity's 4 x 512 for the choice tasks
  int n_seq_max = 32;    // sequences decoded together (choices of several tasks)
  int n_batch = 2048;    // logical batch
  int n_ubatch = 512;    // physical batch, as stock
  int n_threads = 0;     // 0 = hardware concurrency
};

// Sequences sharing their first `prefix` tokens (the choices of one task).
struct TokenGroup {
  std::vector<std::vector<int32_t>> seqs;
  size_t prefix = 0;  // <= every seq size, >= 1
};

// Scores of seq[k] for k in [prefix, size): log P(seq[k] | seq[<k]) and
// whether seq[k] was the argmax (greedy) token.
struct TokenScore {
  float logprob = 0.f;
  bool greedy = false;
};
using GroupScores = std::vector<std::vector<TokenScore>>;  // [seq][k - prefix]

struct GenerateOptions {
  int max_tokens = 512;
  std::vector<std::string> stop;  // generation ends before the first stop string
};

class TasksLm {
 public:
  TasksLm(const std::string& model_path, const TasksLmOptions& options, const Logger& logger);
  ~TasksLm();
  TasksLm(const TasksLm&) = delete;
  TasksLm& operator=(const TasksLm&) = delete;

  // As llama-perplexity's common_tokenize(ctx, text, add_special, parse_special=false).
  std::vector<int32_t> tokenize(const std::string& text, bool add_special) const;
  std::string token_text(int32_t token) const;
  int n_ctx() const;

  // Scores many groups, packing several into one decode (shared prefix
  // decoded once under all its sequence ids, like stock). Throws EngineError.
  std::vector<GroupScores> score(const std::vector<TokenGroup>& groups);

  // The model's chat template applied to one user message (with the
  // assistant turn opened); empty when the model has none or llama.cpp does
  // not know it.
  std::string chat_prompt(const std::string& user_message) const;

  // Greedy continuation of `prompt` (tokenized with add_special).
  std::string generate(const std::string& prompt, const GenerateOptions& options);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cb::engine
