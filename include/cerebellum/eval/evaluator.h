// The evaluator: loads a model once and scores a text in chunks exactly as
// llama-perplexity does (whole text tokenized with BOS, chunk c = tokens
// [c*ctx, (c+1)*ctx), its first token replaced by BOS when the vocab adds
// one, the second half of each chunk scored: ctx - 1 - ctx/2 tokens, n_seq =
// n_batch / ctx chunks per decode). Per-token results are kept so a caller
// (the measurement sweep) can evaluate chunk by chunk, stop adaptively and
// form paired deltas between configurations on the same tokens.
//
//   ReferenceStore store;
//   { Evaluator ref(f16_path, text, {.ctx = 512, .max_chunks = 40});
//     store = ref.build_reference(); }               // F16 released here
//   EvalOptions o = ...; o.tensor_types = base_mix;  // real types, built once
//   Evaluator ev(f16_path, text, o);
//   ev.set_tensor_type("blk.5.ffn_down.weight", "q2_K");  // swap in place
//   ChunkResult r = ev.evaluate_chunk(0, &store);  // nll / kld / top1 per token
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cerebellum/common/log.h"
#include "cerebellum/eval/metrics.h"
#include "cerebellum/eval/reference.h"

namespace cb {
struct Imatrix;
}

namespace cb::eval {

struct EvalOptions {
  int ctx = 512;          // tokens per chunk (llama-perplexity -c)
  int max_chunks = -1;    // chunks to evaluate; -1 = all that fit (--chunks)
  int n_threads = 0;      // 0 = every CPU this run may use (its affinity; -t)
  int n_batch = 2048;     // tokens per decode (-b); ctx <= n_batch packs n_batch/ctx chunks
  int top_k = 32;         // reference store: log-probs kept per token (8*K+8 B/token)
  // Load the model with these real types (tensor -> ggml type name), built
  // from the file one tensor at a time (the `build` writer): e.g. the base
  // mix a sweep measures from. Empty = the file's types.
  std::map<std::string, std::string> tensor_types;
  // Where that built GGUF goes: "" = a temporary file in `work_dir` (or the
  // system temp dir); a path = kept and reused while source and types match.
  std::string built_model_path;
  std::string work_dir;
  // Loaded instead when it was built for these types (read only; engine's
  // ModelLoadOptions::shared_built_path).
  std::string shared_built_model_path;
  // A GGUF built for another set of types from the same file and imatrix
  // (e.g. the base mix): the tensors it holds in their wanted type are copied
  // from it rather than converted again. "" = convert every tensor.
  std::string donor_model_path;
  // The model reference stores are made from, when not this evaluator's
  // file (e.g. a Q8_0 standing in for an F16 that does not fit): its sha256
  // goes into reference_key(). "" = the model file itself.
  std::string reference_model_path;
  const Imatrix* imatrix = nullptr;  // for quantizing tensor_types / swaps (optional)
  int n_gpu_layers = 0;   // layers offloaded to the GPU (-ngl; CPU-only builds ignore it)
  // Cap on the model's device memory (weights + 1.5 GiB for KV and compute):
  // fewer layers are offloaded when the model would not fit. 0 = no cap.
  int64_t max_device_bytes = 0;
  // First scored position in a chunk; -1 = ctx/2 (llama-perplexity's layout).
  // The sweep scores from ctx/8: 1.75x the scored tokens for the same compute
  // (docs/measure.md); PPL comparable with llama-perplexity needs -1.
  int first_scored = -1;
  // Contexts that decode in turn, so that the CPU scores one's logits while
  // the GPU decodes the next chunks in the other (each holds a micro-batch of
  // chunks, at most half of n_batch; a second context's compute buffer on
  // the device). 0 = 2 where the whole decode runs on a GPU (every layer
  // offloaded, and n_batch holds two chunks or more), else 1; 1 or 2 = that many.
  int lanes = 0;
  // On a CPU-only run, repack the loaded matrix weights into llama.cpp's CPU
  // layouts (its default; stock tools' -nr turns it off): about 2x faster
  // over prompt-sized batches, swaps repacked the same way, but the repacked
  // weights stay resident (anonymous memory) where file pages would be
  // given back layer by layer. Skipped where AMX is offered (it segfaults).
  bool cpu_repack = false;
};

// One chunk's per-token values, in scoring order.
struct ChunkResult {
  int chunk = 0;
  std::vector<float> nll_nats;       // -log p(target)
  std::vector<float> p_target;       // p(target)
  std::vector<int32_t> top1;         // the model's argmax token
  // With a reference store (else empty):
  std::vector<float> kld_nats;       // KL(ref || model), top-K + tail bucket
  std::vector<uint8_t> top1_match;   // model argmax == reference argmax
  std::vector<float> p_ref;          // reference p(target)
  std::vector<float> nll_ref_nats;   // reference -log p(target)
};

// Per-token vectors of several chunks, concatenated (in chunk order).
struct TokenSeries {
  std::vector<float> nll_nats, p_target, kld_nats, p_ref, nll_ref_nats;
  std::vector<uint8_t> top1_match;
  void append(const ChunkResult& r);
};

struct EvalSummary {
  int n_chunks = 0;
  int64_t n_tokens = 0;          // scored tokens
  PplStats ppl;
  bool has_reference = false;
  PplStats ref_ppl;              // reference's PPL on the same tokens
  KldStats kld;
  MeanSe top1;                   // agreement with the reference argmax
  DeltaP delta_p;
  double elapsed_s = 0;
  double tokens_per_s = 0;       // evaluated (not only scored) tokens per second
};
EvalSummary summarize(const TokenSeries& s);

// Where an evaluator's time went, summed over its decodes: the decode up to
// its logits being on the host, resolving the output rows, and scoring them
// (log-softmax, KLD, top-K) on the CPU threads (with two lanes, the time spent
// waiting for the last group's scoring, while the GPU decodes the current one:
// decode + score is then the GPU's time, the scoring hidden in it); over its
// tensor swaps: the caller's time in them (restoring, waiting for or doing
// the conversion, uploading); and the background converter's busy time,
// which overlaps the rest (prefetch_tensor_types).
struct EvalTimings {
  double decode_s = 0;
  double fetch_s = 0;
  double score_s = 0;
  int64_t n_decodes = 0;
  double swap_s = 0;
  double convert_ahead_s = 0;
  int64_t n_overlapped = 0;  // evaluate_then calls whose last scoring ran on past the call
  EvalTimings& operator+=(const EvalTimings& o) {
    decode_s += o.decode_s, fetch_s += o.fetch_s, score_s += o.score_s, n_decodes += o.n_decodes;
    swap_s += o.swap_s, convert_ahead_s += o.convert_ahead_s, n_overlapped += o.n_overlapped;
    return *this;
  }
  EvalTimings operator-(const EvalTimings& o) const {
    return {decode_s - o.decode_s, fetch_s - o.fetch_s, score_s - o.score_s, n_decodes - o.n_decodes,
            swap_s - o.swap_s, convert_ahead_s - o.convert_ahead_s, n_overlapped - o.n_overlapped};
  }
};

class Evaluator {
 public:
  // Loads the model (memory-mapped, swappable) and tokenizes the text.
  // Throws InputError (bad model file, text too short: < 2*ctx tokens, as
  // llama-perplexity), EngineError (llama.cpp failure), RecipeError.
  Evaluator(const std::string& model_path, const std::string& text, const EvalOptions& opts = {},
            const Logger& logger = {});
  ~Evaluator();
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  const EvalOptions& options() const { return opts_; }
  int n_chunks() const;            // chunks this evaluator will score
  int first_scored() const;        // ctx/2 unless options().first_scored says otherwise
  int scored_per_chunk() const;    // ctx - 1 - first_scored()
  int chunks_per_decode() const;   // n_seq: chunks per step (decoded in lane-sized groups)
  EvalTimings timings() const;  // so far (the converter's busy time up to now)
  int64_t n_text_tokens() const;
  int n_vocab() const;
  const std::string& text_sha256() const { return text_sha256_; }
  const std::string& model_sha256() const;  // of the model file (computed once)
  // The key a reference store built by this evaluator carries.
  ReferenceKey reference_key() const;

