// Memory by context length: llama.cpp's breakdown of the build at each
// context (include/cerebellum/card/machine.h).
#include "cerebellum/card/machine.h"

namespace cb::card {

MemoryReport measure_memory(const std::string& model_path, const DeploySettings& settings,
                            const std::vector<int>& contexts) {
  MemoryReport r;
  r.settings = settings;
  const std::vector<int64_t> n_ctx(contexts.begin(), contexts.end());
  const auto measured = deployment_memory_by_context(model_path, settings, n_ctx, DeployProbe::kLoad, {}, &r.stopped);
  for (size_t k = 0; k < measured.size(); ++k) r.rows.push_back({n_ctx[k], measured[k].pools});
  return r;
}

}  // namespace cb::card
