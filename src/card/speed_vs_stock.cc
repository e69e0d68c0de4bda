// The card's speed: the build and the same-size stock mix, timed interleaved.
#include "card/speed_vs_stock.h"

#include <cmath>
#include <filesystem>
#include <limits>

#include <unistd.h>

#include <fmt/format.h>

#include "cerebellum/build/build.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/quant_types.h"

namespace cb::card {
namespace fs = std::filesystem;

std::string same_size_stock_preset(const RunDir& run) {
  if (!run.baseline_preset.empty()) return run.baseline_preset;
  if (!run.eval) return "";
  std::error_code ec;
  const auto ours_bytes = static_cast<int64_t>(fs::file_size(run.model_path, ec));
  std::string best;
  int64_t best_gap = std::numeric_limits<int64_t>::max();
  for (const EvalEntry& e : *run.eval) {
    if (e.kind != "stock" || !find_stock_mix(e.name)) continue;
    const int64_t gap = std::llabs(e.size_bytes - ours_bytes);
    if (gap < best_gap) best_gap = gap, best = e.name;
  }
  return best;
}

namespace {

// Builds `preset` from the run's source into `path`; "" on success, else why not.
std::string build_stock(const RunDir& run, const std::string& preset, const std::string& path, int n_threads,
                        int64_t& size_bytes) {
  const std::string source = run.run ? run.run->source_path : "";
  std::error_code ec;
  if (source.empty()) return "run.json names no source model to build it from";
  if (!fs::is_regular_file(source, ec)) return fmt::format("the source model {} is not here", source);
  BuildOptions b;
  b.source = source;
  b.out = path;
  b.base = preset;
  b.n_threads = n_threads;
  try {
    size_bytes = build_model(b).output_size_bytes;
  } catch (const Error& e) {  // e.g. a preset that needs an imatrix the run does not keep
    fs::remove(path, ec);
    return fmt::format("building it failed: {}", e.what());
  }
  return "";
}

}  // namespace

void measure_card_speed(const RunDir& run, const SpeedOptions& o, bool vs_stock, const std::string& work_dir,
                        const Logger& logger, std::optional<SpeedResult>& ours, std::optional<StockSpeed>& stock) {
  if (!vs_stock) {
    ours = measure_speed(run.model_path, o, logger);
    return;
  }
  StockSpeed s;
  s.preset = same_size_stock_preset(run);
  const std::string path = (fs::path(work_dir) / fmt::format(".stock-{}-{}.gguf", s.preset, ::getpid())).string();
  if (s.preset.empty()) {
    s.note = "no stock mix to compare with (no quantize.json baseline, no stock mix in eval.json)";
  } else {
    logger.info(fmt::format("card: building stock {} to time it next to the build", s.preset));
    s.note = build_stock(run, s.preset, path, o.n_threads, s.size_bytes);
  }
  if (s.note.empty()) {
    try {
      const auto both = measure_speed_interleaved({run.model_path, path}, o, logger);
      ours = both[0];
      s.speed = both[1];
    } catch (const EngineError& e) {
      s.note = fmt::format("llama.cpp could not time it: {}", e.what());
    }
  }
  std::error_code ec;
  fs::remove(path, ec);
  if (!ours) ours = measure_speed(run.model_path, o, logger);
  stock = s;
}

}  // namespace cb::card
