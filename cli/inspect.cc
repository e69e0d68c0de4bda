// cerebellum inspect MODEL.gguf [--json]
#include <cstdio>

#include <fmt/format.h>

#include "cerebellum/inspect/inspect.h"
#include "cli_util.h"
#include "command.h"

namespace cb::cli {
namespace {

struct InspectArgs {
  std::string model;
  bool json = false;
  bool tensors = true;
};

void print_text(const ModelInfo& info, bool show_tensors) {
  fmt::print("model    {}\narch     {}  ({} layers, {} tensors, {:.2f} M params)\n", info.path,
             info.arch, info.n_layers, info.tensors.size(), info.n_elements / 1e6);
  fmt::print("size     {}  {:.3f} bpw\n", human_bytes(info.file_size_bytes),
             info.bits_per_weight());
  if (show_tensors) {
    fmt::print("\n{:<36} {:<15} {:>5} {:<22} {:<7} {:>12} {:>7}  {}\n", "tensor", "role",
               "layer", "shape", "type", "bytes", "bpw", "stock-q / fitting types");
    for (const auto& t : info.tensors) {
      std::string shape;
      for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? "x" : "") + std::to_string(t.shape[i]);
      std::string fits;
      for (const auto& f : t.fitting_types) fits += (fits.empty() ? "" : ",") + f;
      fmt::print("{:<36} {:<15} {:>5} {:<22} {:<7} {:>12} {:>7.3f}  {} {}\n", t.name, t.role,
                 t.layer, shape, t.type, t.size_bytes, t.bits_per_weight(),
                 t.stock_quantizable ? "yes" : "no ", fits);
    }
  }
  fmt::print("\n{:<16} {:>8} {:>14} {:>12}\n", "role", "tensors", "params", "bytes");
  for (const auto& [role, s] : info.by_role()) {
    fmt::print("{:<16} {:>8} {:>14} {:>12}\n", role, s.n_tensors, s.n_elements, s.size_bytes);
  }
  fmt::print("\n{:<16} {:>8} {:>14} {:>12}\n", "layer", "tensors", "params", "bytes");
  for (const auto& [layer, s] : info.by_layer()) {
    fmt::print("{:<16} {:>8} {:>14} {:>12}\n", layer < 0 ? std::string("(none)") : std::to_string(layer),
               s.n_tensors, s.n_elements, s.size_bytes);
  }
}

void setup_inspect(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand("inspect", "tensors, roles, layers, sizes and which types fit");
  cmd->add_option("model", args->model, "GGUF model")->required();
  cmd->add_flag("--json", args->json, "print JSON (schema cerebellum.inspect/1)");
  cmd->add_flag("!--no-tensors", args->tensors, "summaries only");
  cmd->callback([args] {
    const ModelInfo info = inspect_model(args->model);
    if (args->json) {
      print_json(to_json(info));
    } else {
      print_text(info, args->tensors);
    }
  });
}

}  // namespace

CB_REGISTER_COMMAND("inspect", 10, setup_inspect);

}  // namespace cb::cli
