#include "cerebellum/eval/evaluator.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/imatrix/imatrix.h"
#include "common/parallel.h"
#include "engine/engine.h"
#include "engine/eval_swap.h"
#include "engine/llama_model.h"
#include "eval/group_scoring.h"
#include "eval/logits.h"

namespace cb::eval {

using engine::Token;

// A context and its batch. With two lanes they decode in turn: the CPU
// scores one lane's logits while the GPU decodes the other's chunks.
struct Lane {
  std::unique_ptr<engine::LlamaContext> ctx;
  std::unique_ptr<engine::TokenBatch> batch;
  std::vector<int> batch_index;  // of token k of sequence s (s * ctx + k) in the lane's last decode
};

struct Evaluator::Impl {
  std::unique_ptr<engine::LlamaModel> model;
  std::vector<Lane> lanes;  // 1, or 2 (EvalOptions::lanes)
  std::unique_ptr<engine::TensorSwapper> swapper;
  std::vector<Token> tokens;
  int n_seq = 1;       // chunks per evaluation step (n_batch / ctx)
  int lane_seq = 1;    // chunks per decode (a lane's share of a step)
  int n_chunks = 0;
  int n_threads = 1;
  // Imatrix weights per tensor (sums / counts), computed once: every swap and
  // every prefetch (the next 32 units, re-planned each unit) asks again.
  std::map<std::string, std::vector<float>> weights;
  const std::vector<float>& weights_of(const Imatrix* imatrix, const std::string& tensor) {
    auto it = weights.find(tensor);
    if (it == weights.end()) {
      it = weights.emplace(tensor, imatrix ? imatrix->weights_for(tensor) : std::vector<float>{}).first;
    }
    return it->second;
  }
  // The last group's scoring of an evaluate_then() call, still running on
  // `background` (reading `lane`'s logits) when the call returned.
  struct Deferred {
    std::vector<ChunkResult> results;
    ResultsFn then;
    int lane = 0;
    std::shared_ptr<std::atomic<int>> non_finite_chunk;
  };
  std::optional<Deferred> deferred;
  BackgroundScoring background;  // last: joined before the lanes it reads go
};

namespace {

// Two lanes where the whole decode runs on a GPU (the CPU is idle meanwhile)
// and a step has at least two chunks; on the CPU both would share the same
// cores (with a partial offload too: not measured, so not the default).
int lane_count(const EvalOptions& opts, const engine::LlamaModel& model, int n_seq) {
  if (n_seq < 2) return 1;
  if (opts.lanes > 0) return std::min(opts.lanes, 2);
  return model.fully_offloaded() ? 2 : 1;
}

// A lane decodes one micro-batch's worth of chunks (llama.cpp's n_ubatch,
// 512 tokens), at most half a step: the smaller the share, the less of the
// scoring is left after the last decode of a step.
int lane_chunks(int ctx, int n_seq) {
  constexpr int kUbatchTokens = 512;  // engine::ContextOptions::n_ubatch
  return std::clamp(kUbatchTokens / ctx, 1, n_seq / 2);
}

std::map<std::string, std::vector<float>> imatrix_weights(const EvalOptions& opts) {
  std::map<std::string, std::vector<float>> out;
  if (opts.tensor_types.empty() || !opts.imatrix) return out;
  // Every entry, not only the converted tensors': a built model's origin key
  // (QuantizeJob::stamp_origin) hashes the whole imatrix, as `build`'s does.
  for (const auto& [name, entry] : opts.imatrix->entries) {
    auto w = opts.imatrix->weights_for(name);
    if (!w.empty()) out[name] = std::move(w);
  }
  return out;
}

}  // namespace

Evaluator::Evaluator(const std::string& model_path, const std::string& text,
                     const EvalOptions& opts, const Logger& logger)
    : impl_(std::make_unique<Impl>()), opts_(opts), model_path_(model_path) {
  if (opts.ctx < 8) throw UsageError(fmt::format("context {} is too small (min 8)", opts.ctx));
  if (opts.first_scored >= opts.ctx - 1) {
    throw UsageError(fmt::format("first scored position {} leaves nothing to score in a context of {}",
                                 opts.first_scored, opts.ctx));
  }
  text_sha256_ = sha256_bytes(text.data(), text.size());
  engine::ModelLoadOptions lo;
  lo.n_threads = opts.n_threads;
  lo.n_gpu_layers = opts.n_gpu_layers;
  lo.max_device_bytes = opts.max_device_bytes;
  lo.swappable = true;
  lo.tensor_types = opts.tensor_types;
  lo.built_path = opts.built_model_path;
  lo.shared_built_path = opts.shared_built_model_path;
  lo.work_dir = opts.work_dir;
  lo.donor_path = opts.donor_model_path;
  lo.imatrix = imatrix_weights(opts);
  lo.cpu_repack = opts.cpu_repack;
  lo.logger = logger;
  impl_->model = engine::LlamaModel::load(model_path, lo);
  impl_->n_threads = impl_->model->n_threads();
  // top_k <= 0: keep the whole distribution (exact KLD, 8*n_vocab B/token).
  if (opts_.top_k <= 0 || opts_.top_k > impl_->model->n_vocab()) opts_.top_k = impl_->model->n_vocab();
  if (impl_->model->add_eos()) {
    throw InputError(fmt::format("{}: vocab appends EOS; perplexity is undefined", model_path));
  }
  // Same tokenization as llama-perplexity: whole text, add_special = true.
  impl_->tokens = impl_->model->tokenize(text, /*add_special=*/true, /*parse_special=*/false);
  const int64_t n_tok = static_cast<int64_t>(impl_->tokens.size());
  if (n_tok < 2 * static_cast<int64_t>(opts.ctx)) {
    throw InputError(fmt::format(
        "the text tokenizes to {} tokens; a context of {} needs at least {}", n_tok, opts.ctx,
        2 * opts.ctx));
  }
  const int available = static_cast<int>(n_tok / opts.ctx);
  impl_->n_chunks = opts.max_chunks < 0 ? available : std::min(opts.max_chunks, available);
  if (impl_->n_chunks < 1) throw UsageError("no chunks to evaluate (--chunks 0?)");
  impl_->n_seq = std::max(1, opts.n_batch / opts.ctx);
  const int n_lanes = lane_count(opts_, *impl_->model, impl_->n_seq);
  impl_->lane_seq = n_lanes == 1 ? impl_->n_seq : lane_chunks(opts_.ctx, impl_->n_seq);
  for (int l = 0; l < n_lanes; ++l) {
    const int n_seq = impl_->lane_seq;
    Lane lane;
    lane.ctx = std::make_unique<engine::LlamaContext>(
        *impl_->model, engine::ContextOptions{.n_ctx = n_seq * opts.ctx,
                                              .n_batch = std::min(opts.n_batch, n_seq * opts.ctx),
                                              .n_seq = n_seq,
                                              .n_threads = opts.n_threads});
    lane.batch = std::make_unique<engine::TokenBatch>(n_seq * opts.ctx);
    impl_->lanes.push_back(std::move(lane));
  }
  impl_->swapper = std::make_unique<engine::TensorSwapper>(*impl_->model, model_path);
}

Evaluator::~Evaluator() = default;

int Evaluator::n_chunks() const { return impl_->n_chunks; }
int Evaluator::first_scored() const {
  return opts_.first_scored < 0 ? opts_.ctx / 2 : opts_.first_scored;
}
int Evaluator::scored_per_chunk() const { return opts_.ctx - 1 - first_scored(); }
int Evaluator::chunks_per_decode() const { return impl_->n_seq; }
int64_t Evaluator::n_text_tokens() const { return static_cast<int64_t>(impl_->tokens.size()); }
int Evaluator::n_vocab() const { return impl_->model->n_vocab(); }

const std::string& Evaluator::model_sha256() const {
  if (model_sha256_.empty()) model_sha256_ = sha256_file(model_path_);
  return model_sha256_;
}

ReferenceKey Evaluator::reference_key() const {
  const std::string sha = opts_.reference_model_path.empty() || opts_.reference_model_path == model_path_
                              ? model_sha256()
                              : sha256_file(opts_.reference_model_path);
  return {sha, text_sha256_, opts_.ctx, n_chunks(), opts_.top_k, first_scored()};
}

namespace {

// NaN/Inf logits are never printed as a PPL: the error names the tensor.
[[noreturn]] void throw_non_finite(const std::string& model_path, int chunk) {
  const std::optional<std::string> bad = engine::first_non_finite_tensor(model_path);
  if (bad) {
    throw InputError(fmt::format("{}: tensor {} holds NaN/Inf values (non-finite logits at chunk {})", model_path,
                                 *bad, chunk));
  }
  throw EngineError(fmt::format("{}: non-finite logits at chunk {}, though every tensor of the file is finite: "
                                "the computation overflows (a type too coarse for some tensor?)", model_path, chunk));
}

void size_result(ChunkResult& r, int chunk, int n_scored, bool with_ref) {
  r.chunk = chunk;
  r.nll_nats.resize(n_scored);
  r.p_target.resize(n_scored);
  r.top1.resize(n_scored);
  if (with_ref) {
    r.kld_nats.resize(n_scored);
    r.top1_match.resize(n_scored);
    r.p_ref.resize(n_scored);
    r.nll_ref_nats.resize(n_scored);
  }
}

// The logits of each scored token (sequence-major). Resolved on this thread:
// llama_get_logits_ith synchronizes the backend and may reorder outputs,
// which is not thread-safe (garbage rows with many threads, and on CUDA).
std::vector<const float*> scored_rows(const engine::LlamaContext& lctx, const std::vector<int>& batch_index,
                                      int n_group, int ctx, int first_scored, int n_scored) {
  std::vector<const float*> rows(static_cast<size_t>(n_group) * n_scored);
  for (int j = 0; j < n_group * n_scored; ++j) {
    rows[j] = lctx.logits(batch_index[static_cast<size_t>(j / n_scored) * ctx + first_scored + j % n_scored]);
  }
  return rows;
}

void check_reference_covers(const ReferenceStore& ref, const Evaluator& ev, int last_chunk) {
  const ReferenceKey& k = ref.key();
  if (k.text_sha256 != ev.text_sha256() || k.ctx != ev.options().ctx ||
      ref.n_vocab() != ev.n_vocab() || k.first_scored != ev.first_scored() ||
      ref.scored_per_chunk() != ev.scored_per_chunk()) {
    throw MismatchError(fmt::format(
        "reference store is for another text/context/vocab/layout (ctx {} vs {}, vocab {} vs {}, "
        "first scored {} vs {})",
        k.ctx, ev.options().ctx, ref.n_vocab(), ev.n_vocab(), k.first_scored, ev.first_scored()));
  }
  if (last_chunk >= ref.n_filled()) {
    throw MismatchError(fmt::format("reference store has {} chunks; chunk {} requested",
                                    ref.n_filled(), last_chunk));
  }
}

}  // namespace

std::vector<ChunkResult> Evaluator::evaluate(int first, int count, const ReferenceStore* ref) {
  return evaluate_impl(first, count, ref, nullptr, nullptr);
}

// Decodes chunks [first, first + n_group) as sequences 0..n_group-1 of one
// batch: llama-perplexity's perplexity() layout and micro-batches, the
// tokens added in the order those compute them (no output rows reordered).
void Evaluator::decode_group(int first, int n_group, int lane_index) {
  const int ctx = opts_.ctx;
  const int first_scored = this->first_scored();
  const bool add_bos = impl_->model->add_bos();
  Lane& lane = impl_->lanes[lane_index];
  engine::TokenBatch& batch = *lane.batch;
  batch.clear();
  lane.batch_index.assign(static_cast<size_t>(n_group) * ctx, -1);
  for (const auto& [s, k] : lane.ctx->batch_order(n_group, ctx)) {
    const size_t start = static_cast<size_t>(first + s) * ctx;
    const Token tok = (k == 0 && add_bos) ? impl_->model->bos() : impl_->tokens[start + k];
    lane.batch_index[static_cast<size_t>(s) * ctx + k] = batch.add(tok, k, s, k >= first_scored);
  }
  lane.ctx->clear();
  lane.ctx->decode(batch);
}

std::vector<ChunkResult> Evaluator::evaluate_impl(int first, int count, const ReferenceStore* ref,
                                                  ReferenceStore* capture, ResultsFn* then) {
  if (first < 0 || count < 0 || first + count > n_chunks()) {
    throw UsageError(fmt::format("chunks [{}, {}) out of range (0..{})", first, first + count,
                                 n_chunks()));
  }
  if (ref && count > 0) check_reference_covers(*ref, *this, first + count - 1);
  const int ctx = opts_.ctx;
  const int first_scored = this->first_scored();
  const int n_scored = scored_per_chunk();
  const auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  std::vector<ChunkResult> results(count);
  auto non_finite_chunk = std::make_shared<std::atomic<int>>(-1);
  const int n_lanes = static_cast<int>(impl_->lanes.size()), per = impl_->lane_seq;
  const int n_groups = (count + per - 1) / per;
  // A scoring deferred by the last call still reads its lane's logits: this
  // call's first decode goes to the other lane.
  const int lane0 = impl_->deferred ? (impl_->deferred->lane + 1) % n_lanes : 0;
  const auto lane_of = [&](int gi) { return (lane0 + gi) % n_lanes; };
  const auto launch = [&](int gi) { decode_group(first + gi * per, std::min(per, count - gi * per), lane_of(gi)); };
  for (int gi = 0; gi < n_groups; ++gi) {
    const int g = gi * per, n_group = std::min(per, count - g);
    Lane& lane = impl_->lanes[lane_of(gi)];
    const auto t0 = std::chrono::steady_clock::now();
    double waited_s = 0;  // for the scoring thread, before the sync
    if (gi == 0 || n_lanes == 1) launch(gi);
    if (n_lanes > 1 && gi + 1 < n_groups) {
      // The next group goes to the GPU before this one is waited for (no
      // gap between decodes), once the other lane's last logits are scored.
      waited_s = wait_scoring();
      launch(gi + 1);
    }
    lane.ctx->synchronize();
    const auto t1 = std::chrono::steady_clock::now();
    for (int s = 0; s < n_group; ++s) size_result(results[g + s], first + g + s, n_scored, ref != nullptr);
    GroupScoring job{scored_rows(*lane.ctx, lane.batch_index, n_group, ctx, first_scored, n_scored),
                     &results[g], &impl_->tokens[static_cast<size_t>(first + g) * ctx + first_scored + 1],
                     ctx, n_scored, impl_->model->n_vocab(), impl_->n_threads, ref, capture,
                     non_finite_chunk.get()};
    const auto t2 = std::chrono::steady_clock::now();
    if (n_lanes > 1) {
      timings_.score_s += wait_scoring();
      impl_->background.start(std::move(job));
    } else {
      job.run();
      timings_.score_s += seconds(t2, std::chrono::steady_clock::now());
    }
    timings_.decode_s += seconds(t0, t1) - waited_s;
    timings_.score_s += waited_s;
    timings_.fetch_s += seconds(t1, t2);
    ++timings_.n_decodes;
  }
  if (then && n_lanes > 1 && n_groups > 0) {
    // The results' buffer moves with the vector: the scoring's pointers hold.
    impl_->deferred = Impl::Deferred{std::move(results), std::move(*then), lane_of(n_groups - 1),
                                     std::move(non_finite_chunk)};
    ++timings_.n_overlapped;
    return {};
  }
  timings_.score_s += wait_scoring();
  if (*non_finite_chunk >= 0) throw_non_finite(model_path_, *non_finite_chunk);
  if (then) (*then)(std::move(results));
  return results;
}

void Evaluator::evaluate_then(int first, int count, const ReferenceStore* ref, ResultsFn then) {
  evaluate_impl(first, count, ref, nullptr, &then);
}

double Evaluator::wait_scoring() {
  const double waited_s = impl_->background.wait();
  if (impl_->deferred) {
    Impl::Deferred d = std::move(*impl_->deferred);
    impl_->deferred.reset();
    if (*d.non_finite_chunk >= 0) throw_non_finite(model_path_, *d.non_finite_chunk);
    d.then(std::move(d.results));
  }
  return waited_s;
}

void Evaluator::finish_pending() { timings_.score_s += wait_scoring(); }

ChunkResult Evaluator::evaluate_chunk(int chunk, const ReferenceStore* ref) {
  return std::move(evaluate(chunk, 1, ref).front());
}

EvalSummary Evaluator::run(const ReferenceStore* ref, const ProgressFn& progress,
                           TokenSeries* series) {
  finish_pending();
  const auto t0 = std::chrono::steady_clock::now();
  TokenSeries local;
  TokenSeries& all = series ? *series : local;
  for (int c = 0; c < n_chunks(); c += impl_->n_seq) {
    const int n = std::min(impl_->n_seq, n_chunks() - c);
    for (const ChunkResult& r : evaluate(c, n, ref)) all.append(r);
    if (progress) progress({"eval", c + n, n_chunks(), fmt::format("chunk {}", c + n)});
  }
  EvalSummary s = summarize(all);
  s.n_chunks = n_chunks();
  s.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.tokens_per_s = s.elapsed_s > 0 ? static_cast<double>(n_chunks()) * opts_.ctx / s.elapsed_s : 0;
  return s;
}

ReferenceStore Evaluator::empty_reference() const {
  return ReferenceStore(reference_key(), n_vocab(), scored_per_chunk());
}

void Evaluator::extend_reference(ReferenceStore& store, int n_chunks, const ProgressFn& progress) {
  finish_pending();  // the store may grow: nothing reads it meanwhile
  check_same_key(reference_key(), store.key(), "extend_reference");
  n_chunks = std::min(n_chunks, this->n_chunks());
  for (int c = store.n_filled(); c < n_chunks; c += impl_->n_seq) {
    const int n = std::min(impl_->n_seq, n_chunks - c);
    evaluate_impl(c, n, nullptr, &store);
    store.set_filled(c + n);
    if (progress) progress({"reference", c + n, n_chunks, fmt::format("chunk {}", c + n)});
  }
}

bool Evaluator::can_view_reference(const std::string& reference_path) const {
  return !impl_->model->released_ranges().empty() && impl_->swapper->all_on_host() &&
         engine::graph_metadata_difference(engine::GgufFile(model_path_), engine::GgufFile(reference_path)).empty();
}

void Evaluator::extend_reference_from(const std::string& reference_path, ReferenceStore& store, int n_chunks,
                                      const ProgressFn& progress) {
  finish_pending();
  check_same_key(reference_key(), store.key(), "extend_reference_from");
  if (store.n_filled() >= std::min(n_chunks, this->n_chunks())) return;
  const std::string key =
      engine::graph_metadata_difference(engine::GgufFile(model_path_), engine::GgufFile(reference_path));
  if (!key.empty()) {
    throw MismatchError(fmt::format("{}: metadata {} differs from {}'s: its graph is another", reference_path, key,
                                    model_path_));
  }
  const auto range = impl_->swapper->view_file(reference_path);
  impl_->model->begin_view(range);
  const auto end = [&] {
    impl_->model->end_view(range);
    impl_->swapper->restore_all();
  };
  try {
    extend_reference(store, n_chunks, progress);
  } catch (...) {
    end();
    throw;
  }
  end();
}

ReferenceStore Evaluator::build_reference(const ProgressFn& progress) {
  ReferenceStore store = empty_reference();
  extend_reference(store, n_chunks(), progress);
  return store;
}

namespace {
// Runs a swap, adding its time to the timings' swap_s.
template <typename F>
void timed_swap(EvalTimings& timings, F&& swap) {
  const auto t0 = std::chrono::steady_clock::now();
  swap();
  timings.swap_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

void Evaluator::set_tensor_type(const std::string& tensor, const std::string& type) {
  timed_swap(timings_, [&] {
    const std::vector<float>& weights = impl_->weights_of(opts_.imatrix, tensor);
    impl_->swapper->set_type(tensor, type, weights.empty() ? nullptr : &weights);
  });
}

void Evaluator::set_tensor_type_simulated(const std::string& tensor, const std::string& type) {
  timed_swap(timings_, [&] {
    const std::vector<float>& weights = impl_->weights_of(opts_.imatrix, tensor);
    impl_->swapper->set_simulated(tensor, type, weights.empty() ? nullptr : &weights);
  });
}

bool Evaluator::prefetch_tensor_types(const std::vector<std::map<std::string, std::string>>& units,
                                      int64_t max_bytes) {
  std::vector<engine::TensorSwapper::Ahead> ahead;
  for (const auto& types : units) {
    for (const auto& [tensor, type] : types) {
      ahead.push_back({tensor, type, impl_->weights_of(opts_.imatrix, tensor)});
    }
  }
  return impl_->swapper->prefetch(std::move(ahead), max_bytes);
}

int64_t Evaluator::prefetched_swaps() const { return impl_->swapper->prefetched_swaps(); }

EvalTimings Evaluator::timings() const {
  EvalTimings t = timings_;
  t.convert_ahead_s = impl_->swapper->convert_ahead_s();
  return t;
}
void Evaluator::restore_tensor(const std::string& tensor) {
  timed_swap(timings_, [&] { impl_->swapper->restore(tensor); });
}
void Evaluator::restore_all() {
  timed_swap(timings_, [&] { impl_->swapper->restore_all(); });
}
bool Evaluator::takes_any_type(const std::string& tensor) const {
  return impl_->model->takes_any_type(tensor);
}

std::map<std::string, std::string> Evaluator::tensor_types() const {
  return impl_->swapper->tensor_types();
}

void TokenSeries::append(const ChunkResult& r) {
  nll_nats.insert(nll_nats.end(), r.nll_nats.begin(), r.nll_nats.end());
  p_target.insert(p_target.end(), r.p_target.begin(), r.p_target.end());
  kld_nats.insert(kld_nats.end(), r.kld_nats.begin(), r.kld_nats.end());
  p_ref.insert(p_ref.end(), r.p_ref.begin(), r.p_ref.end());
  nll_ref_nats.insert(nll_ref_nats.end(), r.nll_ref_nats.begin(), r.nll_ref_nats.end());
  top1_match.insert(top1_match.end(), r.top1_match.begin(), r.top1_match.end());
}

EvalSummary summarize(const TokenSeries& s) {
  EvalSummary out;
  out.n_tokens = static_cast<int64_t>(s.nll_nats.size());
  out.ppl = ppl_from_nll(s.nll_nats);
  out.has_reference = !s.kld_nats.empty();
  if (out.has_reference) {
    out.ref_ppl = ppl_from_nll(s.nll_ref_nats);
    out.kld = kld_stats(s.kld_nats);
    out.top1 = fraction(s.top1_match);
    out.delta_p = delta_p(s.p_target, s.p_ref);
  }
  return out;
}

ReferenceStore load_or_build_reference(Evaluator& ev, const std::string& path,
                                       const ProgressFn& progress, const Logger& logger, const std::string& view_of) {
  const auto fill = [&](ReferenceStore& store) {
    const int n = store.key().n_chunks;
    view_of.empty() ? ev.extend_reference(store, n, progress) : ev.extend_reference_from(view_of, store, n, progress);
  };
  if (!path.empty() && std::filesystem::exists(path)) {
    try {
      ReferenceStore store = ReferenceStore::load(path, ev.reference_key());
      if (store.n_filled() < store.key().n_chunks) {  // left partly filled by a sweep
        fill(store);
        store.save(path);
      }
      return store;
    } catch (const InputError& e) {  // truncated or damaged: a cache, rebuilt
      logger.warn(fmt::format("reference cache is damaged ({}); rebuilding it", e.what()));
    }
  }
  ReferenceStore store = ev.empty_reference();
  fill(store);
  if (!path.empty()) store.save(path);
  return store;
}

}  // namespace cb::eval
