// Minimal adapter over llama.cpp's model / context / vocab / decode API.
// Internal to the library (src/engine/): callers outside src/ never see it.
//
//   auto model = LlamaModel::load("m.gguf", {.n_threads = 2});
//   LlamaContext ctx(*model, {.n_ctx = 2048, .n_batch = 2048, .n_seq = 4});
//   TokenBatch batch(2048);
//   batch.add(tok, /*pos=*/0, /*seq=*/0, /*want_logits=*/true);
//   ctx.decode(batch);
//   const float* l = ctx.logits(0);   // n_vocab floats for batch entry 0
//
// Models are always loaded with use_extra_bufts = false: weight repacking
// (AMX) segfaults on the quantized cb-* models on this CPU (shared/README.md).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cerebellum/common/log.h"
#include "engine/engine.h"

struct llama_model;
struct llama_context;
struct llama_vocab;
struct llama_batch;
struct ggml_tensor;
struct ggml_backend_buffer_type;
struct gguf_context;

namespace cb::engine {

class PageReleaser;  // mapped_pages.h
using Token = int32_t;

struct ModelLoadOptions {
  int n_threads = 0;     // 0 = thread_count(0): every CPU this run may use
  int n_gpu_layers = 0;  // layers to offload (CPU-only builds ignore it)
  // Cap on the model's device bytes: n_gpu_layers is lowered to the most
  // layers whose weights plus `device_reserve_bytes` (KV cache, compute
  // buffers) fit. 0 = no cap.
  int64_t max_device_bytes = 0;
  int64_t device_reserve_bytes = kDeviceReserveBytes;
  // Record the weight tensors' handles (tensor_handles()) so a TensorSwapper
  // can re-point them (eval_swap.h). The weights stay memory-mapped.
  bool swappable = false;
  // Tensor name -> ggml type name ("q4_K"): the model is loaded from a GGUF
  // built from the file with these types (the same writer and bytes as
  // `build`, one slab at a time), so it runs with the real types.
  std::map<std::string, std::string> tensor_types;
  // Where that GGUF goes: "" = a temporary file in `work_dir` (or the system
  // temp dir), removed after loading (the mapping keeps it readable); a path
  // = kept there and reused by a later load with the same source and types.
  std::string built_path;
  std::string work_dir;
  // A GGUF another process built for the same source, types and imatrix
  // (e.g. `measure --reference-only` for every shard): loaded when its key
  // matches, never written. Otherwise built_path is used as above.
  std::string shared_built_path;
  // A GGUF built this way from the same source and imatrix (e.g. the base
  // mix): tensors it holds in their wanted type are copied from it, not
  // converted again (QuantizeJob::donor). "" = convert every tensor.
  std::string donor_path;
  // Optional importance matrix per tensor name (sums / counts, n_per_row
  // floats or n_expert*n_per_row for 3-D) used by the quantizer for
  // tensor_types; absent names quantize without one.
  std::map<std::string, std::vector<float>> imatrix;
  // Unmap the file's pages of each layer's CPU weights once a micro-batch
  // has used them (mapped_pages.h): the process then holds about one layer
  // of the file at a time, not all of it; the page cache keeps the pages.
  // Not done when every layer is on a GPU (the file then feeds no layer).
  bool release_mapped_pages = true;
  // Repack the CPU's matrix weights into llama.cpp's CPU layouts
  // (cpu_repack_buffer_type(), engine.h; stock tools do it by default):
  // about 2x faster on prompt-sized batches, but the repacked weights are
  // copies held in anonymous memory for the model's lifetime, where file
  // pages are given back layer by layer. Ignored where unavailable.
  bool cpu_repack = false;
  Logger logger;  // receives llama.cpp's log while loading
};

class LlamaModel {
 public:
  // Throws InputError (bad file) or EngineError (llama.cpp refused it).
  static std::unique_ptr<LlamaModel> load(const std::string& path,
                                          const ModelLoadOptions& opts = {});
  ~LlamaModel();
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