  // Chunks [first, first + count), a lane's share per decode. With `ref`, also KLD,
  // top-1 agreement, p_ref (ref must cover the chunks: MismatchError).
  std::vector<ChunkResult> evaluate(int first, int count, const ReferenceStore* ref = nullptr);
  ChunkResult evaluate_chunk(int chunk, const ReferenceStore* ref = nullptr);
  // evaluate() whose results may come later: with two lanes the last group's
  // scoring is left running and `then` gets the results on this thread once
  // it is done, from the next evaluate / evaluate_then (whose first decode
  // then overlaps it) or finish_pending(); with one lane, before returning.
  // run(), extend_reference*() and the destructor finish it first (the
  // destructor without calling `then`). `ref` must not change meanwhile.
  using ResultsFn = std::function<void(std::vector<ChunkResult>)>;
  void evaluate_then(int first, int count, const ReferenceStore* ref, ResultsFn then);
  void finish_pending();
  // All n_chunks(), with progress ("eval", chunks done / total).
  EvalSummary run(const ReferenceStore* ref = nullptr, const ProgressFn& progress = {},
                  TokenSeries* series = nullptr);

  // This model's top-K distributions on all n_chunks() chunks.
  ReferenceStore build_reference(const ProgressFn& progress = {});
  // An empty store with this evaluator's key, to be filled chunk by chunk.
  ReferenceStore empty_reference() const;
  // Fills `store` (this evaluator's key) up to chunk `n_chunks` (exclusive)
  // with this model's current distributions.
  void extend_reference(ReferenceStore& store, int n_chunks, const ProgressFn& progress = {});
  // The same with the distributions of the model in `reference_path` (the
  // source, or EvalOptions::reference_model_path: same tensor names and
  // shapes, any types), computed by this loaded model with its weights
  // re-pointed at that file's mapped bytes (engine::TensorSwapper::view_file)
  // and restored after: bit-identical to loading that file, with no second
  // model in memory and its pages given back layer by layer. Only where
  // can_view_reference(reference_path); swaps in place are restored.
  // MismatchError: a tensor or a graph-shaping metadata key differs.
  void extend_reference_from(const std::string& reference_path, ReferenceStore& store, int n_chunks,
                             const ProgressFn& progress = {});
  // Whether extend_reference_from(reference_path) computes that file's model
  // holding one layer of it at a time: every weight in host memory, its pages
  // released layer by layer (a CPU model loaded from a mapped file), and the
  // file's graph metadata (hyperparameters, vocab) this model's.
  bool can_view_reference(const std::string& reference_path) const;

