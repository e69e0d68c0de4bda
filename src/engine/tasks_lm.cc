#include "engine/tasks_lm.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "engine/engine.h"
#include "engine/llama_model.h"

namespace cb::engine {

struct TasksLm::Impl {
  std::string path;
  Logger logger;
  TasksLmOptions opt;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<LlamaContext> ctx;  // after `model`: destroyed first

  // (Re)creates the context; MMLU with 5 shots needs more than the default.
  void make_context(int n_ctx) {
    ctx.reset();
    ContextOptions co;
    co.n_ctx = n_ctx;
    co.n_batch = std::min(opt.n_batch, n_ctx);
    co.n_ubatch = opt.n_ubatch;
    co.n_seq = opt.n_seq_max;
    co.kv_unified = true;  // as llama-perplexity for the choice tasks
    ctx = std::make_unique<LlamaContext>(*model, co);
  }
};

namespace {

// One output row of a packed batch and the tokens it predicts.
struct Target {
  size_t group;
  size_t seq;
  size_t k;  // index into the seq's scores (token position - prefix)
  int32_t token;
};

size_t group_tokens(const TokenGroup& g) {
  size_t n = g.prefix;
  for (const auto& s : g.seqs) n += s.size() - g.prefix;
  return n;
}

// log-softmax as llama-perplexity's compute_logprobs (max-shifted, float).
void score_row(const float* logits, int n_vocab, const std::vector<Target>& targets, std::vector<GroupScores>& out) {
  const int arg = static_cast<int>(std::max_element(logits, logits + n_vocab) - logits);
  const float max_logit = logits[arg];
  float sum = 0.f;
  for (int v = 0; v < n_vocab; ++v) sum += std::exp(logits[v] - max_logit);
  const float log_sum = std::log(sum);
  for (const auto& t : targets) out[t.group][t.seq][t.k] = {logits[t.token] - max_logit - log_sum, t.token == arg};
}

// Adds group `g` (sequence ids from s0) to the batch: the shared prefix once
// under all its ids, each sequence's own tokens under its id.
void pack_group(const TokenGroup& g, size_t gi, int s0, TokenBatch& batch, std::vector<std::vector<Target>>& targets,
                GroupScores& scores) {
  const int n_seqs = static_cast<int>(g.seqs.size());
  scores.assign(g.seqs.size(), {});
  std::vector<int32_t> ids(n_seqs);
  for (int s = 0; s < n_seqs; ++s) ids[s] = s0 + s;
  // The last shared token predicts the first own token of every sequence.
  for (size_t i = 0; i < g.prefix; ++i) batch.add(g.seqs[0][i], static_cast<int32_t>(i), ids, i + 1 == g.prefix);
  const int last_shared = batch.size() - 1;
  for (int s = 0; s < n_seqs; ++s) {
    scores[s].resize(g.seqs[s].size() - g.prefix);
    if (g.seqs[s].size() > g.prefix) targets[last_shared].push_back({gi, size_t(s), 0, g.seqs[s][g.prefix]});
  }
  for (int s = 0; s < n_seqs; ++s) {
    const auto& seq = g.seqs[s];
    for (size_t i = g.prefix; i < seq.size(); ++i) {
      const bool last = i + 1 == seq.size();
      if (!last) targets[batch.size()].push_back({gi, size_t(s), i + 1 - g.prefix, seq[i + 1]});
      batch.add(seq[i], static_cast<int32_t>(i), s0 + s, !last);
    }
  }
}

}  // namespace

TasksLm::TasksLm(const std::string& model_path, const TasksLmOptions& options, const Logger& logger)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = model_path;
  impl_->logger = logger;
  impl_->opt = options;
  impl_->model = LlamaModel::load(model_path, {.n_threads = options.n_threads, .logger = logger});
  impl_->make_context(options.n_ctx);
}

TasksLm::~TasksLm() = default;

int TasksLm::n_ctx() const { return impl_->ctx->n_ctx(); }

std::vector<int32_t> TasksLm::tokenize(const std::string& text, bool add_special) const {
  return impl_->model->tokenize(text, add_special, false);
}

std::string TasksLm::token_text(int32_t token) const { return impl_->model->token_to_piece(token, false); }

