#include "cerebellum/card/svg.h"

#include <regex>

#include <gtest/gtest.h>

#include "cerebellum/card/machine.h"

namespace cb::card {
namespace {

int count(const std::string& s, const std::string& needle) {
  int n = 0;
  for (size_t pos = s.find(needle); pos != std::string::npos; pos = s.find(needle, pos + 1)) ++n;
  return n;
}

TEST(CardSvg, EscapesXmlSpecials) {
  EXPECT_EQ(xml_escape("a<b & \"c\" > 'd'"), "a&lt;b &amp; &quot;c&quot; &gt; &apos;d&apos;");
}

TEST(CardSvg, NiceTicksAreRoundAndCoverTheRange) {
  const auto t = nice_ticks(0.13, 0.92, 6);
  ASSERT_GE(t.size(), 3u);
  EXPECT_GE(t.front(), 0.13 - 1e-12);
  EXPECT_LE(t.back(), 0.92 + 1e-12);
  const double step = t[1] - t[0];
  EXPECT_NEAR(step, 0.2, 1e-12);
  EXPECT_EQ(nice_ticks(5, 5).size(), 1u);
}

TEST(CardSvg, HeatmapHasOneTitledRectPerCellAndEscapesLabels) {
  Heatmap h;
  h.title = "t";
  h.value_label = "v";
  h.row_labels = {"0", "1", "global"};
  h.col_labels = {"attn_q", "ffn<down>"};
  h.cells = {{{0.5, ""}, {std::nullopt, ""}}, {{0.1, ""}, {-0.2, ""}}, {{0.0, "custom & tip"}, {1.0, ""}}};
  const std::string svg = heatmap_svg(h);
  EXPECT_EQ(count(svg, "<rect class=\"cell\""), 6);
  EXPECT_EQ(count(svg, "<title>"), 6);
  EXPECT_NE(svg.find("ffn&lt;down&gt;"), std::string::npos);
  EXPECT_NE(svg.find("custom &amp; tip"), std::string::npos);
  EXPECT_NE(svg.find("not measured"), std::string::npos);
  // The largest value is the darkest; negative values are white like zero.
  EXPECT_NE(svg.find("fill=\"#b40014\""), std::string::npos);
  EXPECT_EQ(svg.find("<svg"), svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""));
}

TEST(CardSvg, ChartDrawsOnePolylinePerNonEmptySeriesWithAxisLabels) {
  Chart c;
  c.title = "PPL";
  c.x_label = "size (MB)";
  c.y_label = "perplexity";
  c.series = {{"stock", "#1f77b4", {{6.0, 32.5, 0.4, "Q2_K"}, {14.7, 27.7, 0.3, "Q8_0"}, {8.8, 27.9, {}, "Q4_K_M"}}},
              {"ours", "#d62728", {{8.0, 27.95, 0.3, "cb"}}},
              {"empty", "#000000", {}}};
  const std::string svg = chart_svg(c);
  EXPECT_EQ(count(svg, "<polyline class=\"series\""), 2);
  EXPECT_EQ(count(svg, "<circle"), 4);
  EXPECT_EQ(count(svg, "class=\"err\""), 3);
  EXPECT_NE(svg.find(">size (MB)</text>"), std::string::npos);
  EXPECT_NE(svg.find(">perplexity</text>"), std::string::npos);
  EXPECT_EQ(svg.find(">empty</text>"), std::string::npos);  // no legend entry for it
  // Points come out in x order: Q2_K (6.0) first.
  const std::regex first(R"(points="([0-9.]+),)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(svg, m, first));
  EXPECT_NEAR(std::stod(m[1].str()), 70 + 0.05 / 1.1 * 520, 1.0);
}

TEST(CardSvg, ChartWithoutPointsSaysSo) {
  Chart c;
  c.series = {{"a", "#000", {}}};
  EXPECT_NE(chart_svg(c).find("no data"), std::string::npos);
}

}  // namespace
}  // namespace cb::card
