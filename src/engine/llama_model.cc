#include "engine/llama_model.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>
#include <atomic>
#include <filesystem>

#include <unistd.h>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "common/parallel.h"
#include "engine/engine.h"
#include "cerebellum/common/io.h"
#include "engine/gguf_writer.h"
#include "engine/mapped_pages.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "gguf.h"
#include "llama.h"

namespace cb::engine {

// Collects the model's weight tensors by watching one tiny decode: every
// weight the graph reads shows up as a source of some node. (llama.h has no
// accessor for a loaded model's tensors.)
struct ModelLoader {
  static bool collect(ggml_tensor* t, bool ask, void* ud) {
    auto* m = static_cast<LlamaModel*>(ud);
    if (!ask) return true;
    for (int i = 0; i < GGML_MAX_SRC; ++i) {
      ggml_tensor* src = t->src[i];
      if (!src || !src->buffer || src->name[0] == '\0') continue;
      if (ggml_backend_buffer_get_usage(src->buffer) != GGML_BACKEND_BUFFER_USAGE_WEIGHTS) continue;
      auto& v = m->tensors_[src->name];
      if (std::find(v.begin(), v.end(), src) == v.end()) v.push_back(src);
      // Any type runs where the weight is a matrix product's or a row
      // lookup's first operand; other ops (ssm_conv, elementwise) need floats.
      const bool any_type = i == 0 && (t->op == GGML_OP_MUL_MAT || t->op == GGML_OP_MUL_MAT_ID ||
                                       t->op == GGML_OP_GET_ROWS);
      if (!any_type) m->float_only_.insert(src->name);
      const bool matmul = i == 0 && ((t->op == GGML_OP_MUL_MAT && ggml_n_dims(src) == 2) ||
                                     (t->op == GGML_OP_MUL_MAT_ID && ggml_n_dims(src) == 3));
      (matmul ? m->matmul_ : m->other_use_).insert(src->name);
    }
    return false;  // never ask for the computed data
  }

