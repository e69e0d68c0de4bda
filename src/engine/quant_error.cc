#include "engine/quant_error.h"

#include <algorithm>
#include <cmath>
#include <atomic>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "common/parallel.h"
#include "engine/engine.h"
#include "engine/eval_quant.h"
#include "ggml.h"
#include "gguf.h"

namespace cb::engine {
namespace {

// Rows per quantizer call: about 16 Ki elements (stock's chunk is 32·512).
constexpr int64_t kChunkElems = 16 * 1024;

// One tensor's sampled rows, as F32, with their expert (matrix) index.
struct Sample {
  int64_t n_cols = 0, n_rows_total = 0;
  std::vector<int64_t> expert;  // per sampled row
  std::vector<float> f32;       // n_sampled × n_cols
  int64_t n_rows() const { return static_cast<int64_t>(expert.size()); }
};

Sample read_sample(const GgufFile& src, int64_t index, int64_t n_elements) {
  Sample s;
  const std::vector<int64_t> shape = src.tensor_shape(index);
  const auto type = static_cast<ggml_type>(src.tensor_type(index));
  s.n_cols = shape.at(0);
  const int64_t rows_per_expert = shape.size() > 1 ? shape[1] : 1;
  s.n_rows_total = 1;
  for (size_t d = 1; d < shape.size(); ++d) s.n_rows_total *= shape[d];
  const int64_t n_sample =
      std::clamp<int64_t>(n_elements / std::max<int64_t>(1, s.n_cols), std::min<int64_t>(32, s.n_rows_total),
                          s.n_rows_total);
  const size_t row_bytes = ggml_row_size(type, s.n_cols);
  std::ifstream in(src.path(), std::ios::binary);
  std::vector<uint8_t> raw(row_bytes * n_sample);
  for (int64_t k = 0; k < n_sample; ++k) {
    const int64_t row = k * s.n_rows_total / n_sample;  // evenly spaced, row 0 first
    in.seekg(static_cast<std::streamoff>(src.data_offset() + src.tensor_offset(index) + row * row_bytes));
    in.read(reinterpret_cast<char*>(raw.data() + k * row_bytes), static_cast<std::streamsize>(row_bytes));
    if (!in) throw InputError(fmt::format("{}: cannot read tensor {} row {}", src.path(), src.tensor_name(index), row));
    s.expert.push_back(row / rows_per_expert);
  }
  s.f32 = dequantize_to_f32(type, raw.data(), n_sample * s.n_cols);
  return s;
}

struct Chunk {
  int64_t first = 0, n = 0;  // sampled rows [first, first + n), one expert
};

std::vector<Chunk> make_chunks(const Sample& s) {
  const int64_t per = std::max<int64_t>(1, kChunkElems / s.n_cols);
  std::vector<Chunk> out;
  for (int64_t r = 0; r < s.n_rows();) {
    int64_t n = 1;
    while (r + n < s.n_rows() && n < per && s.expert[r + n] == s.expert[r]) ++n;
    out.push_back({r, n});
    r += n;
  }
  return out;
}

// Column weights of sampled row `r` (nullptr = uniform).
const float* weights_of(const Sample& s, const std::vector<float>& w, int64_t r) {
  return w.empty() ? nullptr : w.data() + s.expert[r] * s.n_cols;
}

// Σ w·(x − x̂)² of each row of one chunk after quantize → dequantize at
// `type`, into row_err[c.first ..).
void chunk_error(const Sample& s, const Chunk& c, ggml_type type, const std::vector<float>& w, double* row_err) {
  if (type == GGML_TYPE_F32) return;
  const float* x = s.f32.data() + c.first * s.n_cols;
  const int64_t n = c.n * s.n_cols;
  std::vector<float> back(static_cast<size_t>(n));
  std::vector<uint8_t> q(ggml_row_size(type, s.n_cols) * c.n);
  ggml_quantize_chunk(type, x, q.data(), 0, c.n, s.n_cols, weights_of(s, w, c.first));
  ggml_get_type_traits(type)->to_float(q.data(), back.data(), n);
  for (int64_t r = 0; r < c.n; ++r) {
    const float* wr = weights_of(s, w, c.first + r);
    double err = 0;
    for (int64_t j = 0; j < s.n_cols; ++j) {
      const double d = static_cast<double>(x[r * s.n_cols + j]) - back[r * s.n_cols + j];
      err += (wr ? wr[j] : 1.0) * d * d;
    }
    row_err[c.first + r] = err;
  }
}

std::vector<double> row_energy(const Sample& s, const std::vector<float>& w) {
  std::vector<double> e(static_cast<size_t>(s.n_rows()), 0.0);
  for (int64_t r = 0; r < s.n_rows(); ++r) {
    const float* wr = weights_of(s, w, r);
    for (int64_t j = 0; j < s.n_cols; ++j) {
      const double x = s.f32[r * s.n_cols + j];
      e[r] += (wr ? wr[j] : 1.0) * x * x;
    }
  }
  return e;
}

// Ratio estimate Σerr/Σenergy and its standard error over the sampled rows,
// with the finite-population correction (0 when all rows are used).
std::pair<double, double> ratio_estimate(const double* err, const std::vector<double>& energy, int64_t n_total) {
  const size_t n = energy.size();
  double se_sum = 0, x_sum = 0;
  for (size_t i = 0; i < n; ++i) {
    se_sum += err[i];
    x_sum += energy[i];
  }
  if (x_sum <= 0) return {0.0, 0.0};
  const double r = se_sum / x_sum;
  if (n < 2 || static_cast<int64_t>(n) >= n_total) return {r, 0.0};
  double v = 0;
  for (size_t i = 0; i < n; ++i) v += (err[i] - r * energy[i]) * (err[i] - r * energy[i]);
  const double fpc = 1.0 - static_cast<double>(n) / static_cast<double>(n_total);
  const double mean_x = x_sum / static_cast<double>(n);
  return {r, std::sqrt(fpc * v / (static_cast<double>(n) * static_cast<double>(n - 1))) / mean_x};
}

// Types of `names` that can be priced on this tensor, as ggml types.
std::vector<ggml_type> priceable(const std::vector<std::string>& names, int64_t n_cols, bool have_weights) {
  std::vector<ggml_type> out;
  for (const auto& name : names) {
    const auto t = static_cast<ggml_type>(ggml_type_id(name));
    if (n_cols % ggml_blck_size(t) != 0) continue;
    if (ggml_quantize_requires_imatrix(t) && !have_weights) continue;
    if (ggml_is_quantized(t) && !ggml_get_type_traits(t)->to_float) continue;
    if (!ggml_is_quantized(t) && t != GGML_TYPE_F16 && t != GGML_TYPE_BF16 && t != GGML_TYPE_F32) continue;
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  }
  return out;
}

std::vector<float> checked_weights(const QuantErrorJob& job, const std::string& name, int64_t n_cols,
                                   int64_t n_experts) {
  if (!job.imatrix_for) return {};
  std::vector<float> w = job.imatrix_for(name);
  if (w.empty()) return w;
  if (static_cast<int64_t>(w.size()) == n_cols && n_experts > 1) {
    std::vector<float> rep;  // one slice for every expert
    for (int64_t e = 0; e < n_experts; ++e) rep.insert(rep.end(), w.begin(), w.end());
    return rep;
  }
  if (static_cast<int64_t>(w.size()) != n_cols * n_experts) {
    throw MismatchError(fmt::format("imatrix entry {} has {} values, tensor needs {} (imatrix of another model?)",
                                    name, w.size(), n_cols * n_experts));
  }
  return w;
}

// Prices every type of one tensor, `n_threads` workers over (type, chunk) items.
std::map<std::string, QuantErrorValue> price_tensor(const Sample& s, const std::vector<ggml_type>& types,
                                                    const std::vector<float>& w, int n_threads) {
  const std::vector<Chunk> chunks = make_chunks(s);
  const size_t n_items = types.size() * chunks.size();
  const size_t n_rows = static_cast<size_t>(s.n_rows());
  std::vector<double> err(types.size() * n_rows, 0.0);  // per type, per sampled row
  parallel_for(static_cast<int64_t>(n_items), n_threads, [&](int64_t i) {
    const size_t k = static_cast<size_t>(i) / chunks.size();
    chunk_error(s, chunks[static_cast<size_t>(i) % chunks.size()], types[k], w, err.data() + k * n_rows);
  });
  const std::vector<double> energy = row_energy(s, w);
  std::map<std::string, QuantErrorValue> out;
  for (size_t k = 0; k < types.size(); ++k) {
    const auto [r, se] = ratio_estimate(err.data() + k * n_rows, energy, s.n_rows_total);
    out[ggml_type_name(types[k])] = {r, se, s.n_rows(), s.n_rows_total, !w.empty()};
  }
  return out;
}

}  // namespace

std::map<std::string, std::map<std::string, QuantErrorValue>> compute_quant_error(
    const QuantErrorJob& job, const Logger& logger, const ProgressFn& progress) {
  const GgufFile src(job.source);
  ensure_backend();
  const int n_threads = thread_count(job.n_threads);
  std::map<std::string, std::map<std::string, QuantErrorValue>> table;
  int64_t done = 0;
  const auto total = static_cast<int64_t>(job.types.size());
  for (const auto& [name, type_names] : job.types) {
    if (progress) progress({"qerror", done, total, name});
    const int64_t index = src.find_tensor(name);
    if (index < 0) throw InputError(fmt::format("{}: no tensor named {}", job.source, name));
    const std::vector<int64_t> shape = src.tensor_shape(index);
    const int64_t n_experts = shape.size() > 2 ? shape[2] : 1;
    const std::vector<float> w = checked_weights(job, name, shape.at(0), n_experts);
    const std::vector<ggml_type> types = priceable(type_names, shape.at(0), !w.empty());
    ++done;
    if (types.empty()) continue;
    // Grow the sample until every type's relative SE is within the target.
    int64_t n_elements = job.min_elements_per_tensor > 0 ? job.min_elements_per_tensor : job.max_elements_per_tensor;
    for (;;) {
      const Sample s = read_sample(src, index, n_elements);
      table[name] = price_tensor(s, types, w, n_threads);
      double worst = 0;
      for (const auto& [t, v] : table[name]) worst = std::max(worst, v.rel_mse > 0 ? v.rel_mse_se / v.rel_mse : 0.0);
      logger.debug(fmt::format("qerror {}: {} types on {}/{} rows, worst rel se {:.3f}", name, types.size(),
                               s.n_rows(), s.n_rows_total, worst));
      if (worst <= job.target_rel_se || s.n_rows() >= s.n_rows_total || n_elements >= job.max_elements_per_tensor) break;
      n_elements = std::min(2 * n_elements, job.max_elements_per_tensor);
    }
  }
  if (progress) progress({"qerror", total, total, ""});
  return table;
}

}  // namespace cb::engine
