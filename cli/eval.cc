// cerebellum eval --model M.gguf --text T [--reference REF.gguf] [--ctx 512]
//                 [--chunks N] [--threads N] [--gpu-layers N] [--top-k 32] [--reference-store F] [--json]
#include <fmt/format.h>

#include "cerebellum/common/io.h"
#include "cerebellum/common/schemas.h"
#include "cerebellum/eval/evaluator.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {

struct EvalArgs {
  std::string model, text, reference, store;
  int ctx = 512, chunks = -1, threads = 0, batch = 2048, top_k = 32, gpu_layers = 0;
  bool json = false;
};

nlohmann::json summary_json(const EvalArgs& a, const eval::EvalSummary& s) {
  nlohmann::json j = {{"schema", kEvalSchema}, {"model", a.model}, {"text", a.text},
                      {"ctx", a.ctx}, {"n_chunks", s.n_chunks}, {"n_tokens", s.n_tokens},
                      {"ppl", s.ppl.ppl}, {"ppl_se", s.ppl.ppl_se}, {"ln_ppl", s.ppl.ln_ppl},
                      {"elapsed_s", s.elapsed_s}, {"tokens_per_s", s.tokens_per_s}};
  if (s.has_reference) {
    j["reference"] = a.reference;
    j["ref_ppl"] = s.ref_ppl.ppl;
    j["top_k"] = a.top_k;
    j["kld"] = {{"mean", s.kld.mean_nats}, {"se", s.kld.se_nats}, {"median", s.kld.median_nats},
                {"p90", s.kld.p90_nats}, {"p99", s.kld.p99_nats}, {"p99_9", s.kld.p999_nats},
                {"max", s.kld.max_nats}};
    j["top1"] = s.top1.mean;
    j["top1_se"] = s.top1.se;
    j["delta_p"] = {{"mean", s.delta_p.mean.mean}, {"se", s.delta_p.mean.se},
                    {"rms", s.delta_p.rms}};
  }
  return j;
}

void print_text(const eval::EvalSummary& s) {
  fmt::print("chunks {}  scored tokens {}  {:.1f} s  {:.0f} tok/s\n", s.n_chunks, s.n_tokens,
             s.elapsed_s, s.tokens_per_s);
  fmt::print("PPL    {:.4f} +/- {:.5f}\n", s.ppl.ppl, s.ppl.ppl_se);
  if (!s.has_reference) return;
  fmt::print("ref PPL {:.4f}\n", s.ref_ppl.ppl);
  fmt::print("KLD    mean {:.6f} +/- {:.6f}  median {:.6f}  p90 {:.6f}  p99 {:.6f}  p99.9 {:.6f}"
             "  max {:.6f}\n",
             s.kld.mean_nats, s.kld.se_nats, s.kld.median_nats, s.kld.p90_nats, s.kld.p99_nats,
             s.kld.p999_nats, s.kld.max_nats);
  fmt::print("top-1  {:.4f} +/- {:.4f}\n", s.top1.mean, s.top1.se);
  fmt::print("dp     {:+.5f} +/- {:.5f}  rms {:.5f}\n", s.delta_p.mean.mean, s.delta_p.mean.se,
             s.delta_p.rms);
}

void run_eval(const EvalArgs& a) {
  const Logger log = stderr_logger();
  const std::string text = read_file(a.text);
  eval::EvalOptions opts{.ctx = a.ctx, .max_chunks = a.chunks, .n_threads = a.threads,
                         .n_batch = a.batch, .top_k = a.top_k};
  opts.n_gpu_layers = a.gpu_layers;
  ProgressPrinter progress;
  std::optional<eval::ReferenceStore> store;
  eval::EvalOptions model_opts = opts;
  model_opts.reference_model_path = a.reference;  // the store's key names the reference
  std::unique_ptr<eval::Evaluator> ev;
  if (!a.reference.empty()) {
    // On the CPU the model computes the reference too, its weights pointed at
    // the reference's file a layer at a time: one model in memory.
    if (opts.n_gpu_layers == 0) {
      ev = std::make_unique<eval::Evaluator>(a.model, text, model_opts, log);
      if (!ev->can_view_reference(a.reference)) ev.reset();  // another graph: loaded on its own
    }
    if (ev) {
      store = eval::load_or_build_reference(*ev, a.store, progress.fn(), log, a.reference);
    } else {
      eval::Evaluator ref(a.reference, text, opts, log);
      store = eval::load_or_build_reference(ref, a.store, progress.fn(), log);
    }
    progress.finish();
  }
  if (!ev) ev = std::make_unique<eval::Evaluator>(a.model, text, model_opts, log);
  const eval::EvalSummary s = ev->run(store ? &*store : nullptr, progress.fn());
  progress.finish();
  if (a.json) {
    print_json(summary_json(a, s));
  } else {
    print_text(s);
  }
}

void setup_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand(
      "eval", "perplexity (as llama-perplexity), and KLD / top-1 / dp against a reference model");
  cmd->add_option("--model", a->model, "GGUF model to evaluate")->required();
  cmd->add_option("--text", a->text, "text file")->required();
  cmd->add_option("--reference", a->reference, "reference (full-precision) GGUF model");
  cmd->add_option("--reference-store", a->store,
                  "reference store file: reused if it exists (must match), else written");
  cmd->add_option("--ctx", a->ctx, "tokens per chunk")->capture_default_str();
  cmd->add_option("--chunks", a->chunks, "chunks to evaluate (-1 = all)")->capture_default_str();
  cmd->add_option("--threads", a->threads, "threads (0 = every CPU this run may use)")->capture_default_str();
  cmd->add_option("--batch", a->batch, "tokens per decode")->capture_default_str();
  cmd->add_option("--top-k", a->top_k, "reference log-probs kept per token")->capture_default_str();
  cmd->add_option("--gpu-layers", a->gpu_layers, "layers offloaded to the GPU (999 = all; CPU builds ignore it)")
      ->capture_default_str();
  cmd->add_flag("--json", a->json, "print JSON (schema cerebellum.eval/1)");
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace

CB_REGISTER_COMMAND("eval", 50, setup_eval);

}  // namespace cb::cli
