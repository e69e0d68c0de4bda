#include "cerebellum/build/quant_error.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/io.h"
#include "cerebellum/common/quant_types.h"
#include "cerebellum/imatrix/imatrix.h"
#include "cerebellum/inspect/inspect.h"
#include "cerebellum/recipe/recipe.h"
#include "engine/quant_error.h"

namespace cb {

QuantErrorReport compute_quant_error_table(const std::string& source, const QuantErrorOptions& o,
                                           const Logger& logger, const ProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const ModelInfo model = o.source_model ? *o.source_model : inspect_model(source);
  std::shared_ptr<const Imatrix> im;
  if (!o.imatrix_path.empty()) im = read_imatrix_for(o.imatrix_path, model, logger);
  std::vector<std::string> types = o.types.empty() ? Constraints{}.allowed_types : o.types;
  for (auto& t : types) t = type_by_name(t).name;  // RecipeError on unknown names

  engine::QuantErrorJob job;
  job.source = source;
  job.n_threads = o.n_threads;
  job.min_elements_per_tensor = o.min_elements_per_tensor;
  job.max_elements_per_tensor = o.max_elements_per_tensor;
  job.target_rel_se = o.target_rel_se;
  if (im) job.imatrix_for = [im](const std::string& name) { return im->weights_for(name); };
  for (const auto& t : model.tensors) {
    if (!t.stock_quantizable) continue;
    std::vector<std::string>& list = job.types[t.name];
    for (const auto& type : types) {
      if (!row_fits(type_by_name(type), t.row_elems())) continue;
      if (type_needs_imatrix(type, t.name) && !(im && im->find(t.name))) continue;
      list.push_back(type);
    }
  }
  const auto values = engine::compute_quant_error(job, logger, progress);

  QuantErrorReport r;
  r.source = source;
  r.source_sha256 = sha256_file(source);
  r.imatrix_path = o.imatrix_path;
  r.min_elements_per_tensor = o.min_elements_per_tensor;
  r.max_elements_per_tensor = o.max_elements_per_tensor;
  r.target_rel_se = o.target_rel_se;
  r.table.weighting = im ? "imatrix" : "uniform";
  for (const auto& [tensor, by_type] : values) {
    bool sampled = false;
    for (const auto& [type, v] : by_type) {
      r.table.rel_mse[tensor][type] = v.rel_mse;
      r.rel_mse_se[tensor][type] = v.rel_mse_se;
      if (v.rel_mse > 0) r.max_rel_se = std::max(r.max_rel_se, v.rel_mse_se / v.rel_mse);
      sampled = sampled || v.rows_used < v.rows_total;
      ++r.n_values;
    }
    ++r.n_tensors;
    r.n_sampled_tensors += sampled ? 1 : 0;
  }
  r.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  logger.info(fmt::format("quantization-error table: {} values over {} tensors ({} sampled, largest relative "
                          "se {:.3f}) in {:.1f} s", r.n_values, r.n_tensors, r.n_sampled_tensors, r.max_rel_se,
                          r.elapsed_s));
  return r;
}

nlohmann::json to_json(const QuantErrorReport& r) {
  return {{"schema", kQuantErrorSchema},
          {"source", r.source},
          {"source_sha256", r.source_sha256},
          {"weighting", r.table.weighting},
          {"imatrix", r.imatrix_path},
          {"min_elements_per_tensor", r.min_elements_per_tensor},
          {"max_elements_per_tensor", r.max_elements_per_tensor},
          {"target_rel_se", r.target_rel_se},
          {"max_rel_se", r.max_rel_se},
          {"rel_mse_se", r.rel_mse_se},
          {"n_tensors", r.n_tensors},
          {"n_values", r.n_values},
          {"n_sampled_tensors", r.n_sampled_tensors},
          {"elapsed_s", r.elapsed_s},
          {"rel_mse", r.table.rel_mse}};
}

}  // namespace cb
