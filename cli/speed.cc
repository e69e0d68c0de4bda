// cerebellum speed --model M.gguf [--threads 2 --pp 512 --tg 128 --reps 2]: a
// file's prompt and decode tokens/s on this machine, as the card measures them
// (llama-bench's pp / tg), as JSON on stdout.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/card/machine.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {

struct SpeedArgs {
  std::string model;
  card::SpeedOptions options;
};

void setup_speed(CLI::App& app) {
  auto a = std::make_shared<SpeedArgs>();
  auto* cmd = app.add_subcommand("speed", "prompt and decode tokens/s of a GGUF on this machine (llama-bench's pp/tg)");
  cmd->add_option("--model", a->model, "GGUF file")->required();
  cmd->add_option("--threads", a->options.n_threads, "threads (0 = every CPU this run may use)")->capture_default_str();
  cmd->add_option("--pp", a->options.pp_tokens, "prompt tokens for the pp test")->capture_default_str();
  cmd->add_option("--tg", a->options.tg_tokens, "generated tokens for the tg test")->capture_default_str();
  cmd->add_option("--reps", a->options.repetitions, "timed repetitions of each test")->capture_default_str();
  cmd->add_option("--gpu-layers", a->options.n_gpu_layers, "layers on the GPU (999 = all); 0 = the CPU")
      ->capture_default_str();
  cmd->callback([a] {
    const card::SpeedResult r = card::measure_speed(a->model, a->options);
    print_json({{"model", a->model}, {"n_threads", r.n_threads}, {"pp_tokens", r.pp_tokens},
                {"tg_tokens", r.tg_tokens}, {"repetitions", r.repetitions}, {"pp_tokens_per_s", r.pp_tokens_per_s},
                {"pp_tokens_per_s_sd", r.pp_tokens_per_s_sd}, {"tg_tokens_per_s", r.tg_tokens_per_s},
                {"tg_tokens_per_s_sd", r.tg_tokens_per_s_sd}, {"device", r.device},
                {"system_info", r.system_info}});
  });
}

}  // namespace

CB_REGISTER_COMMAND("speed", 95, setup_speed);

}  // namespace cb::cli
