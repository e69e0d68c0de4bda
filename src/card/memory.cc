// Memory by context length: arithmetic on the shapes, and the parser of
// llama.cpp's own report used to check it.
#include <regex>

#include "cerebellum/card/machine.h"

namespace cb::card {

MemoryReport memory_report(const MemoryShape& shape, const std::vector<int>& contexts) {
  MemoryReport r;
  r.shape = shape;
  for (int n_ctx : contexts) {
    MemoryRow row;
    row.n_ctx = n_ctx;
    row.weights_bytes = shape.weights_bytes;
    row.kv_bytes = static_cast<int64_t>(n_ctx) * shape.kv_elems_per_token * r.kv_bytes_per_elem;
    // One sequence: the recurrent state does not grow with the context.
    row.recurrent_bytes = shape.recurrent_elems * r.recurrent_bytes_per_elem;
    r.rows.push_back(row);
  }
  return r;
}

void parse_memory_log(const std::string& log, std::optional<double>& kv_mib,
                      std::optional<double>& recurrent_mib) {
  // "llama_kv_cache: size =   12.00 MiB (  2048 cells, ..." (the summary line,
  // not the per-buffer "KV buffer size" lines) and its recurrent twin.
  static const std::regex kv(R"(llama_kv_cache(?:_unified)?: size =\s*([0-9.]+) MiB)");
  static const std::regex rs(R"(llama_memory_recurrent: size =\s*([0-9.]+) MiB)");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), kv); it != std::sregex_iterator(); ++it) {
    kv_mib = kv_mib.value_or(0) + std::stod((*it)[1].str());
  }
  for (auto it = std::sregex_iterator(log.begin(), log.end(), rs); it != std::sregex_iterator(); ++it) {
    recurrent_mib = recurrent_mib.value_or(0) + std::stod((*it)[1].str());
  }
}

}  // namespace cb::card