  static void discover(LlamaModel& m) {
    LlamaContext ctx(m, {.n_ctx = 16, .n_batch = 16, .n_ubatch = 16, .n_seq = 1,
                         .cb_eval = &collect, .cb_eval_user_data = &m});
    TokenBatch batch(2);
    batch.add(m.bos() >= 0 ? m.bos() : 0, 0, 0, true);
    ctx.decode(batch);
  }
};

int fit_gpu_layers(const std::string& path, int requested, int64_t max_bytes, int64_t reserve_bytes) {
  const GgufFile g(path);
  const int64_t n_layer = g.get_int(g.get_string("general.architecture") + ".block_count", 0);
  std::vector<int64_t> layer_bytes(static_cast<size_t>(std::max<int64_t>(n_layer, 0)), 0);
  int64_t output_bytes = 0, embd_bytes = 0;
  for (int64_t i = 0; i < g.n_tensors(); ++i) {
    const std::string name = g.tensor_name(i);
    int layer = -1;
    if (std::sscanf(name.c_str(), "blk.%d.", &layer) == 1 && layer >= 0 && layer < n_layer) {
      layer_bytes[layer] += static_cast<int64_t>(g.tensor_size_bytes(i));
    } else if (name.rfind("output", 0) == 0) {
      output_bytes += static_cast<int64_t>(g.tensor_size_bytes(i));
    } else if (name == "token_embd.weight") {
      embd_bytes = static_cast<int64_t>(g.tensor_size_bytes(i));
    }
  }
  // A partial offload runs the host layers' large matrix products on the
  // device as well: llama.cpp's op offload copies a split's weights into the
  // compute buffer (a layer, or the output matrix: token_embd when tied). So
  // that much more room is kept: without it the ~24B F16 reference pass, at
  // 21 of 41 layers, peaked 151 MiB over a 24 GiB cap.
  const int64_t host_output_bytes = output_bytes > 0 ? output_bytes : embd_bytes;
  const int max_k = static_cast<int>(std::min<int64_t>(requested, n_layer + 1));
  int best = 0;
  int64_t bytes = 0;
  for (int k = 1; k <= max_k; ++k) {
    bytes += k <= n_layer ? layer_bytes[n_layer - k] : output_bytes;
    int64_t copied = 0;
    if (k <= n_layer) {
      copied = host_output_bytes;
      for (int64_t i = 0; i < n_layer - k; ++i) copied = std::max(copied, layer_bytes[i]);
    }
    if (bytes + reserve_bytes + copied > max_bytes) break;
    best = k;
  }
  return best;
}

namespace {

llama_model_params model_params(int n_gpu_layers, bool repack) {
  llama_model_params p = llama_model_default_params();
  p.n_gpu_layers = n_gpu_layers;
  // Off unless asked and safe (cpu_repack_buffer_type(): AMX repacking
  // segfaults on quantized cb-* models).
  p.use_extra_bufts = repack;
  return p;
}

// While a repacking load reads the file: the pages it has read are given
// back as it goes (the weights are copied out of them), so the load holds
// about one tensor of the file at a time besides the copies.
struct LoadPageRelease {
  std::string path;
  std::vector<AddressRange> ranges;  // found once the loader has mapped the file
  static bool on_progress(float /*progress*/, void* user_data) {
    auto* self = static_cast<LoadPageRelease*>(user_data);
    if (self->ranges.empty()) self->ranges = mapped_ranges_of(self->path);
    release_pages(self->ranges);
    return true;
  }
};

// A temporary GGUF, removed when this goes away (a mapping keeps it readable).
struct TempModelFile {
  std::string path;
  ~TempModelFile() {
    if (!path.empty()) std::filesystem::remove(path);
  }
};

// Identifies a built GGUF: the source file (path, size, mtime), the types and
// the imatrix. Stored in the file as a string key and compared on reuse.
std::string built_key(const std::string& source, const ModelLoadOptions& opts) {
  std::string k = file_identity(source);
  for (const auto& [name, type] : opts.tensor_types) k += "|" + name + "=" + type;
  for (const auto& [name, w] : opts.imatrix) {
    k += "|im:" + name + ":" + sha256_bytes(w.data(), w.size() * sizeof(float));
  }
  return sha256_bytes(k.data(), k.size());
}

constexpr const char* kBuiltKey = "cerebellum.built_from";

// Builds (or reuses) the GGUF with opts.tensor_types; returns its path.
std::string build_typed_model(const std::string& source, const ModelLoadOptions& opts, TempModelFile& temp) {
  namespace fs = std::filesystem;
  const std::string key = built_key(source, opts);
  if (!opts.shared_built_path.empty() && fs::exists(opts.shared_built_path)) {
    try {
      if (GgufFile(opts.shared_built_path).get_string(kBuiltKey) == key) {
        opts.logger.info("loading the shared base mix " + opts.shared_built_path);
        return opts.shared_built_path;
      }
    } catch (const Error&) {
    }
    opts.logger.info(opts.shared_built_path + " was built for other types or another source: building our own");
  }
  std::string out = opts.built_path;
  if (!out.empty() && fs::exists(out)) {
    try {
      if (GgufFile(out).get_string(kBuiltKey) == key) return out;
    } catch (const Error&) {
      // unreadable (e.g. torn by a crash): rebuilt below
    }
  }
  if (out.empty()) {
    static std::atomic<int> counter{0};
    const fs::path dir = opts.work_dir.empty() ? fs::temp_directory_path() : fs::path(opts.work_dir);
    out = temp.path = (dir / fmt::format("cb-eval-{}-{}.gguf", ::getpid(), counter++)).string();
  }
  QuantizeJob job;
  job.source = source;
  job.out = out;
  job.types = opts.tensor_types;
  job.imatrix_for = [&](const std::string& name) {
    auto it = opts.imatrix.find(name);
    return it == opts.imatrix.end() ? std::vector<float>{} : it->second;
  };
  job.string_kvs = {{kBuiltKey, key}};
  job.stamp_origin = true;
  job.donor = opts.donor_path;
  job.n_threads = opts.n_threads;
  quantize_gguf(job, opts.logger, {});
  return out;
}

}  // namespace

std::unique_ptr<LlamaModel> LlamaModel::load(const std::string& path,
                                             const ModelLoadOptions& opts) {
  ensure_backend();
  validate_model_file(path);
  std::unique_ptr<LlamaModel> m(new LlamaModel());
  m->path_ = path;
  m->n_threads_ = thread_count(opts.n_threads);
  TempModelFile temp;
  std::string load_path = path;
  if (!opts.tensor_types.empty()) load_path = build_typed_model(path, opts, temp);
  int n_gpu_layers = opts.n_gpu_layers;
  if (opts.n_gpu_layers > 0 && opts.max_device_bytes > 0) {
    n_gpu_layers = fit_gpu_layers(load_path, opts.n_gpu_layers, opts.max_device_bytes, opts.device_reserve_bytes);
    opts.logger.info(fmt::format("{}: {} layers on the device to stay within {:.2f} GiB", path, n_gpu_layers,
                                 static_cast<double>(opts.max_device_bytes) / (1 << 30)));
  }
  ScopedLogCapture capture(opts.logger);
  ggml_backend_buffer_type_t repack_buft = opts.cpu_repack ? cpu_repack_buffer_type() : nullptr;
  const bool repack = repack_buft != nullptr;
  llama_model_params params = model_params(n_gpu_layers, repack);
  LoadPageRelease load_release{load_path, {}};
  if (repack && opts.release_mapped_pages) {
    params.progress_callback = &LoadPageRelease::on_progress;
    params.progress_callback_user_data = &load_release;
  }
  m->model_ = llama_model_load_from_file(load_path.c_str(), params);
  if (!m->model_) {
    std::string why = capture.text();
    const auto pos = why.rfind("error");
    why = pos == std::string::npos ? "" : why.substr(pos);
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    throw EngineError(fmt::format("{}: llama.cpp failed to load the model{}{}", path,
                                  why.empty() ? "" : ": ", why));
  }
  // llama.cpp: a negative count is every layer; n_layer + 1 includes the output.
  m->fully_offloaded_ = gpu_memory().total_bytes > 0 && (n_gpu_layers < 0 || n_gpu_layers > m->n_layer());
  if (opts.release_mapped_pages && !m->fully_offloaded_) m->released_ranges_ = mapped_ranges_of(load_path);
  m->repack_buft_ = repack_buft;
  if (repack) release_pages(m->released_ranges_);  // what the load read last
  if (opts.swappable) ModelLoader::discover(*m);
  return m;
}

void LlamaModel::begin_view(std::pair<uintptr_t, uintptr_t> view_range) {
  if (released_ranges_.empty()) return;
  release_pages(released_ranges_);
  released_ranges_.push_back(view_range);
}

void LlamaModel::end_view(std::pair<uintptr_t, uintptr_t> view_range) {
  released_ranges_.erase(std::remove(released_ranges_.begin(), released_ranges_.end(), view_range),
                         released_ranges_.end());
}

LlamaModel::~LlamaModel() {
  if (model_) llama_model_free(model_);
}

const llama_vocab* LlamaModel::vocab() const { return llama_model_get_vocab(model_); }
int32_t LlamaModel::n_vocab() const { return llama_vocab_n_tokens(vocab()); }
int32_t LlamaModel::n_layer() const { return llama_model_n_layer(model_); }
Token LlamaModel::bos() const { return llama_vocab_bos(vocab()); }
bool LlamaModel::add_bos() const { return llama_vocab_get_add_bos(vocab()); }
bool LlamaModel::add_eos() const { return llama_vocab_get_add_eos(vocab()); }

std::string LlamaModel::chat_prompt(const std::string& user_message) const {
  const char* tmpl = llama_model_chat_template(model_, nullptr);
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

bool LlamaModel::is_eog(Token token) const { return llama_vocab_is_eog(vocab(), token); }

std::vector<Token> LlamaModel::tokenize(const std::string& text, bool add_special,
                                        bool parse_special) const {
  // Upper bound: one token per byte plus specials.
  std::vector<Token> out(text.size() + 2);
  int32_t n = llama_tokenize(vocab(), text.data(), static_cast<int32_t>(text.size()), out.data(),
                             static_cast<int32_t>(out.size()), add_special, parse_special);
  if (n < 0) {
    out.resize(-n);
    n = llama_tokenize(vocab(), text.data(), static_cast<int32_t>(text.size()), out.data(),
                       static_cast<int32_t>(out.size()), add_special, parse_special);
  }
  if (n < 0) throw EngineError("tokenization failed");
  out.resize(n);
  return out;
}

std::string LlamaModel::token_to_piece(Token token, bool special) const {
  char buf[256];
  int32_t n = llama_token_to_piece(vocab(), token, buf, sizeof(buf), 0, special);
  if (n >= 0) return std::string(buf, n);
  std::string big(-n, '\0');
  n = llama_token_to_piece(vocab(), token, big.data(), static_cast<int32_t>(big.size()), 0, special);
  return big.substr(0, std::max(n, 0));
}

std::string LlamaModel::detokenize(const std::vector<Token>& tokens, bool remove_special,
                                   bool unparse_special) const {
  std::string text(tokens.size() * 8 + 16, '\0');
  int32_t n = llama_detokenize(vocab(), tokens.data(), static_cast<int32_t>(tokens.size()),
                               text.data(), static_cast<int32_t>(text.size()), remove_special,
                               unparse_special);
  if (n < 0) {
    text.resize(-n);
    n = llama_detokenize(vocab(), tokens.data(), static_cast<int32_t>(tokens.size()), text.data(),
                         static_cast<int32_t>(text.size()), remove_special, unparse_special);
  }
  text.resize(std::max(n, 0));
  return text;
}

std::vector<ggml_tensor*> LlamaModel::tensor_handles(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? std::vector<ggml_tensor*>{} : it->second;
}

// ---- TokenBatch ----

TokenBatch::TokenBatch(int capacity, int max_seq_per_token)
    : batch_(std::make_unique<llama_batch>(llama_batch_init(capacity, 0, max_seq_per_token))),
      capacity_(capacity),
      max_seq_(max_seq_per_token) {}

TokenBatch::~TokenBatch() { llama_batch_free(*batch_); }

void TokenBatch::clear() {
  batch_->n_tokens = 0;
  n_outputs_ = 0;
}

int TokenBatch::add(Token token, int32_t pos, int32_t seq, bool want_logits) {
  return add(token, pos, std::vector<int32_t>{seq}, want_logits);
}

int TokenBatch::add(Token token, int32_t pos, const std::vector<int32_t>& seqs, bool want_logits) {
  if (batch_->n_tokens >= capacity_) throw EngineError("TokenBatch: capacity exceeded");
  if (seqs.empty() || static_cast<int>(seqs.size()) > max_seq_) {
    throw EngineError("TokenBatch: bad sequence id count");
  }
  const int i = batch_->n_tokens++;
  batch_->token[i] = token;
  batch_->pos[i] = pos;
  batch_->n_seq_id[i] = static_cast<int32_t>(seqs.size());
  for (size_t s = 0; s < seqs.size(); ++s) batch_->seq_id[i][s] = seqs[s];
  batch_->logits[i] = want_logits ? 1 : 0;
  n_outputs_ += want_logits ? 1 : 0;
  return i;
}

int TokenBatch::size() const { return batch_->n_tokens; }

// ---- LlamaContext ----

LlamaContext::LlamaContext(const LlamaModel& model, const ContextOptions& opts)
    : model_(model), opts_(opts) {
  llama_context_params p = llama_context_default_params();
  p.n_ctx = opts.n_ctx;
  p.n_batch = opts.n_batch;
  p.n_ubatch = std::min(opts.n_ubatch, opts.n_batch);
  p.n_seq_max = opts.n_seq;
  p.kv_unified = opts.kv_unified;
  const int threads = opts.n_threads > 0 ? opts.n_threads : model.n_threads();
  p.n_threads = threads;
  p.n_threads_batch = threads;
  p.cb_eval = opts.cb_eval;
  p.cb_eval_user_data = opts.cb_eval_user_data;
  if (!model.released_ranges().empty()) {
    releaser_ = std::make_unique<PageReleaser>(&model.released_ranges(), opts.cb_eval, opts.cb_eval_user_data);
    p.cb_eval = &PageReleaser::callback;
    p.cb_eval_user_data = releaser_.get();
  }
  p.no_perf = true;
  Logger quiet;
  ScopedLogCapture capture(quiet);
  ctx_ = llama_init_from_model(model.raw(), p);
  if (!ctx_) {
    throw EngineError(fmt::format("llama.cpp failed to create a context (n_ctx {}, n_seq {}): {}",
                                  opts.n_ctx, opts.n_seq, capture.text()));
  }
}

LlamaContext::~LlamaContext() {
  if (ctx_) llama_free(ctx_);
}

int64_t LlamaContext::released_bytes() const { return releaser_ ? releaser_->released_bytes() : 0; }

int LlamaContext::n_ctx() const { return static_cast<int>(llama_n_ctx(ctx_)); }

void LlamaContext::decode(const TokenBatch& batch) {
  const llama_batch& b = batch.raw();
  out_row_.assign(b.n_tokens, -1);
  split_ = b.n_tokens > opts_.n_batch;
  if (!split_) {
    if (llama_decode(ctx_, b) != 0) throw EngineError("llama_decode failed");
    for (int i = 0; i < b.n_tokens; ++i) out_row_[i] = b.logits[i] ? i : -1;
    return;
  }
  // Larger than n_batch: decode in views and keep each view's logits.
  const size_t n_vocab = model_.n_vocab();
  std::vector<float> rows(static_cast<size_t>(batch.n_outputs()) * n_vocab);
  std::vector<int> out_row(b.n_tokens, -1);
  int row = 0;
  decode_each(batch, [&](int i, const float* logits) {
    std::memcpy(rows.data() + row * n_vocab, logits, n_vocab * sizeof(float));
    out_row[i] = row++;
  });
  split_logits_ = std::move(rows);
  out_row_ = std::move(out_row);
  split_ = true;
}

void LlamaContext::decode_each(const TokenBatch& batch,
                               const std::function<void(int batch_index, const float* logits)>& on_logits) {
  const llama_batch& b = batch.raw();
  out_row_.assign(b.n_tokens, -1);  // logits() is for decode(); these rows are handed out here
  split_ = false;
  for (int start = 0; start < b.n_tokens; start += opts_.n_batch) {
    const int n = std::min(opts_.n_batch, b.n_tokens - start);
    llama_batch view = {n,           b.token + start,    nullptr,         b.pos + start,
                        b.n_seq_id + start, b.seq_id + start, b.logits + start};
    if (llama_decode(ctx_, view) != 0) throw EngineError("llama_decode failed");
    for (int i = 0; i < n; ++i) {
      if (b.logits[start + i]) on_logits(start + i, llama_get_logits_ith(ctx_, i));
    }
  }
}

const float* LlamaContext::logits(int batch_index) const {
  if (batch_index < 0 || batch_index >= static_cast<int>(out_row_.size()) ||
      out_row_[batch_index] < 0) {
    throw EngineError(fmt::format("no logits for batch entry {}", batch_index));
  }
  if (split_) {
    return split_logits_.data() + static_cast<size_t>(out_row_[batch_index]) * model_.n_vocab();
  }
  return llama_get_logits_ith(ctx_, batch_index);
}

void LlamaContext::clear() { llama_memory_clear(llama_get_memory(ctx_), true); }

void LlamaContext::synchronize() { llama_synchronize(ctx_); }

std::vector<std::pair<int, int>> LlamaContext::batch_order(int n_seq, int n_each) const {
  std::vector<std::pair<int, int>> order;
  order.reserve(static_cast<size_t>(n_seq) * n_each);
  // llama_batch_allocr::split_equal: one token per sequence until the next
  // round would pass n_ubatch, so floor(n_ubatch / n_seq) each.
  const bool per_seq_split = n_seq > 1 && !opts_.kv_unified;
  const int n_ubatch = static_cast<int>(llama_n_ubatch(ctx_));
  const int block = per_seq_split ? std::max(1, n_ubatch / n_seq) : n_each;
  for (int start = 0; start < n_each; start += block) {
    const int len = std::min(block, n_each - start);
    for (int s = 0; s < n_seq; ++s) {
      for (int k = 0; k < len; ++k) order.emplace_back(s, start + k);
    }
  }
  return order;
}

}  // namespace cb::engine