  const std::string& path() const { return path_; }  // the file given to load()
  int n_threads() const { return n_threads_; }
  // Every layer and the output on a GPU (the CPU keeps only the input rows).
  bool fully_offloaded() const { return fully_offloaded_; }
  int32_t n_vocab() const;
  int32_t n_layer() const;
  Token bos() const;            // -1 if none
  bool add_bos() const;         // the vocab wants BOS prepended
  bool add_eos() const;
  // The model's default chat template applied to one user message, the assistant turn opened;
  // "" when the model has none or llama.cpp does not know it.
  std::string chat_prompt(const std::string& user_message) const;
  bool is_eog(Token token) const;  // end of generation (EOS, EOT, ...)

  // add_special: BOS/EOS as the vocab wants; parse_special: "<s>" etc. in the
  // text become special tokens. llama-perplexity uses (true, false).
  std::vector<Token> tokenize(const std::string& text, bool add_special,
                              bool parse_special = false) const;
  std::string token_to_piece(Token token, bool special = false) const;
  std::string detokenize(const std::vector<Token>& tokens, bool remove_special = false,
                         bool unparse_special = false) const;

  // Swappable models only: the loaded tensors of a GGUF name (empty if absent
  // or not swappable; more than one when the model duplicates a tensor, e.g.
  // tied embeddings). Data lives in backend buffers: ggml_backend_tensor_get/set.
  std::vector<ggml_tensor*> tensor_handles(const std::string& name) const;
  const std::map<std::string, std::vector<ggml_tensor*>>& all_tensor_handles() const {
    return tensors_;
  }

  // Swappable models only: whether every op reading the tensor takes any
  // type (matrix products, row lookups); false e.g. for ssm_conv1d (F32 only).
  bool takes_any_type(const std::string& name) const { return tensors_.count(name) && !float_only_.count(name); }
  // The repacking buffer type when the weights were repacked
  // (ModelLoadOptions::cpu_repack), else nullptr; and whether llama.cpp's
  // loader would place this tensor there had it a type the repacking takes:
  // read only as the weight of matrix products (2-D MUL_MAT, 3-D
  // MUL_MAT_ID), as the loader decides.
  ::ggml_backend_buffer_type* repack_buffer_type() const { return repack_buft_; }
  bool repackable(const std::string& name) const {
    return repack_buft_ && matmul_.count(name) && !other_use_.count(name);
  }
  // Where the model file is mapped, when its pages are released layer by
  // layer (ModelLoadOptions::release_mapped_pages); else empty.
  const std::vector<std::pair<uintptr_t, uintptr_t>>& released_ranges() const { return released_ranges_; }
  // While a TensorSwapper::view_file lasts: the model's own file pages given
  // back at once (none is read meanwhile) and the viewed file's released
  // layer by layer as the model's are; end_view undoes it. No-ops on a model
  // whose pages are not released.
  void begin_view(std::pair<uintptr_t, uintptr_t> view_range);
  void end_view(std::pair<uintptr_t, uintptr_t> view_range);

  llama_model* raw() const { return model_; }

 private:
  const llama_vocab* vocab() const;
  LlamaModel() = default;
  friend struct ModelLoader;
  std::string path_;
  int n_threads_ = 1;
  bool fully_offloaded_ = false;
  llama_model* model_ = nullptr;
  std::map<std::string, std::vector<ggml_tensor*>> tensors_;
  std::set<std::string> float_only_;
  std::set<std::string> matmul_, other_use_;  // read as a matrix product's weight / otherwise
  ::ggml_backend_buffer_type* repack_buft_ = nullptr;
  std::vector<std::pair<uintptr_t, uintptr_t>> released_ranges_;
};

// Evaluation callback (ggml_backend_sched_eval_callback): called with
// ask=true to ask whether the tensor is wanted, then ask=false once computed.
using EvalCallback = bool (*)(ggml_tensor* t, bool ask, void* user_data);

struct ContextOptions {
  int n_ctx = 512;      // total KV cells (llama-perplexity: n_seq * chunk ctx)
  int n_batch = 2048;   // max tokens per llama_decode call (logical batch)
  int n_ubatch = 512;   // physical micro-batch
  int n_seq = 1;        // max distinct sequences in the KV cache
  bool kv_unified = false;  // llama-perplexity's PPL/KLD default
  int n_threads = 0;    // 0 = the model's n_threads
  EvalCallback cb_eval = nullptr;
  void* cb_eval_user_data = nullptr;
};

// A batch of tokens for decode: positions, sequence ids, which want logits.
class TokenBatch {
 public:
  explicit TokenBatch(int capacity, int max_seq_per_token = 1);
  ~TokenBatch();
  TokenBatch(const TokenBatch&) = delete;
  TokenBatch& operator=(const TokenBatch&) = delete;

