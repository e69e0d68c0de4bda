// The search's move generator: within the budget, deterministic, ranked,
// respects frozen tensors / tried moves / the per-tensor cap, pays promotions
// with one or several demotions.
#include <map>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "cerebellum/quantize/search.h"

namespace cb {
namespace {

// Tensor with candidates (type, bytes, damage), sorted by size as build_problem does.
TensorCurve curve(const std::string& name, int layer,
                  std::vector<std::tuple<std::string, int64_t, double>> cands) {
  TensorCurve c;
  c.name = name;
  c.layer = layer;
  for (const auto& [type, bytes, dmg] : cands) c.candidates.push_back({type, bytes, dmg, false});
  return c;
}

// Two layers of two tensors plus output: promotions cost 100 B, demotions free 40 B.
AllocationProblem toy() {
  AllocationProblem p;
  for (int l = 0; l < 2; ++l) {
    for (const char* role : {"attn_q", "ffn_down"}) {
      const double w = (l + 1) * (role[0] == 'f' ? 2.0 : 1.0);
      p.tensors.push_back(curve(fmt::format("blk.{}.{}.weight", l, role), l,
                                {{"q3_K", 60, 0.004 * w}, {"q4_K", 100, 0.001 * w}, {"iq4_nl", 100, 0.0012 * w},
                                 {"q5_K", 200, 0.0}}));
    }
  }
  p.tensors.push_back(curve("output.weight", -1, {{"q4_K", 100, 0.002}, {"q6_K", 200, 0.0}}));
  return p;
}

// Every block tensor at q4_K, output at q4_K: 500 B.
std::vector<int> start() { return {1, 1, 1, 1, 0}; }

int64_t total_bytes(const AllocationProblem& p, const std::vector<int>& choice) {
  int64_t s = 0;
  for (size_t i = 0; i < p.tensors.size(); ++i) s += p.tensors[i].candidates[choice[i]].size_bytes;
  return s;
}

TEST(SearchMoves, StayWithinBudgetAndAddUp) {
  const AllocationProblem p = toy();
  const std::vector<int> choice = start();
  for (int64_t capacity : {500, 530, 600, 700}) {
    MoveOptions o;
    o.max_per_tensor = 100;
    const auto moves = propose_moves(p, choice, capacity, o);
    ASSERT_FALSE(moves.empty()) << capacity;
    for (const auto& m : moves) {
      std::vector<int> next = choice;
      double dd = 0;
      std::set<int> touched;
      for (const auto& c : m.changes) {
        EXPECT_EQ(c.from, choice[c.tensor]);
        EXPECT_NE(c.to, c.from);
        EXPECT_TRUE(touched.insert(c.tensor).second) << "a tensor changes twice: " << m.describe(p);
        dd += p.tensors[c.tensor].candidates[c.to].damage_kld - p.tensors[c.tensor].candidates[c.from].damage_kld;
        next[c.tensor] = c.to;
      }
      EXPECT_LE(total_bytes(p, next), capacity) << m.describe(p);
      EXPECT_EQ(m.delta_bytes, total_bytes(p, next) - total_bytes(p, choice));
      EXPECT_NEAR(m.predicted_delta_kld, dd, 1e-15);
    }
  }
}

TEST(SearchMoves, PaysPromotionsWithOneOrSeveralDemotions) {
  const AllocationProblem p = toy();
  const std::vector<int> choice = start();
  MoveOptions o;
  o.max_per_tensor = 1000;
  o.max_moves = 100000;
  const auto moves = propose_moves(p, choice, 500, o);  // no slack: every promotion is paid for
  bool pair = false, several = false, type_swap = false;
  for (const auto& m : moves) {
    pair |= m.changes.size() == 2 && m.delta_bytes < 0;
    several |= m.changes.size() >= 3;  // +100 B needs three demotions of 40 B
    type_swap |= m.changes.size() == 1 && m.delta_bytes == 0;
    EXPECT_LE(m.changes.size(), 4u);  // max_demotions = 3
  }
  EXPECT_FALSE(pair);  // one demotion frees 40 B, a promotion needs 100 B
  EXPECT_TRUE(several);
  EXPECT_TRUE(type_swap);  // q4_K -> iq4_nl, same size
  // With 60 B of slack one demotion pays.
  const auto slack = propose_moves(p, choice, 560, o);
  EXPECT_TRUE(std::any_of(slack.begin(), slack.end(), [](const SearchMove& m) { return m.changes.size() == 2; }));
}

TEST(SearchMoves, RankedDeterministicAndFiltered) {
  const AllocationProblem p = toy();
  const std::vector<int> choice = start();
  MoveOptions o;
  const auto a = propose_moves(p, choice, 560, o), b = propose_moves(p, choice, 560, o);
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) EXPECT_EQ(a[k].describe(p), b[k].describe(p));
  // Alternation: a same-layer move first, then the best of all moves.
  ASSERT_GE(a.size(), 2u);
  EXPECT_TRUE(a[0].same_layer);
  std::map<int, int> uses;
  for (const auto& m : a) {
    for (const auto& c : m.changes) EXPECT_LE(++uses[c.tensor], o.max_per_tensor);
  }
  // Tried moves are not proposed again; frozen tensors never move.
  const auto c = propose_moves(p, choice, 560, o, {a[0].signature(p)});
  for (const auto& m : c) EXPECT_NE(m.signature(p), a[0].signature(p));
  o.frozen = {"blk.1.ffn_down.weight"};
  for (const auto& m : propose_moves(p, choice, 560, o)) {
    for (const auto& ch : m.changes) EXPECT_NE(p.tensors[ch.tensor].name, "blk.1.ffn_down.weight");
  }
  // Same-layer flags are true exactly when every change is in one block.
  for (const auto& m : a) {
    std::set<int> layers;
    for (const auto& ch : m.changes) layers.insert(p.tensors[ch.tensor].layer);
    EXPECT_EQ(m.same_layer, m.changes.size() > 1 && layers.size() == 1 && *layers.begin() >= 0) << m.describe(p);
  }
}

TEST(SearchMoves, NothingFitsNothingProposed) {
  const AllocationProblem p = toy();
  const std::vector<int> choice(p.tensors.size(), 0);  // smallest everywhere
  // Capacity exactly the current size and only promotions or equal-size swaps... q3_K has no
  // same-size sibling, so every move needs bytes another tensor cannot free.
  EXPECT_TRUE(propose_moves(p, choice, total_bytes(p, choice)).empty());
}

}  // namespace
}  // namespace cb
