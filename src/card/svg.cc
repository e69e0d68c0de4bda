// Hand-written SVG for the card. Layout constants are in px; every element a
// reader might hover (cells, points) carries a <title> so the exact number is
// one hover away, the colour or position only being the overview.
#include "cerebellum/card/svg.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace cb::card {
namespace {

std::string fmt_num(double v) {
  if (v == 0) return "0";
  const double a = std::fabs(v);
  if (a >= 1e4 || a < 1e-3) return fmt::format("{:.2g}", v);
  if (a >= 100) return fmt::format("{:.0f}", v);
  if (a >= 1) return fmt::format("{:.3g}", v);
  return fmt::format("{:.3g}", v);
}

std::string svg_open(int width_px, int height_px) {
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
      width_px, height_px);
}

std::string text(double x, double y, std::string_view s, std::string_view extra = "") {
  return fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\"{}{}>{}</text>\n", x, y, extra.empty() ? "" : " ",
                     extra, xml_escape(s));
}

// White (0) to dark red (1).
std::string heat_color(double t) {
  t = std::clamp(t, 0.0, 1.0);
  const int r = static_cast<int>(std::lround(255 - 75 * t));
  const int g = static_cast<int>(std::lround(255 - 255 * t));
  const int b = static_cast<int>(std::lround(255 - 235 * t));
  return fmt::format("#{:02x}{:02x}{:02x}", r, g, b);
}

}  // namespace

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int max_ticks) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(1, max_ticks - 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  return ticks;
}

std::string heatmap_svg(const Heatmap& h) {
  const int cell_w = 56, cell_h = 18, left = 70, top = 110, legend_w = 90;
  const int n_rows = static_cast<int>(h.row_labels.size());
  const int n_cols = static_cast<int>(h.col_labels.size());
  const int width = left + n_cols * cell_w + legend_w + 20;
  const int height = top + n_rows * cell_h + 50;
  double vmax = 0;
  for (const auto& row : h.cells)
    for (const auto& c : row)
      if (c.value) vmax = std::max(vmax, *c.value);
  std::string s = svg_open(width, height);
  s += text(10, 20, h.title, "font-size=\"14\" font-weight=\"bold\"");
  // Column labels, rotated so long role names fit.
  for (int c = 0; c < n_cols; ++c) {
    const double x = left + c * cell_w + cell_w / 2.0, y = top - 6;
    s += text(x, y, h.col_labels[c], fmt::format("transform=\"rotate(-45 {:.1f} {:.1f})\"", x, y));
  }
  s += text(left + n_cols * cell_w / 2.0, 36, h.col_axis, "text-anchor=\"middle\" font-style=\"italic\"");
  s += text(12, top - 6, h.row_axis, "font-style=\"italic\"");
  for (int r = 0; r < n_rows; ++r) {
    const double y = top + r * cell_h;
    s += text(left - 6, y + cell_h * 0.7, h.row_labels[r], "text-anchor=\"end\"");
    for (int c = 0; c < n_cols; ++c) {
      const HeatmapCell& cell = r < static_cast<int>(h.cells.size()) && c < static_cast<int>(h.cells[r].size())
                                    ? h.cells[r][c] : HeatmapCell{};
      const std::string fill = !cell.value ? "#d9d9d9" : heat_color(vmax > 0 ? *cell.value / vmax : 0);
      std::string tip = cell.tooltip;
      if (tip.empty()) {
        tip = fmt::format("{} {} {}: {}", h.row_axis, h.row_labels[r], h.col_labels[c],
                          cell.value ? fmt_num(*cell.value) : "not measured");
      }
      s += fmt::format("<rect class=\"cell\" x=\"{}\" y=\"{:.1f}\" width=\"{}\" height=\"{}\" fill=\"{}\" "
                       "stroke=\"white\"><title>{}</title></rect>\n",
                       left + c * cell_w, y, cell_w, cell_h, fill, xml_escape(tip));
    }
  }
  // Colour scale: a vertical gradient with min/mid/max ticks, plus the grey swatch.
  const double lx = left + n_cols * cell_w + 20, ly = top, lh = std::max(60, n_rows * cell_h - 30);
  s += "<defs><linearGradient id=\"heat\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">"
       "<stop offset=\"0\" stop-color=\"" + heat_color(0) + "\"/><stop offset=\"1\" stop-color=\"" +
       heat_color(1) + "\"/></linearGradient></defs>\n";
  s += fmt::format("<g class=\"legend\"><rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"14\" height=\"{:.1f}\" "
                   "fill=\"url(#heat)\" stroke=\"black\" stroke-width=\"0.5\"/>\n", lx, ly, lh);
  for (double f : {0.0, 0.5, 1.0}) {
    s += text(lx + 18, ly + lh * (1 - f) + 4, fmt_num(f * vmax));
  }
  s += text(lx, ly - 8, h.value_label);
  s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"14\" height=\"10\" fill=\"#d9d9d9\"/>\n", lx, ly + lh + 10);
  s += text(lx + 18, ly + lh + 19, "not measured");
  s += "</g>\n</svg>\n";
  return s;
}

