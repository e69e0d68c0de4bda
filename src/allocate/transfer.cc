// Recipe transfer to a sibling model (other depth) or a same-shape finetune.
#include <cctype>
#include <cmath>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/pattern.h"
#include "cerebellum/common/quant_types.h"

namespace cb {
namespace {

// "blk.7." or its escaped regex form "blk\.7\." inside a recipe pattern:
// where the number starts and ends (a scan: linear on any line).
struct LayerRef {
  size_t digits_begin = 0, digits_end = 0;
  int layer = 0;
};

std::optional<LayerRef> find_layer_ref(const std::string& s) {
  const auto dot_at = [&](size_t i) -> size_t {  // length of "." or "\." at i, 0 if neither
    if (i < s.size() && s[i] == '.') return 1;
    if (i + 1 < s.size() && s[i] == '\\' && s[i + 1] == '.') return 2;
    return 0;
  };
  for (size_t at = s.find("blk"); at != std::string::npos; at = s.find("blk", at + 1)) {
    const size_t d1 = dot_at(at + 3);
    if (!d1) continue;
    size_t e = at + 3 + d1;
    while (e < s.size() && std::isdigit(static_cast<unsigned char>(s[e]))) ++e;
    const size_t b = at + 3 + d1;
    if (e == b || e - b > 6 || !dot_at(e)) continue;
    return LayerRef{b, e, std::stoi(s.substr(b, e - b))};
  }
  return std::nullopt;
}

// Whether `pattern` (exact name or regex) names some tensor of the target.
const TensorInfo* first_match(const std::string& pattern, const ModelInfo& target) {
  if (const TensorInfo* t = target.find(pattern)) return t;
  try {
    const Pattern re(pattern);
    for (const auto& t : target.tensors) {
      if (re.search(t.name)) return &t;
    }
  } catch (const RecipeError&) {  // not a regex: matches nothing
  }
  return nullptr;
}

}  // namespace

TransferResult transfer_recipe(const std::vector<RecipeRule>& recipe, int from_layers,
                               const ModelInfo& target) {
  if (from_layers <= 0) throw UsageError("--from-layers must be positive");
  const int to_layers = target.n_layers;
  TransferResult res;
  res.verbatim = from_layers == to_layers;
  // Source lines by layer, in order (later lines of one layer override earlier ones).
  std::map<int, std::vector<const RecipeRule*>> by_layer;
  std::vector<const RecipeRule*> global;
  for (const auto& l : recipe) {
    if (const auto ref = find_layer_ref(l.pattern)) {
      by_layer[ref->layer].push_back(&l);
    } else {
      global.push_back(&l);
    }
  }
  const auto emit = [&](const std::string& pattern, const std::string& type) {
    const TensorInfo* t = first_match(pattern, target);
    if (!t) {
      res.notes.push_back(fmt::format("dropped '{}': no such tensor in the target", pattern));
      return;
    }
    std::string out_type = type_by_name(type).name;
    if (!row_fits(type_by_name(out_type), t->row_elems())) {
      const std::string fb = stock_effective_type(*t, out_type);
      res.notes.push_back(fmt::format("'{}': {} does not fit rows of {}, using {}", pattern,
                                      out_type, t->row_elems(), fb));
      out_type = fb;
    }
    res.lines.push_back({pattern, out_type, 0});
  };
  for (const RecipeRule* l : global) emit(l->pattern, l->type);
  for (int j = 0; j < to_layers; ++j) {
    // Inverse of i -> round(i·M/N): every target layer gets exactly one source layer.
    const int i = std::min(from_layers - 1,
                           static_cast<int>(std::lround(static_cast<double>(j) * from_layers / to_layers)));
    auto it = by_layer.find(i);
    if (it == by_layer.end()) continue;
    for (const RecipeRule* l : it->second) {
      const LayerRef ref = *find_layer_ref(l->pattern);
      const std::string pattern = l->pattern.substr(0, ref.digits_begin) + std::to_string(j) +
                                  l->pattern.substr(ref.digits_end);
      emit(pattern, l->type);
    }
  }
  return res;
}

}  // namespace cb