  void clear();
  // Adds a token at position `pos` of sequence `seq`; returns its index.
  int add(Token token, int32_t pos, int32_t seq, bool want_logits);
  int add(Token token, int32_t pos, const std::vector<int32_t>& seqs, bool want_logits);
  int size() const;
  int n_outputs() const { return n_outputs_; }
  const llama_batch& raw() const { return *batch_; }

 private:
  std::unique_ptr<llama_batch> batch_;
  int capacity_;
  int max_seq_;
  int n_outputs_ = 0;
};

// The most of the `requested` layers (counted from the last; n_layer + 1 =
// the output too) whose weights, plus `reserve_bytes`, plus what a partial
// offload copies to the device (the largest host layer or output matrix),
// stay within `max_bytes`. What LlamaModel::load offloads under a cap.
int fit_gpu_layers(const std::string& path, int requested, int64_t max_bytes, int64_t reserve_bytes);

class LlamaContext {
 public:
  // Throws EngineError if llama.cpp cannot create the context.
  LlamaContext(const LlamaModel& model, const ContextOptions& opts);
  ~LlamaContext();
  LlamaContext(const LlamaContext&) = delete;
  LlamaContext& operator=(const LlamaContext&) = delete;

  // Decodes the batch (split into n_batch pieces if larger). Afterwards
  // logits(i) gives the n_vocab logits of batch entry i (want_logits set).
  // Throws EngineError on failure.
  void decode(const TokenBatch& batch);
  const float* logits(int batch_index) const;
  // Decodes in n_batch pieces and hands each output row to `on_logits` while
  // its piece is current (no copy of the logits: n_outputs x n_vocab floats
  // would be GBs for a large vocab).
  void decode_each(const TokenBatch& batch, const std::function<void(int batch_index, const float* logits)>& on_logits);

  void clear();                                 // whole KV cache / state
  void synchronize();

  // The order to add `n_seq` sequences of `n_each` tokens in so that the
  // decode computes them as given: with several sequences and a KV cache per
  // sequence, llama.cpp cuts each micro-batch as equal blocks of
  // n_ubatch / n_seq tokens per sequence, and rows whose order that changes
  // are swapped back afterwards, a whole n_vocab row per swap on one thread
  // (about 0.1 s per 1,000 rows at vocab 128k). Interleaving the blocks
  // ourselves gives the same micro-batches and no swaps. (seq, pos) pairs.
  std::vector<std::pair<int, int>> batch_order(int n_seq, int n_each) const;

  int n_ctx() const;
  int n_batch() const { return opts_.n_batch; }
  int n_seq() const { return opts_.n_seq; }
  const LlamaModel& model() const { return model_; }
  llama_context* raw() const { return ctx_; }
  // Bytes of the model file's mapping unmapped so far (0 when not released).
  int64_t released_bytes() const;

 private:
  const LlamaModel& model_;
  ContextOptions opts_;
  std::unique_ptr<PageReleaser> releaser_;  // ctx_'s eval callback (ctx_ is freed first)
  llama_context* ctx_ = nullptr;
  // Index of each output token of the last decode: batch index -> row in
  // `split_logits_` (when split) or llama output index.
  std::vector<int> out_row_;
  std::vector<float> split_logits_;
  bool split_ = false;
};

}  // namespace cb::engine