namespace {

struct Frame {
  double left = 70, top = 40, width = 520, height = 300;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  bool log_y = false;
  double px(double x) const { return left + (x - x0) / (x1 - x0) * width; }
  double ty(double y) const { return log_y ? std::log10(std::max(y, 1e-12)) : y; }
  double py(double y) const { return top + height - (ty(y) - y0) / (y1 - y0) * height; }
};

// Data range (with error bars) padded by 5% so points do not sit on the axes.
Frame fit_frame(const Chart& c) {
  Frame f;
  f.log_y = c.log_y;
  double xl = std::numeric_limits<double>::max(), xh = -xl, yl = xl, yh = -xl;
  for (const auto& s : c.series)
    for (const auto& p : s.points) {
      xl = std::min(xl, p.x), xh = std::max(xh, p.x);
      const double e = p.y_err.value_or(0);
      yl = std::min(yl, f.ty(c.log_y ? std::max(p.y - e, p.y * 0.5) : p.y - e));
      yh = std::max(yh, f.ty(p.y + e));
    }
  if (xl > xh) xl = 0, xh = 1, yl = 0, yh = 1;
  if (xh - xl < 1e-12) xl -= 0.5, xh += 0.5;
  if (yh - yl < 1e-12) yl -= 0.5, yh += 0.5;
  const double px = 0.05 * (xh - xl), py = 0.08 * (yh - yl);
  f.x0 = xl - px, f.x1 = xh + px, f.y0 = yl - py, f.y1 = yh + py;
  return f;
}

std::string chart_axes(const Chart& c, const Frame& f) {
  std::string s;
  s += fmt::format("<g class=\"axes\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" "
                   "stroke=\"black\"/>\n", f.left, f.top, f.width, f.height);
  for (double t : nice_ticks(f.x0, f.x1, 7)) {
    const double x = f.px(t);
    s += fmt::format("<line class=\"tick\" x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"black\"/>\n",
                     x, f.top + f.height, f.top + f.height + 5);
    s += text(x, f.top + f.height + 18, fmt_num(t), "text-anchor=\"middle\"");
  }
  for (double t : nice_ticks(f.y0, f.y1, 6)) {
    const double y = f.top + f.height - (t - f.y0) / (f.y1 - f.y0) * f.height;
    s += fmt::format("<line class=\"tick\" x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"black\"/>\n",
                     f.left - 5, y, f.left, y);
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#eeeeee\"/>\n", f.left, y,
                     f.left + f.width, y);
    s += text(f.left - 8, y + 4, fmt_num(c.log_y ? std::pow(10.0, t) : t), "text-anchor=\"end\"");
  }
  s += text(f.left + f.width / 2, f.top + f.height + 38, c.x_label, "class=\"x-label\" text-anchor=\"middle\"");
  const double yx = 16, yy = f.top + f.height / 2;
  s += text(yx, yy, c.y_label + (c.log_y ? " (log scale)" : ""),
            fmt::format("class=\"y-label\" text-anchor=\"middle\" transform=\"rotate(-90 {} {})\"", yx, yy));
  s += "</g>\n";
  return s;
}

std::string chart_series(const Series& sr, const Frame& f) {
  std::vector<SeriesPoint> pts = sr.points;
  std::sort(pts.begin(), pts.end(), [](const auto& a, const auto& b) { return a.x < b.x; });
  std::string poly;
  for (const auto& p : pts) poly += fmt::format("{}{:.1f},{:.1f}", poly.empty() ? "" : " ", f.px(p.x), f.py(p.y));
  std::string s = fmt::format("<g class=\"series-group\"><polyline class=\"series\" points=\"{}\" fill=\"none\" "
                              "stroke=\"{}\" stroke-width=\"2\"><title>{}</title></polyline>\n",
                              poly, sr.color, xml_escape(sr.name));
  for (const auto& p : pts) {
    const double x = f.px(p.x), y = f.py(p.y);
    if (p.y_err && *p.y_err > 0) {
      const double lo = f.py(f.log_y ? std::max(p.y - *p.y_err, p.y * 0.5) : p.y - *p.y_err);
      s += fmt::format("<line class=\"err\" x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" "
                       "stroke=\"{3}\"/>\n", x, lo, f.py(p.y + *p.y_err), sr.color);
    }
    const std::string tip = fmt::format("{}{}{}: x={} y={}{}", sr.name, p.label.empty() ? "" : " ", p.label,
                                        fmt_num(p.x), fmt_num(p.y), p.y_err ? " ± " + fmt_num(*p.y_err) : "");
    s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"><title>{}</title></circle>\n", x, y,
                     sr.color, xml_escape(tip));
    if (!p.label.empty()) s += text(x + 6, y - 6, p.label, "font-size=\"10\"");
  }
  return s + "</g>\n";
}

}  // namespace

std::string chart_svg(const Chart& c) {
  const Frame f = fit_frame(c);
  const int width = 800, height = 400;  // room for the legend right of the 520 px plot
  std::string s = svg_open(width, height);
  s += text(f.left, 22, c.title, "font-size=\"14\" font-weight=\"bold\"");
  s += chart_axes(c, f);
  bool any = false;
  for (const auto& sr : c.series) {
    if (sr.points.empty()) continue;
    any = true;
    s += chart_series(sr, f);
  }
  if (!any) s += text(f.left + f.width / 2, f.top + f.height / 2, "no data", "text-anchor=\"middle\"");
  // Legend to the right of the plot.
  s += "<g class=\"legend\">\n";
  double ly = f.top + 10;
  for (const auto& sr : c.series) {
    if (sr.points.empty()) continue;
    const double lx = f.left + f.width + 15;
    s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"/>\n", lx, ly,
                     lx + 20, ly, sr.color);
    s += text(lx + 26, ly + 4, sr.name);
    ly += 18;
  }
  s += "</g>\n</svg>\n";
  return s;
}

}  // namespace cb::card
