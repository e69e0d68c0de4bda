#include "cerebellum/eval/imatrix_compute.h"

#include <algorithm>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "engine/eval_imatrix.h"
#include "engine/eval_swap.h"
#include "engine/llama_model.h"

namespace cb::eval {

Imatrix compute_imatrix(const std::string& model_path, const std::string& text,
                        const std::string& dataset_name, const ImatrixOptions& opts,
                        const Logger& logger, const ProgressFn& progress) {
  engine::ModelLoadOptions lo{.n_threads = opts.n_threads, .logger = logger};
  lo.swappable = !opts.skeleton_types.empty();
  lo.tensor_types = opts.skeleton_types;
  lo.work_dir = opts.work_dir;
  auto model = engine::LlamaModel::load(model_path, lo);
  std::optional<engine::TensorSwapper> swapper;
  std::pair<uintptr_t, uintptr_t> view{0, 0};
  if (lo.swappable) {
    swapper.emplace(*model, model_path);
    view = swapper->view_file(model_path);
    model->begin_view(view);
  }
  const auto tokens = model->tokenize(text, /*add_special=*/true);
  const int ctx = opts.ctx;
  const int available = static_cast<int>(tokens.size() / ctx);
  if (available < 1) {
    throw InputError(fmt::format("the text tokenizes to {} tokens; a context of {} needs at least {}",
                                 tokens.size(), ctx, ctx));
  }
  const int n_chunks = opts.max_chunks < 0 ? available : std::min(opts.max_chunks, available);
  const int n_seq = std::max(1, opts.n_batch / ctx);
  engine::ImatrixCollector collector(opts.include_output);
  engine::LlamaContext lctx(*model, {.n_ctx = n_seq * ctx,
                                     .n_batch = std::min(opts.n_batch, n_seq * ctx),
                                     .n_seq = n_seq,
                                     .cb_eval = &engine::ImatrixCollector::callback,
                                     .cb_eval_user_data = &collector});
  engine::TokenBatch batch(n_seq * ctx);
  for (int c = 0; c < n_chunks; c += n_seq) {
    const int n_group = std::min(n_seq, n_chunks - c);
    batch.clear();
    for (int s = 0; s < n_group; ++s) {
      const size_t start = static_cast<size_t>(c + s) * ctx;
      for (int k = 0; k < ctx; ++k) {
        // As llama-imatrix: BOS replaces each chunk's first token, and every
        // token is an output. With outputs for the last token only, llama.cpp
        // runs the last layer's FFN on those rows alone, too few to count: the
        // imatrix lacked blk.<last>.ffn_* (81 of cb-dense's 84 entries, stock 84).
        const engine::Token tok = (k == 0 && model->add_bos()) ? model->bos() : tokens[start + k];
        batch.add(tok, k, s, true);
      }
    }
    lctx.clear();
    lctx.decode(batch);
    if (!collector.error().empty()) throw EngineError(collector.error());
    if (progress) progress({"imatrix", c + n_group, n_chunks, fmt::format("chunk {}", c + n_group)});
  }
  if (swapper) model->end_view(view);  // the swapper puts the tensors back as it goes
  Imatrix out;
  for (const auto& [name, st] : collector.stats()) out.entries[name] = {st.sums, st.counts};
  out.chunk_count = n_chunks;
  out.chunk_size = ctx;
  out.datasets = {dataset_name};
  return out;
}

}  // namespace cb::eval
