#include "engine/tasks_lm.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "engine/engine.h"
#include "llama.h"

namespace cb::engine {

struct TasksLm::Impl {
  std::string path;
  Logger logger;
  llama_model* model = nullptr;
  llama_context* ctx = nullptr;
  const llama_vocab* vocab = nullptr;
  int n_vocab = 0;
  TasksLmOptions opt;

  // (Re)creates the context; MMLU with 5 shots needs more than the default.
  void make_context(int n_ctx) {
    if (ctx) llama_free(ctx);
    auto cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = std::min(opt.n_batch, n_ctx);
    cp.n_ubatch = std::min(opt.n_ubatch, static_cast<int>(cp.n_batch));
    cp.n_seq_max = opt.n_seq_max;
    cp.kv_unified = true;  // as llama-perplexity for the choice tasks
    const int threads = opt.threads > 0 ? opt.threads : std::max(1u, std::thread::hardware_concurrency());
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    ctx = llama_init_from_model(model, cp);
    if (!ctx) throw EngineError(fmt::format("{}: llama.cpp failed to create a context of {} tokens", path, n_ctx));
  }

  ~Impl() {
    if (ctx) llama_free(ctx);
    if (model) llama_model_free(model);
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

void batch_add(llama_batch& b, int32_t tok, int pos, const std::vector<int>& seqs, bool logits) {
  const int i = b.n_tokens++;
  b.token[i] = tok;
  b.pos[i] = pos;
  b.n_seq_id[i] = static_cast<int>(seqs.size());
  for (size_t s = 0; s < seqs.size(); ++s) b.seq_id[i][s] = seqs[s];
  b.logits[i] = logits;
}

size_t group_tokens(const TokenGroup& g) {
  size_t n = g.prefix;
  for (const auto& s : g.seqs) n += s.size() - g.prefix;
  return n;
}

}  // namespace

TasksLm::TasksLm(const std::string& model_path, const TasksLmOptions& options, const Logger& logger)
    : impl_(std::make_unique<Impl>()) {
  validate_model_file(model_path);
  ScopedLogCapture capture(logger);
  impl_->path = model_path;
  impl_->logger = logger;
  impl_->opt = options;
  auto mp = llama_model_default_params();
  mp.use_extra_bufts = false;  // AMX repacking segfaults on quantized cb-* models
  mp.n_gpu_layers = 0;
  impl_->model = llama_model_load_from_file(model_path.c_str(), mp);
  if (!impl_->model) throw EngineError(fmt::format("{}: llama.cpp failed to load the model", model_path));
  impl_->make_context(options.n_ctx);
  impl_->vocab = llama_model_get_vocab(impl_->model);
  impl_->n_vocab = llama_vocab_n_tokens(impl_->vocab);
}

TasksLm::~TasksLm() = default;

int TasksLm::n_ctx() const { return static_cast<int>(llama_n_ctx(impl_->ctx)); }

std::vector<int32_t> TasksLm::tokenize(const std::string& text, bool add_special) const {
  std::vector<int32_t> toks(text.size() + 8);
  int n = llama_tokenize(impl_->vocab, text.data(), static_cast<int32_t>(text.size()), toks.data(),
                         static_cast<int32_t>(toks.size()), add_special, false);
  if (n < 0) {
    toks.resize(-n);
    n = llama_tokenize(impl_->vocab, text.data(), static_cast<int32_t>(text.size()), toks.data(),
                       static_cast<int32_t>(toks.size()), add_special, false);
  }
  if (n < 0) throw EngineError(fmt::format("{}: tokenization failed", impl_->path));
  toks.resize(n);
  return toks;
}

std::string TasksLm::token_text(int32_t token) const {
  char buf[256];
  int n = llama_token_to_piece(impl_->vocab, token, buf, sizeof(buf), 0, false);
  if (n < 0) return {};
  return std::string(buf, n);
}

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
  const int n_ctx = this->n_ctx();
  const int n_seq_max = static_cast<int>(llama_n_seq_max(impl_->ctx));
  const int n_batch = static_cast<int>(llama_n_batch(impl_->ctx));
  llama_batch batch = llama_batch_init(n_ctx, 0, n_seq_max);
  std::vector<std::vector<Target>> targets(n_ctx);  // per batch row
  size_t g0 = 0;
  while (g0 < groups.size()) {
    batch.n_tokens = 0;
    size_t g1 = g0;
    int n_cur = 0, s0 = 0;
    for (auto& t : targets) t.clear();
    // Pack whole groups while they fit the context and the sequence slots.
    while (g1 < groups.size()) {
      const auto& g = groups[g1];
      const int need = static_cast<int>(group_tokens(g));
      const int n_seqs = static_cast<int>(g.seqs.size());
      if (g.prefix < 1 || n_seqs < 1) throw Error("TasksLm::score: empty group");
      if (need > n_ctx || n_seqs > n_seq_max) {
        llama_batch_free(batch);
        throw EngineError(fmt::format("a task needs {} tokens / {} sequences; context has {} / {} (raise --ctx)",
                                      need, n_seqs, n_ctx, n_seq_max));
      }
      if (n_cur + need > n_ctx || s0 + n_seqs > n_seq_max) break;
      out[g1].assign(g.seqs.size(), {});
      std::vector<int> ids(n_seqs);
      for (int s = 0; s < n_seqs; ++s) ids[s] = s0 + s;
      for (size_t i = 0; i < g.prefix; ++i) batch_add(batch, g.seqs[0][i], static_cast<int>(i), ids, false);
      // The last shared token predicts the first own token of every sequence.
      batch.logits[batch.n_tokens - 1] = true;
      for (int s = 0; s < n_seqs; ++s) {
        out[g1][s].resize(g.seqs[s].size() - g.prefix);
        if (g.seqs[s].size() > g.prefix)
          targets[batch.n_tokens - 1].push_back({g1, size_t(s), 0, g.seqs[s][g.prefix]});
      }
      for (int s = 0; s < n_seqs; ++s) {
        const auto& seq = g.seqs[s];
        for (size_t i = g.prefix; i < seq.size(); ++i) {
          const bool last = i + 1 == seq.size();
          if (!last) targets[batch.n_tokens].push_back({g1, size_t(s), i + 1 - g.prefix, seq[i + 1]});
          batch_add(batch, seq[i], static_cast<int>(i), {s0 + s}, !last);
        }
      }
      s0 += n_seqs;
      n_cur += need;
      ++g1;
    }
    llama_memory_clear(llama_get_memory(impl_->ctx), true);
    for (int i0 = 0; i0 < batch.n_tokens; i0 += n_batch) {
      const int n = std::min(n_batch, batch.n_tokens - i0);
      llama_batch view = {n, batch.token + i0, nullptr, batch.pos + i0, batch.n_seq_id + i0,
                          batch.seq_id + i0, batch.logits + i0};
      if (llama_decode(impl_->ctx, view) != 0) {
        llama_batch_free(batch);
        throw EngineError(fmt::format("{}: llama_decode failed", impl_->path));
      }
      for (int j = 0; j < n; ++j) {
        if (!view.logits[j] || targets[i0 + j].empty()) continue;
        const float* logits = llama_get_logits_ith(impl_->ctx, j);
        // log-softmax as llama-perplexity's compute_logprobs (max-shifted, float).
        const int arg = static_cast<int>(std::max_element(logits, logits + impl_->n_vocab) - logits);
        const float max_logit = logits[arg];
        float sum = 0.f;
        for (int v = 0; v < impl_->n_vocab; ++v) sum += std::exp(logits[v] - max_logit);
        const float log_sum = std::log(sum);
        for (const auto& t : targets[i0 + j]) {
          out[t.group][t.seq][t.k] = {logits[t.token] - max_logit - log_sum, t.token == arg};
        }
      }
    }
    g0 = g1;
  }
  llama_batch_free(batch);
  return out;
}

std::string TasksLm::chat_prompt(const std::string& user_message) const {
  const char* tmpl = llama_model_chat_template(impl_->model, nullptr);
  if (!tmpl) return {};
  llama_chat_message msg{"user", user_message.c_str()};
  std::vector<char> buf(user_message.size() * 2 + 1024);
  int n = llama_chat_apply_template(tmpl, &msg, 1, true, buf.data(), static_cast<int32_t>(buf.size()));
  if (n > static_cast<int>(buf.size())) {
    buf.resize(n);
    n = llama_chat_apply_template(tmpl, &msg, 1, true, buf.data(), static_cast<int32_t>(buf.size()));
  }
  if (n < 0) return {};  // a template llama.cpp's built-in list does not know
  return std::string(buf.data(), n);
}

std::string TasksLm::generate(const std::string& prompt, const GenerateOptions& options) {
  ScopedLogCapture capture(impl_->logger);
  auto toks = tokenize(prompt, true);
  const int n_ctx = this->n_ctx();
  const int n_batch = static_cast<int>(llama_n_batch(impl_->ctx));
  if (static_cast<int>(toks.size()) >= n_ctx) {
    throw EngineError(fmt::format("prompt of {} tokens does not fit the context ({})", toks.size(), n_ctx));
  }
  llama_memory_clear(llama_get_memory(impl_->ctx), true);
  llama_batch batch = llama_batch_init(n_batch, 0, 1);
  auto decode = [&](const int32_t* t, int n, int pos0) {
    batch.n_tokens = 0;
    for (int i = 0; i < n; ++i) batch_add(batch, t[i], pos0 + i, {0}, i + 1 == n);
    if (llama_decode(impl_->ctx, batch) != 0) {
      llama_batch_free(batch);
      throw EngineError(fmt::format("{}: llama_decode failed while generating", impl_->path));
    }
  };
  int pos = 0;
  for (size_t i = 0; i < toks.size(); i += n_batch) {
    const int n = std::min<int>(n_batch, static_cast<int>(toks.size() - i));
    decode(toks.data() + i, n, pos);
    pos += n;
  }
  std::string text;
  for (int step = 0; step < options.max_tokens && pos < n_ctx; ++step) {
    const float* logits = llama_get_logits_ith(impl_->ctx, -1);
    const int32_t tok = static_cast<int32_t>(std::max_element(logits, logits + impl_->n_vocab) - logits);
    if (llama_vocab_is_eog(impl_->vocab, tok)) break;
    text += token_text(tok);
    bool stopped = false;
    for (const auto& s : options.stop) {
      const auto at = text.find(s);
      if (!s.empty() && at != std::string::npos) {
        text.resize(at);
        stopped = true;
        break;
      }
    }
    if (stopped) break;
    decode(&tok, 1, pos++);
  }
  llama_batch_free(batch);
  return text;
}

}  // namespace cb::engine
