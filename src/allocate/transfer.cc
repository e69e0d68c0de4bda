// Recipe transfer to a sibling model (other depth) or a same-shape finetune.
#include <cmath>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "cerebellum/allocate/allocate.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/quant_types.h"

namespace cb {
namespace {

// "blk.7." or its escaped regex form "blk\.7\." inside a recipe pattern.
const std::regex& layer_re() {
  static const std::regex re(R"(blk(\\?\.)(\d+)(\\?\.))");
  return re;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// Whether `pattern` (exact name or regex) names some tensor of the target.
const TensorInfo* first_match(const std::string& pattern, const ModelInfo& target) {
  if (const TensorInfo* t = target.find(pattern)) return t;
  try {
    const std::regex re(pattern);
    for (const auto& t : target.tensors) {
      if (std::regex_search(t.name, re)) return &t;
    }
  } catch (const std::regex_error&) {
  }
  return nullptr;
}

}  // namespace

std::vector<RecipeLine> parse_recipe_lines(const std::string& text, const std::string& where) {
  std::vector<RecipeLine> out;
  size_t pos = 0;
  int line_no = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (auto hash = line.find('#'); hash != std::string::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    const auto eq = line.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == line.size()) {
      throw RecipeError(fmt::format("{}:{}: expected name=type, got '{}'", where, line_no, line));
    }
    const std::string type = trim(line.substr(eq + 1));
    if (!find_type(type)) {
      throw RecipeError(fmt::format("{}:{}: unknown type '{}'", where, line_no, type));
    }
    out.push_back({trim(line.substr(0, eq)), type});
  }
  return out;
}

TransferResult transfer_recipe(const std::vector<RecipeLine>& recipe, int from_layers,
                               const ModelInfo& target) {
  if (from_layers <= 0) throw UsageError("--from-layers must be positive");
  const int to_layers = target.n_layers;
  TransferResult res;
  res.verbatim = from_layers == to_layers;
  // Source lines by layer, in order (later lines of one layer override earlier ones).
  std::map<int, std::vector<const RecipeLine*>> by_layer;
  std::vector<const RecipeLine*> global;
  for (const auto& l : recipe) {
    std::smatch m;
    if (std::regex_search(l.pattern, m, layer_re())) {
      by_layer[std::stoi(m[2].str())].push_back(&l);
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
    res.lines.push_back({pattern, out_type});
  };
  for (const RecipeLine* l : global) emit(l->pattern, l->type);
  for (int j = 0; j < to_layers; ++j) {
    // Inverse of i -> round(i·M/N): every target layer gets exactly one source layer.
    const int i = std::min(from_layers - 1,
                           static_cast<int>(std::lround(static_cast<double>(j) * from_layers / to_layers)));
    auto it = by_layer.find(i);
    if (it == by_layer.end()) continue;
    for (const RecipeLine* l : it->second) {
      std::smatch m;
      std::regex_search(l->pattern, m, layer_re());
      const std::string pattern = m.prefix().str() + "blk" + m[1].str() + std::to_string(j) +
                                  m[3].str() + m.suffix().str();
      emit(pattern, l->type);
    }
  }
  return res;
}

}  // namespace cb