std::vector<GroupScores> TasksLm::score(const std::vector<TokenGroup>& groups) {
  ScopedLogCapture capture(impl_->logger);
  std::vector<GroupScores> out(groups.size());
  // Grow the context (multiples of 512) when one task alone does not fit.
  size_t need_max = 0;
  for (const auto& g : groups) need_max = std::max(need_max, group_tokens(g));
  if (static_cast<int>(need_max) > this->n_ctx()) {
    impl_->logger.info(fmt::format("context grown to {} tokens for a {}-token task", (need_max + 511) / 512 * 512, need_max));
    impl_->make_context(static_cast<int>((need_max + 511) / 512 * 512));
  }
  LlamaContext& ctx = *impl_->ctx;
  const int n_ctx = ctx.n_ctx(), n_seq_max = ctx.n_seq(), n_vocab = impl_->model->n_vocab();
  TokenBatch batch(n_ctx, n_seq_max);
  std::vector<std::vector<Target>> targets(n_ctx);  // per batch row
  for (size_t g0 = 0, g1 = 0; g0 < groups.size(); g0 = g1) {
    batch.clear();
    for (auto& t : targets) t.clear();
    // Pack whole groups while they fit the context and the sequence slots.
    for (int n_cur = 0, s0 = 0; g1 < groups.size(); ++g1) {
      const auto& g = groups[g1];
      const int need = static_cast<int>(group_tokens(g)), n_seqs = static_cast<int>(g.seqs.size());
      if (g.prefix < 1 || n_seqs < 1) throw Error("TasksLm::score: empty group");
      if (need > n_ctx || n_seqs > n_seq_max) {
        throw EngineError(fmt::format("a task needs {} tokens / {} sequences; context has {} / {} (raise --ctx)",
                                      need, n_seqs, n_ctx, n_seq_max));
      }
      if (n_cur + need > n_ctx || s0 + n_seqs > n_seq_max) break;
      pack_group(g, g1, s0, batch, targets, out[g1]);
      s0 += n_seqs;
      n_cur += need;
    }
    ctx.clear();
    ctx.decode_each(batch, [&](int row, const float* logits) {
      if (!targets[row].empty()) score_row(logits, n_vocab, targets[row], out);
    });
  }
  return out;
}

std::string TasksLm::chat_prompt(const std::string& user_message) const {
  return impl_->model->chat_prompt(user_message);
}

std::string TasksLm::generate(const std::string& prompt, const GenerateOptions& options) {
  ScopedLogCapture capture(impl_->logger);
  LlamaContext& ctx = *impl_->ctx;
  const auto toks = tokenize(prompt, true);
  const int n_ctx = ctx.n_ctx(), n_batch = ctx.n_batch(), n_vocab = impl_->model->n_vocab();
  if (static_cast<int>(toks.size()) >= n_ctx) {
    throw EngineError(fmt::format("prompt of {} tokens does not fit the context ({})", toks.size(), n_ctx));
  }
  ctx.clear();
  TokenBatch batch(n_batch, 1);
  const auto decode = [&](const int32_t* t, int n, int pos0) {
    batch.clear();
    for (int i = 0; i < n; ++i) batch.add(t[i], pos0 + i, 0, i + 1 == n);
    ctx.decode(batch);
  };
  int pos = 0;
  for (size_t i = 0; i < toks.size(); i += n_batch) {
    const int n = std::min<int>(n_batch, static_cast<int>(toks.size() - i));
    decode(toks.data() + i, n, pos);
    pos += n;
  }
  std::string text;
  for (int step = 0; step < options.max_tokens && pos < n_ctx; ++step) {
    const float* logits = ctx.logits(batch.size() - 1);
    const int32_t tok = static_cast<int32_t>(std::max_element(logits, logits + n_vocab) - logits);
    if (impl_->model->is_eog(tok)) break;
    text += token_text(tok);
    const auto stop = std::find_if(options.stop.begin(), options.stop.end(),
                                   [&](const std::string& s) { return !s.empty() && text.find(s) != std::string::npos; });
    if (stop != options.stop.end()) {
      text.resize(text.find(*stop));
      break;
    }
    decode(&tok, 1, pos++);
  }
  return text;
}

}  // namespace cb::engine
