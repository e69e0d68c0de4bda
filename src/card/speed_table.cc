// The per-type decode speed table, measured on uniform mixes
// (include/cerebellum/card/machine.h, measure_speed_table).
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/build/build.h"
#include "cerebellum/build/deploy.h"
#include "cerebellum/card/machine.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"

namespace cb::card {
namespace fs = std::filesystem;
namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

double uniform_mix_tg(const ModelInfo& model, const std::string& type, const SpeedOptions& o,
                      const std::string& imatrix_path, const std::string& dir) {
  BuildOptions b;
  b.source = model.path;
  b.source_model = &model;
  b.out = dir + "/uniform-" + type + ".gguf";
  b.imatrix_path = imatrix_path;
  b.n_threads = o.n_threads;
  b.fallback_exact_names = true;  // rows that do not fit take stock's fallback, as in every plan
  for (const auto& t : model.tensors) {
    if (t.stock_quantizable) b.recipe.rules.push_back({t.name, type, 0});
  }
  build_model(b);
  const double tg = measure_speed(b.out, o).tg_tokens_per_s;
  fs::remove(b.out);
  return tg;
}

}  // namespace

std::string default_speed_cache_path(const std::string& model_sha256, int n_threads, int n_gpu_layers) {
  return fmt::format("{}/speed/{}-{}t{}.json", cache_root(), model_sha256.substr(0, 16), n_threads,
                     n_gpu_layers > 0 ? fmt::format("-ngl{}", n_gpu_layers) : "");
}

SpeedTable measure_speed_table(const ModelInfo& model, const std::vector<std::string>& types, const SpeedOptions& o,
                               const std::string& imatrix_path, const std::string& cache_path, const Logger& logger) {
  SpeedTable t;
  const std::string gpu = o.n_gpu_layers > 0 ? gpu_device_description() : "";
  const std::string machine = gpu.empty() ? fmt::format("{}, {} threads, llama.cpp CPU backend", cpu_model(), o.n_threads)
                                          : fmt::format("{}, -ngl {}; {}, {} threads", gpu, o.n_gpu_layers,
                                                        cpu_model(), o.n_threads);
  std::error_code ec;
  if (!cache_path.empty() && fs::is_regular_file(cache_path, ec)) {
    const auto j = nlohmann::json::parse(read_file(cache_path), nullptr, false);
    if (j.is_discarded()) throw InputError(cache_path + ": not JSON (a cached speed table; remove it)");
    t = speed_table_from_json(j, cache_path);
    if (t.machine != machine) t = SpeedTable{};  // another CPU or thread count: measure again
  }
  t.machine = machine;
  t.n_threads = o.n_threads;
  const fs::path dir = fs::temp_directory_path() / fmt::format("cb-speed-{}", ::getpid());
  fs::create_directories(dir);
  for (const auto& type : types) {
    if (t.tg_tokens_per_s.count(type)) continue;
    try {
      t.tg_tokens_per_s[type] = uniform_mix_tg(model, type, o, imatrix_path, dir.string());
    } catch (const RecipeError& e) {  // e.g. an i-quant some tensors take only with an imatrix
      logger.warn(fmt::format("speed table: no uniform {} mix ({}); not measured", type, e.what()));
      continue;
    }
    logger.info(fmt::format("speed table: uniform {} decodes at {:.1f} tokens/s", type, t.tg_tokens_per_s[type]));
    if (!cache_path.empty()) {
      fs::create_directories(fs::path(cache_path).parent_path());
      write_file_atomic(cache_path, to_json(t).dump(2) + "\n");
    }
  }
  fs::remove_all(dir, ec);
  return t;
}

}  // namespace cb::card