  // In-place type swaps (see engine/eval_swap.h), always converted from the
  // model file (the full-precision source): set_tensor_type runs the tensor
  // in the real type; set_tensor_type_simulated keeps the loaded type with
  // data dequant(quant_type(source)). restore points back at the loaded bytes.
  void set_tensor_type(const std::string& tensor, const std::string& type);
  void set_tensor_type_simulated(const std::string& tensor, const std::string& type);
  void restore_tensor(const std::string& tensor);
  void restore_all();
  // The next units' tensor types, in the order they will be set: converted
  // on a background thread for the set_tensor_type calls that follow, which
  // then take the bytes, so the conversions overlap the evaluations. Held
  // bytes stay within `max_bytes` (the units from the first, as far as they
  // fit); each call replaces the last list. False if nothing fits.
  bool prefetch_tensor_types(const std::vector<std::map<std::string, std::string>>& units, int64_t max_bytes);
  int64_t prefetched_swaps() const;  // set_tensor_type calls served from a prefetch
  // Swappable tensors and their loaded types.
  std::map<std::string, std::string> tensor_types() const;
  // Whether set_tensor_type can give the tensor any type (false where an op
  // needs floats, e.g. ssm_conv1d).
  bool takes_any_type(const std::string& tensor) const;

 private:
  std::vector<ChunkResult> evaluate_impl(int first, int count, const ReferenceStore* ref,
                                         ReferenceStore* capture, ResultsFn* then = nullptr);
  double wait_scoring();  // for the scoring thread; hands a deferred group's results over
  void decode_group(int first, int n_group, int lane);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  EvalOptions opts_;
  std::string model_path_;
  std::string text_sha256_;
  mutable std::string model_sha256_;
  EvalTimings timings_;
};

// Loads the store at `path` if it exists and matches `ev.reference_key()`
// (MismatchError if it exists for something else), else builds it with `ev`
// and saves it there. Empty path: build without saving. A store that is
// truncated or fails its checksum is a damaged cache: rebuilt, with a warning.
// `view_of` non-empty: the store's model is that file, computed through `ev`
// (Evaluator::extend_reference_from; ev.can_view_reference(view_of) must hold).
ReferenceStore load_or_build_reference(Evaluator& ev, const std::string& path,
                                       const ProgressFn& progress = {}, const Logger& logger = {},
                                       const std::string& view_of = "");

}  // namespace cb::eval
