// The local search's move generator: pure, deterministic, within the budget.
#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "cerebellum/quantize/search.h"

namespace cb {
namespace {

struct Option {
  int tensor = 0, from = 0, to = 0;
  int64_t db = 0;   // bytes after − before
  double dd = 0;    // predicted damage after − before
};

// Distinct-size level of every candidate (candidates are sorted by size).
std::vector<int> size_levels(const TensorCurve& c) {
  std::vector<int> level(c.candidates.size(), 0);
  for (size_t k = 1; k < c.candidates.size(); ++k) {
    level[k] = level[k - 1] + (c.candidates[k].size_bytes != c.candidates[k - 1].size_bytes ? 1 : 0);
  }
  return level;
}

// Changes of tensor i within ±levels sizes: bytes up (or a same-size type) / down.
void neighbours(const AllocationProblem& p, const std::vector<int>& choice, int i, int levels,
                std::vector<Option>& ups, std::vector<Option>& downs) {
  const TensorCurve& c = p.tensors[i];
  const std::vector<int> level = size_levels(c);
  const int cur = choice[i];
  for (int k = 0; k < static_cast<int>(c.candidates.size()); ++k) {
    if (k == cur || std::abs(level[k] - level[cur]) > levels) continue;
    const Option o{i, cur, k, c.candidates[k].size_bytes - c.candidates[cur].size_bytes,
                   c.candidates[k].damage_kld - c.candidates[cur].damage_kld};
    (o.db >= 0 ? ups : downs).push_back(o);
  }
}

SearchMove make_move(const AllocationProblem& p, std::vector<Option> opts) {
  std::sort(opts.begin(), opts.end(), [](const Option& a, const Option& b) { return a.tensor < b.tensor; });
  SearchMove m;
  const int layer = p.tensors[opts.front().tensor].layer;
  m.same_layer = opts.size() > 1 && layer >= 0;
  for (const auto& o : opts) {
    m.changes.push_back({o.tensor, o.from, o.to});
    m.delta_bytes += o.db;
    m.predicted_delta_kld += o.dd;
    m.same_layer = m.same_layer && p.tensors[o.tensor].layer == layer;
  }
  return m;
}

// One promotion paid by the cheapest demotions (damage per freed byte) of
// other tensors, at most one step each; nothing when they cannot pay.
void add_paid_by_several(const AllocationProblem& p, const Option& up, std::vector<Option> downs,
                         int64_t slack, int max_demotions, std::vector<SearchMove>& out) {
  std::map<int, Option> best;  // per tensor: its cheapest demotion per byte
  for (const auto& d : downs) {
    if (d.tensor == up.tensor) continue;
    auto it = best.find(d.tensor);
    const auto rate = [](const Option& o) { return o.dd / static_cast<double>(-o.db); };
    if (it == best.end() || rate(d) < rate(it->second)) best[d.tensor] = d;
  }
  downs.clear();
  for (const auto& [t, d] : best) downs.push_back(d);
  std::stable_sort(downs.begin(), downs.end(), [](const Option& a, const Option& b) {
    return a.dd * static_cast<double>(-b.db) < b.dd * static_cast<double>(-a.db);
  });
  std::vector<Option> picked{up};
  int64_t need = up.db - slack;
  for (const auto& d : downs) {
    if (need <= 0 || static_cast<int>(picked.size()) > max_demotions) break;
    picked.push_back(d);
    need += d.db;
  }
  if (need <= 0 && picked.size() > 2) out.push_back(make_move(p, picked));
}

bool ranks_before(const SearchMove& a, const SearchMove& b) {
  if (a.predicted_delta_kld != b.predicted_delta_kld) return a.predicted_delta_kld < b.predicted_delta_kld;
  if (a.changes.size() != b.changes.size()) return a.changes.size() < b.changes.size();
  if (a.delta_bytes != b.delta_bytes) return a.delta_bytes > b.delta_bytes;  // spend the budget
  for (size_t k = 0; k < a.changes.size(); ++k) {  // same length here
    const TensorChange &x = a.changes[k], &y = b.changes[k];
    if (x.tensor != y.tensor) return x.tensor < y.tensor;
    if (x.to != y.to) return x.to < y.to;
  }
  return false;
}

// All moves, unranked: singles within the slack, pairs, and several demotions.
std::vector<SearchMove> all_moves(const AllocationProblem& p, const std::vector<int>& choice, int64_t slack,
                                  const MoveOptions& o) {
  const std::set<std::string> frozen(o.frozen.begin(), o.frozen.end());
  std::vector<Option> ups, downs;
  for (int i = 0; i < static_cast<int>(p.tensors.size()); ++i) {
    if (!frozen.count(p.tensors[i].name)) neighbours(p, choice, i, o.levels, ups, downs);
  }
  std::vector<SearchMove> out;
  for (const auto& up : ups) {
    if (up.db <= slack) {
      out.push_back(make_move(p, {up}));
      continue;
    }
    std::vector<Option> same_layer;
    for (const auto& d : downs) {
      if (d.tensor == up.tensor) continue;
      if (up.db + d.db <= slack) out.push_back(make_move(p, {up, d}));
      if (p.tensors[d.tensor].layer >= 0 && p.tensors[d.tensor].layer == p.tensors[up.tensor].layer) {
        same_layer.push_back(d);
      }
    }
    add_paid_by_several(p, up, downs, slack, o.max_demotions, out);
    add_paid_by_several(p, up, same_layer, slack, o.max_demotions, out);
  }
  return out;
}

}  // namespace

std::string SearchMove::describe(const AllocationProblem& p) const {
  std::string s;
  for (const auto& c : changes) {
    const TensorCurve& t = p.tensors[c.tensor];
    s += fmt::format("{}{}:{}>{}", s.empty() ? "" : " ", t.name, t.candidates[c.from].type, t.candidates[c.to].type);
  }
  return s;
}

std::string SearchMove::signature(const AllocationProblem& p) const {
  std::string s;
  for (const auto& c : changes) {
    const TensorCurve& t = p.tensors[c.tensor];
    s += fmt::format("{}{}={}", s.empty() ? "" : ",", t.name, t.candidates[c.to].type);
  }
  return s;
}

std::vector<SearchMove> propose_moves(const AllocationProblem& p, const std::vector<int>& choice,
                                      int64_t tensor_capacity_bytes, const MoveOptions& o,
                                      const std::vector<std::string>& tried) {
  int64_t total = 0;
  for (size_t i = 0; i < p.tensors.size(); ++i) total += p.tensors[i].candidates.at(choice.at(i)).size_bytes;
  std::vector<SearchMove> moves = all_moves(p, choice, tensor_capacity_bytes - total, o);
  std::sort(moves.begin(), moves.end(), ranks_before);
  std::vector<const SearchMove*> lists[2];  // same-layer, all
  for (const auto& m : moves) {
    if (m.same_layer) lists[0].push_back(&m);
    lists[1].push_back(&m);
  }
  std::set<std::string> seen(tried.begin(), tried.end());
  std::map<int, int> uses;  // tensor -> returned moves touching it
  std::vector<SearchMove> out;
  size_t pos[2] = {0, 0};
  for (int turn = 0; static_cast<int>(out.size()) < o.max_moves; turn ^= 1) {
    if (pos[0] >= lists[0].size() && pos[1] >= lists[1].size()) break;
    auto& list = lists[turn];
    while (pos[turn] < list.size()) {
      const SearchMove& m = *list[pos[turn]++];
      const bool crowded = std::any_of(m.changes.begin(), m.changes.end(),
                                       [&](const TensorChange& c) { return uses[c.tensor] >= o.max_per_tensor; });
      if (crowded || !seen.insert(m.signature(p)).second) continue;
      for (const auto& c : m.changes) ++uses[c.tensor];
      out.push_back(m);
      break;
    }
  }
  return out;
}

}  // namespace cb
