// --fit in the quantize pipeline (issue 17): the deployment checked before the
// sweep, the stock mix that fits the same card as the baseline, and the built
// file loaded by llama.cpp at the deployment's settings before it can ship.
#include <filesystem>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/build/build.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/common/quant_types.h"
#include "cerebellum/common/schemas.h"
#include "cerebellum/measure/measure.h"
#include "cerebellum/recipe/recipe.h"
#include "quantize/gate.h"

namespace cb {

int64_t fit_budget_before_sweep(const QuantizeOptions& o, const ModelInfo& model) {
  const std::string base = o.measure.base == "auto" ? "Q4_K_M" : o.measure.base;
  const std::string& imatrix = o.allocate.imatrix_path;
  std::string base_name;
  const AllocationProblem p0 = unmeasured_problem(model, measure::resolve_base(base, model, &base_name),
                                                  load_constraints(o.allocate.constraints),
                                                  imatrix_tensor_names(imatrix));
  const int64_t overhead = calibrate_fixed_overhead(model, p0, imatrix);
  // BudgetError here, before hours of measuring, when nothing fits.
  const FitReport f = fit_plan(o.allocate.fit, model, p0, overhead, o.logger);
  const int64_t budget = fit_file_budget_estimate(f, p0, overhead);
  o.logger.info(fmt::format("--fit {}: weights get {} bytes on {} (llama.cpp's projection); the sweep centres on "
                            "a file of about {} bytes",
                            o.allocate.fit.spec, f.placement.pools.front().weight_budget_bytes(),
                            f.placement.pools.front().name, budget));
  return budget;
}

std::string fit_stock_baseline(const ModelInfo& model, const FitReport& fit, const std::string& imatrix_path,
                               std::map<std::string, int64_t>* sizes) {
  std::string best;
  int64_t best_size = -1;
  for (const StockMix& mix : stock_mixes()) {
    if (!mix.size_baseline) continue;
    const int64_t s = stock_preset_size_bytes(model.path, mix.name, imatrix_path);
    if (sizes) (*sizes)[mix.name] = s;
    if (s > best_size && fits_deployment(fit, model, stock_preset_types(model.path, mix.name))) {
      best = mix.name;
      best_size = s;
    }
  }
  return best;
}

FitCheck check_built_fit(const QuantizeOptions& o, const FitReport& fit, const std::string& candidate,
                         const std::string& run_dir) {
  FitCheck check;
  try {
    check = verify_fit(candidate, fit, o.fit_table_contexts);  // llama.cpp's chatter dropped
  } catch (const EngineError& e) {
    std::filesystem::remove(candidate);
    throw BudgetError(fmt::format("--fit {}: llama.cpp could not load the built file at {}: {}", o.allocate.fit.spec,
                                  deploy_args(fit.placement.settings), e.what()));
  }
  write_file_atomic(run_dir + "/fit.json",
                    nlohmann::json{{"schema", kFitSchema}, {"spec", o.allocate.fit.spec}, {"projection", fit_json(fit)},
                                   {"verified", fit_check_json(check)}}.dump(2) + "\n");
  for (const auto& p : check.pools) {
    o.logger.info(fmt::format("fit verified on {}: llama.cpp allocated {} bytes (model {}, context {}, compute {}); "
                              "projected {}{}",
                              p.name, p.measured_bytes(), p.model_bytes, p.context_bytes, p.compute_bytes,
                              p.projected_bytes,
                              p.capacity_bytes ? fmt::format(", capacity {} less margin {}", p.capacity_bytes,
                                                             p.margin_bytes) : std::string()));
    if (!p.fits()) {
      std::filesystem::remove(candidate);
      throw BudgetError(fmt::format("--fit {}: the built file needs {} bytes on {} with the context, over {} less "
                                    "the {} margin (details: {}/fit.json)",
                                    o.allocate.fit.spec, p.measured_bytes(), p.name, p.capacity_bytes,
                                    p.margin_bytes, run_dir));
    }
  }
  return check;
}

}  // namespace cb
