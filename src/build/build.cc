#include "cerebellum/build/build.h"
#include "cerebellum/common/schemas.h"

#include <chrono>
#include <map>
#include <mutex>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/common/quant_types.h"
#include "cerebellum/imatrix/imatrix.h"
#include "cerebellum/inspect/inspect.h"
#include "engine/gguf_writer.h"
#include "engine/stock_quantize.h"

namespace cb {
namespace {

using Clock = std::chrono::steady_clock;

void check_imatrix_needs(const ResolvedRecipe& resolved, const ModelInfo& model, const Imatrix* imatrix) {
  for (const auto& t : model.tensors) {
    const TensorAssignment& a = resolved.tensors.at(t.name);
    // Types llama-quantize refuses to produce without an imatrix (stock's rule).
    if (a.type == t.type || !type_needs_imatrix(a.type, t.name)) continue;
    if (!imatrix) {
      throw RecipeError(fmt::format("tensor {}: type {} ({}) needs an importance matrix; pass --imatrix FILE",
                                    t.name, a.type, a.origin));
    }
    if (!imatrix->find(t.name)) {
      throw RecipeError(fmt::format("tensor {}: type {} needs an importance matrix, and the imatrix has no entry for it",
                                    t.name, a.type));
    }
  }
}

int pick_ftype(const BuildOptions& o, const std::string& base, const ModelInfo& model,
               const std::map<std::string, std::string>& types) {
  const std::string name = !o.file_type.empty() ? o.file_type : base;
  if (!name.empty()) {
    const auto p = find_stock_mix(name);
    if (!p) throw RecipeError(fmt::format("unknown file type / preset '{}'", name));
    return p->ftype;
  }
  std::map<std::string, int64_t> elems;  // weights per quantized target type
  for (const auto& t : model.tensors) {
    const std::string& ty = types.at(t.name);
    if (type_by_name(ty).quantized) elems[ty] += t.n_elements;
  }
  std::string best = "f16";
  int64_t most = 0;
  for (const auto& [ty, n] : elems) {
    if (n > most) best = ty, most = n;
  }
  const int ftype = type_by_name(best).mostly_ftype;
  return ftype >= 0 ? ftype : type_by_name("f16").mostly_ftype;
}

// The metadata llama-quantize records about the imatrix it used, same order.
void add_imatrix_kvs(const std::string& path, const Imatrix& im, engine::QuantizeJob& job) {
  job.string_kvs.push_back({"quantize.imatrix.file", path.substr(0, 127)});
  if (!im.datasets.empty()) job.string_kvs.push_back({"quantize.imatrix.dataset", im.datasets[0].substr(0, 127)});
  job.u32_kvs.push_back({"quantize.imatrix.entries_count", static_cast<uint32_t>(im.entries.size())});
  if (im.chunk_count > 0) job.u32_kvs.push_back({"quantize.imatrix.chunks_count", static_cast<uint32_t>(im.chunk_count)});
}

BuildReport make_report(const engine::WriteResult& r, const ResolvedRecipe& resolved, const ModelInfo& model,
                        const std::string& out, bool dry_run, Clock::time_point start) {
  BuildReport report;
  report.out = dry_run ? "" : out;
  report.dry_run = dry_run;
  report.output_size_bytes = r.output_size_bytes;
  report.source_size_bytes = model.file_size_bytes;
  for (const auto& t : r.tensors) {
    BuildTensor bt{t.name, t.from_type, t.to_type, t.shape, t.size_bytes, t.used_imatrix, "", t.to_type};
    auto it = resolved.tensors.find(t.name);
    if (it != resolved.tensors.end() && !it->second.fallback_reason.empty()) {
      bt.fallback_reason = it->second.fallback_reason;
      bt.requested_type = it->second.requested_type;
      ++report.n_fallbacks;
    }
    report.tensors.push_back(std::move(bt));
  }
  report.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

std::function<std::vector<float>(const std::string&)> imatrix_fn(const std::shared_ptr<const Imatrix>& im) {
  if (!im) return {};
  return [im](const std::string& name) { return im->weights_for(name); };
}

}  // namespace

BuildReport build_model(const BuildOptions& o, const Logger& logger, const ProgressFn& progress) {
  const auto start = Clock::now();
  if (!o.dry_run) check_output_path(o.out, {o.source, o.imatrix_path});
  const ModelInfo model = o.source_model ? *o.source_model : inspect_model(o.source);
  std::shared_ptr<const Imatrix> im;
  if (!o.imatrix_path.empty()) im = read_imatrix_for(o.imatrix_path, model, logger);
  Recipe recipe = o.recipe;
  if (!o.base.empty()) recipe.base = o.base;
  ResolveOptions ro;
  ro.with_imatrix = im != nullptr;
  ro.fallback_exact_names = o.fallback_exact_names;
  ro.logger = logger;
  const ResolvedRecipe resolved = resolve_recipe(recipe, model, ro);
  check_imatrix_needs(resolved, model, im.get());
  const auto types = resolved.types();

  engine::QuantizeJob job;
  job.source = o.source;
  job.out = o.out;
  for (const auto& t : model.tensors) {
    if (types.at(t.name) != t.type) job.types[t.name] = types.at(t.name);
  }
  job.ftype = pick_ftype(o, recipe.base, model, types);
  job.donor = o.donor;
  job.imatrix_for = imatrix_fn(im);
  if (im) add_imatrix_kvs(o.imatrix_path, *im, job);
  job.n_threads = o.n_threads;
  job.max_slab_bytes = o.max_slab_bytes;
  job.dry_run = o.dry_run;
  if (!o.dry_run && o.out.empty()) throw UsageError("build: no output path");
  const auto r = engine::quantize_gguf(job, logger, progress);
  BuildReport report = make_report(r, resolved, model, o.out, o.dry_run, start);
  for (const auto& t : report.tensors) {
    if (!t.fallback_reason.empty()) {
      logger.warn(fmt::format("{}: {} -> {} ({})", t.name, t.requested_type, t.to_type, t.fallback_reason));
    }
  }
  return report;
}

int64_t predict_output_size_bytes(const std::string& source, const std::map<std::string, std::string>& types,
                                  const std::string& imatrix_path) {
  // Asked several times per run for the same plan (the budget check before
  // the sweep, the allocation): remembered per process for unchanged files.
  static std::mutex mutex;
  static std::map<std::string, int64_t> memo;
  const std::string source_id = file_identity(source);
  const std::string imatrix_id = imatrix_path.empty() ? "-" : file_identity(imatrix_path);
  const bool remember = !source_id.empty() && !imatrix_id.empty();  // else the dry run names the problem
  std::string key = source_id + "|" + imatrix_id;
  for (const auto& [name, type] : types) key += "|" + name + "=" + type;
  if (remember) {
    const std::lock_guard<std::mutex> lock(mutex);
    if (auto it = memo.find(key); it != memo.end()) return it->second;
  }
  engine::QuantizeJob job;
  if (!imatrix_path.empty()) add_imatrix_kvs(imatrix_path, *load_imatrix(imatrix_path), job);
  job.source = source;
  job.ftype = 0;  // the two u32 keys a build adds; the value does not change the size
  for (const auto& [name, type] : types) job.types[name] = type_by_name(type).name;
  job.dry_run = true;
  const int64_t size_bytes = engine::quantize_gguf(job, Logger{}, ProgressFn{}).output_size_bytes;
  const std::lock_guard<std::mutex> lock(mutex);
  if (remember) memo[key] = size_bytes;
  return size_bytes;
}

int64_t stock_preset_size_bytes(const std::string& source, const std::string& preset,
                                const std::string& imatrix_path) {
  const auto types = stock_preset_types(source, preset, !imatrix_path.empty());
  if (imatrix_path.empty()) {  // what build_model (check_imatrix_needs) would refuse
    for (const auto& [name, type] : types) {
      if (type_needs_imatrix(type, name)) {
        throw RecipeError(fmt::format("stock {}: tensor {} would be {}, which needs an importance matrix; pass "
                                      "--imatrix FILE", preset, name, type));
      }
    }
  }
  return predict_output_size_bytes(source, types, imatrix_path);
}

BuildReport surgery(const SurgeryOptions& o, const Logger& logger, const ProgressFn& progress) {
  const auto start = Clock::now();
  const ModelInfo model = inspect_model(o.in);
  std::shared_ptr<const Imatrix> im;
  if (!o.imatrix_path.empty()) im = read_imatrix_for(o.imatrix_path, model, logger);
  Recipe recipe;
  recipe.source = "--set";
  recipe.rules = o.sets;
  const ResolvedRecipe resolved = resolve_recipe(recipe, model, ResolveOptions{false, false, logger});
  check_imatrix_needs(resolved, model, im.get());
  engine::QuantizeJob job;
  job.source = o.in;
  job.out = o.out;
  job.stock_order = false;  // keep the file's layout; only the recast tensors change
  bool any_quantized = false;
  for (const auto& t : model.tensors) {
    const std::string& to = resolved.tensors.at(t.name).type;
    if (to == t.type) continue;
    job.types[t.name] = to;
    any_quantized |= type_by_name(to).quantized;
    if (type_by_name(t.type).quantized) {
      logger.warn(fmt::format("{}: re-quantizing from {} to {} (dequantize -> quantize): quality is lower than "
                              "quantizing from the full-precision model", t.name, t.type, to));
    }
  }
  if (job.types.empty()) logger.warn("surgery: no tensor changes type; the output is a copy");
  if (any_quantized) job.u32_kvs.push_back({"general.quantization_version", 2});
  job.imatrix_for = imatrix_fn(im);
  job.n_threads = o.n_threads;
  job.max_slab_bytes = o.max_slab_bytes;
  job.dry_run = o.dry_run;
  const auto r = engine::quantize_gguf(job, logger, progress);
  return make_report(r, resolved, model, o.out, o.dry_run, start);
}

nlohmann::json to_json(const BuildReport& report) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& t : report.tensors) {
    nlohmann::json j = {{"name", t.name},           {"from_type", t.from_type}, {"to_type", t.to_type},
                        {"shape", t.shape},         {"size_bytes", t.size_bytes},
                        {"used_imatrix", t.used_imatrix}};
    if (!t.fallback_reason.empty()) j["fallback"] = {{"requested_type", t.requested_type}, {"reason", t.fallback_reason}};
    tensors.push_back(std::move(j));
  }
  return {{"schema", kBuildSchema},           {"out", report.out},
          {"dry_run", report.dry_run},                 {"output_size_bytes", report.output_size_bytes},
          {"source_size_bytes", report.source_size_bytes}, {"n_fallbacks", report.n_fallbacks},
          {"elapsed_s", report.elapsed_s},             {"tensors", tensors}};
}

}  // namespace cb
