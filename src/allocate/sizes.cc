// Exact sizes: rows × row size, padded to the GGUF alignment, at the type stock
// llama-quantize would really write.
#include <cctype>
#include <cmath>
#include <string>

#include <fmt/format.h>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/quant_types.h"
#include "cerebellum/recipe/recipe.h"
#include "cerebellum/common/strings.h"

namespace cb {
namespace {

// The type stock writes when the rows do not fit the requested blocks: the
// recipe module's copy of llama-quant.cpp's fallback table (one table, data).
std::string fallback_type(const TensorInfo& t, const std::string& type) {
  return cb::fallback_type(type, t.row_elems());
}

}  // namespace

int64_t pad_bytes(int64_t size_bytes, int64_t alignment_bytes) {
  if (alignment_bytes <= 1) return size_bytes;
  return (size_bytes + alignment_bytes - 1) / alignment_bytes * alignment_bytes;
}

std::string stock_effective_type(const TensorInfo& t, const std::string& type) {
  if (!t.stock_quantizable) return type_by_name(t.type).name;
  return fallback_type(t, type);
}

int64_t tensor_bytes_at(const TensorInfo& t, const std::string& type, int64_t alignment_bytes) {
  const TypeInfo& ti = type_by_name(fallback_type(t, type));
  const int64_t row_elems = t.row_elems();
  const int64_t n_rows = row_elems ? t.n_elements / row_elems : 0;
  return pad_bytes(n_rows * row_size_bytes(ti, row_elems), alignment_bytes);
}

int64_t model_size_bytes(const ModelInfo& model, const std::map<std::string, std::string>& types,
                         int64_t fixed_overhead_bytes) {
  int64_t total = fixed_overhead_bytes;
  for (const auto& t : model.tensors) {
    auto it = types.find(t.name);
    total += tensor_bytes_at(t, it == types.end() ? t.type : it->second, model.alignment_bytes);
  }
  return total;
}

int64_t parse_budget_bytes(const std::string& spec, int64_t n_elements) {
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(spec, &pos);
  } catch (const std::exception&) {
    throw UsageError(fmt::format("budget '{}': expected a number with an optional unit", spec));
  }
  const std::string unit = ascii_lower(spec.substr(pos));
  // Units as data: multiplier to bytes (decimal SI like file managers, binary with i).
  static const std::map<std::string, double> kUnits = {
      {"", 1}, {"b", 1}, {"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9},
      {"kib", 1024.0}, {"mib", 1048576.0}, {"gib", 1073741824.0}};
  double bytes = 0;
  if (unit == "bpw") {
    bytes = value * static_cast<double>(n_elements) / 8.0;
  } else if (auto it = kUnits.find(unit); it != kUnits.end()) {
    bytes = value * it->second;
  } else {
    throw UsageError(fmt::format("budget '{}': unknown unit '{}' (B, KB, MB, GB, KiB, MiB, GiB, "
                                 "bpw)", spec, unit));
  }
  if (!(bytes > 0)) throw UsageError(fmt::format("budget '{}' must be positive", spec));
  if (!(bytes < 9.2e18)) throw UsageError(fmt::format("budget '{}' is too large", spec));
  return static_cast<int64_t>(std::floor(bytes));
}

}  // namespace cb
