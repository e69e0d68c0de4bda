// Allocation inputs shared by `allocate` and `quantize`: the quantization-error
// table (computed, loaded or none) and the imatrix coverage.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/imatrix/imatrix.h"
#include "cerebellum/measure/journal.h"
#include "cerebellum/quantize/quantize.h"

namespace cb {

std::optional<QuantErrorReport> resolve_quant_error(const std::string& spec, const std::string& source,
                                                    const Journal& journal, const Constraints& constraints,
                                                    const std::string& imatrix_path, int n_threads,
                                                    const Logger& logger, const ProgressFn& progress) {
  if (spec == "none") return std::nullopt;
  if (spec != "auto") {
    const auto j = nlohmann::json::parse(read_file(spec), nullptr, false);
    if (j.is_discarded()) throw InputError(spec + ": not JSON (expected a cerebellum.qerror/1 table)");
    QuantErrorReport r;
    r.table = quant_error_from_json(j, spec);
    r.source = spec;
    if (j.is_object()) r.source_sha256 = j.value("source_sha256", "");
    if (!r.source_sha256.empty() && !journal.header.model_sha256.empty() &&
        r.source_sha256 != journal.header.model_sha256) {
      throw MismatchError(fmt::format("{} prices model {}, the journal measured {}", spec, r.source_sha256,
                                      journal.header.model_sha256));
    }
    return r;
  }
  QuantErrorOptions o;
  o.types = constraints.allowed_types;
  for (const auto& [tensor, type] : journal.header.base_types) o.types.push_back(type);
  for (const auto& m : journal.measurements) {
    for (const auto& [tensor, type] : m.types) o.types.push_back(type);
  }
  std::sort(o.types.begin(), o.types.end());
  o.types.erase(std::unique(o.types.begin(), o.types.end()), o.types.end());
  o.imatrix_path = imatrix_path;
  o.n_threads = n_threads;
  return compute_quant_error_table(source, o, logger, progress);
}

std::set<std::string> imatrix_tensor_names(const std::string& imatrix_path) {
  std::set<std::string> out;
  if (imatrix_path.empty()) return out;
  for (const auto& [name, entry] : read_imatrix(imatrix_path).entries) out.insert(name);
  return out;
}

}  // namespace cb
