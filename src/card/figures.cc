// The card's figures from run-dir data.
#include "card/figures.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>

namespace cb::card {
namespace {

struct CellAcc {
  // type -> domain -> (Δ, se); averaged over domains, max over types.
  std::map<std::string, std::map<std::string, std::pair<double, double>>> by_type;
};

std::string row_of(int layer) { return layer < 0 ? "global" : std::to_string(layer); }

}  // namespace

Heatmap sensitivity_heatmap(const Journal& journal, const ModelInfo& model) {
  std::map<std::pair<std::string, std::string>, CellAcc> acc;  // (row, col)
  std::set<std::string> roles;
  for (const auto& t : model.tensors) roles.insert(t.role);
  for (const auto& m : journal.measurements) {
    if (m.direction != "ablate") continue;
    std::string row, col, type;
    if (m.unit.level == "tensor" && m.unit.tensors.size() == 1) {
      const TensorInfo* t = model.find(m.unit.tensors[0]);
      row = row_of(t ? t->layer : tensor_layer(m.unit.tensors[0]));
      col = t ? t->role : tensor_role(m.unit.tensors[0]);
      auto it = m.types.find(m.unit.tensors[0]);
      type = it == m.types.end() ? "" : it->second;
    } else if (m.unit.level == "layer" && !m.unit.tensors.empty()) {
      row = row_of(tensor_layer(m.unit.tensors[0]));
      col = "(layer)";
      type = m.types.empty() ? "" : m.types.begin()->second;
    } else {
      continue;  // groups span cells; the plan accounts for them
    }
    roles.insert(col);
    acc[{row, col}].by_type[type][m.domain] = {m.delta_kld, m.delta_kld_se};
  }
  Heatmap h;
  h.title = "Sensitivity: ΔKLD when one tensor is quantized down (ablation)";
  h.value_label = "ΔKLD (nats)";
  for (int l = 0; l < model.n_layers; ++l) h.row_labels.push_back(std::to_string(l));
  h.row_labels.push_back("global");
  h.col_labels.assign(roles.begin(), roles.end());
  for (const auto& row : h.row_labels) {
    std::vector<HeatmapCell> cells;
    for (const auto& col : h.col_labels) {
      HeatmapCell cell;
      auto it = acc.find({row, col});
      if (it != acc.end()) {
        std::string best_type;
        double best = 0, best_se = 0;
        bool first = true;
        for (const auto& [type, doms] : it->second.by_type) {
          double sum = 0, se2 = 0;
          for (const auto& [d, v] : doms) sum += v.first, se2 += v.second * v.second;
          const double mean = sum / doms.size();
          if (first || mean > best) best = mean, best_se = std::sqrt(se2) / doms.size(), best_type = type;
          first = false;
        }
        cell.value = best;
        cell.tooltip = fmt::format("layer {} {}{}{}: ΔKLD {:.5f} ± {:.5f} nats", row, col,
                                   best_type.empty() ? "" : " at ", best_type, best, best_se);
      } else {
        cell.tooltip = fmt::format("layer {} {}: not measured", row, col);
      }
      cells.push_back(std::move(cell));
    }
    h.cells.push_back(std::move(cells));
  }
  return h;
}

Chart quality_chart(const std::vector<EvalEntry>& eval, bool kld) {
  Chart c;
  c.title = kld ? "KLD vs the full-precision model, by file size" : "Perplexity by file size";
  c.x_label = "file size (MB, 10^6 bytes)";
  c.y_label = kld ? "mean KLD (nats)" : "perplexity";
  c.log_y = kld;
  Series stock{"stock llama-quantize mixes", "#1f77b4", {}};
  Series build{"cerebellum build", "#d62728", {}};
  Series ref{"reference", "#2ca02c", {}};
  Series proxy{"weight-error-only plan", "#9467bd", {}};
  for (const auto& e : eval) {
    const std::optional<double> y = kld ? e.kld_mean : e.ppl;
    if (!y || (kld && *y <= 0)) continue;  // the reference has KLD 0: no point on a log axis
    SeriesPoint p{e.size_bytes / 1e6, *y, kld ? e.kld_se : e.ppl_se, e.name};
    (e.kind == "build" ? build : e.kind == "reference" ? ref : e.kind == "weight_error_only" ? proxy : stock)
        .points.push_back(p);
  }
  c.series = {stock, build, ref};
  if (!proxy.points.empty()) c.series.push_back(proxy);
  return c;
}

}  // namespace cb::card
