// The card's figures as hand-written SVG (no external libraries): a heatmap
// (layer × role, colour = measured damage) and an x/y chart of one or more
// series (KLD or PPL against file size). Pure functions: data in, text out.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cb::card {

// Escapes &, <, >, " and ' for XML text and attribute values.
std::string xml_escape(std::string_view s);

// About `max_ticks` round tick values covering [lo, hi] (1, 2, 5 × 10^k steps).
std::vector<double> nice_ticks(double lo, double hi, int max_ticks = 6);

struct HeatmapCell {
  std::optional<double> value;   // absent = not measured (drawn grey)
  std::string tooltip;           // the cell's <title>; a default is made from the value
};

struct Heatmap {
  std::string title;
  std::string value_label;               // e.g. "ΔKLD (nats)" for the colour scale
  std::vector<std::string> row_labels;   // e.g. "0".."11", "global"
  std::vector<std::string> col_labels;   // roles
  std::vector<std::vector<HeatmapCell>> cells;  // [row][col]
  std::string row_axis = "layer", col_axis = "role";
};

// One <rect class="cell"> (with a <title>) per cell, row/column labels, and a
// colour-scale legend (white → red over [0, max]; values ≤ 0 are white).
std::string heatmap_svg(const Heatmap& h);

struct SeriesPoint {
  double x = 0, y = 0;
  std::optional<double> y_err;  // ± error bar (e.g. one standard error)
  std::string label;            // drawn next to the point, e.g. "Q4_K_M"
};

struct Series {
  std::string name;             // legend entry
  std::string color;            // CSS colour, e.g. "#1f77b4"
  std::vector<SeriesPoint> points;  // drawn in x order
};

struct Chart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool log_y = false;           // KLD spans decades: log10 axis
};

// Axes with ticks and labels, one <polyline class="series"> per series with
// its points as <circle>s (each with a <title>), error bars, and a legend.
// Series without points are left out; a chart with no points at all says so.
std::string chart_svg(const Chart& c);

}  // namespace cb::card
