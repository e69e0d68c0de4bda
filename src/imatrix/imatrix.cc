#include "cerebellum/imatrix/imatrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <fstream>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "engine/build_imatrix_gguf.h"

namespace cb {
namespace {

// Legacy layout (llama-imatrix --output-format dat), all little-endian:
// i32 n_entries; per entry: i32 name_len, name, i32 ncall, i32 nval, f32[nval];
// optional trailer: i32 chunk_count, i32 dataset_len, dataset.
template <typename T>
bool read_pod(std::istream& in, T& v) {
  in.read(reinterpret_cast<char*>(&v), sizeof(T));
  return static_cast<bool>(in);
}

Imatrix read_legacy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open imatrix for reading", path));
  const auto file_bytes = static_cast<int64_t>(std::filesystem::file_size(path));
  Imatrix im;
  im.legacy = true;
  int32_t n_entries = 0;
  if (!read_pod(in, n_entries) || n_entries < 1) {
    throw InputError(fmt::format("{}: not an imatrix (neither GGUF nor a legacy .dat with entries)", path));
  }
  for (int32_t i = 0; i < n_entries; ++i) {
    int32_t len = 0, ncall = 0, nval = 0;
    if (!read_pod(in, len) || len <= 0 || len > 4096) {
      throw InputError(fmt::format("{}: corrupt legacy imatrix (entry {} name length)", path, i));
    }
    std::string name(static_cast<size_t>(len), '\0');
    in.read(name.data(), len);
    if (!in || !read_pod(in, ncall) || !read_pod(in, nval) || nval < 1 ||
        static_cast<int64_t>(nval) * 4 > file_bytes) {
      throw InputError(fmt::format("{}: corrupt or truncated legacy imatrix at entry {} ({})", path, i,
                                   name.c_str()));
    }
    auto& e = im.entries[name.c_str()];
    e.sums.resize(static_cast<size_t>(nval));
    in.read(reinterpret_cast<char*>(e.sums.data()), static_cast<std::streamsize>(nval) * 4);
    if (!in) throw InputError(fmt::format("{}: truncated legacy imatrix data for {}", path, name));
    e.counts = {ncall};
  }
  int32_t chunks = 0, ds_len = 0;
  if (in.peek() != EOF && read_pod(in, chunks)) {
    im.chunk_count = chunks;
    if (read_pod(in, ds_len) && ds_len > 0 && ds_len < (1 << 20)) {
      std::string ds(static_cast<size_t>(ds_len), '\0');
      if (in.read(ds.data(), ds_len)) im.datasets.push_back(ds.c_str());
    }
  }
  return im;
}

// Values no llama-imatrix run can write (issue 15: NaN/negative sums degraded
// a build silently, PPL 34.95 vs 31.52).
void check_values(const Imatrix& im, const std::string& path) {
  for (const auto& [name, e] : im.entries) {
    for (size_t i = 0; i < e.sums.size(); ++i) {
      if (!std::isfinite(e.sums[i]) || e.sums[i] < 0) {
        throw InputError(fmt::format("{}: imatrix entry {} has sum {} at column {} (must be finite and >= 0)", path,
                                     name, e.sums[i], i));
      }
    }
    bool any = false;
    for (const int64_t c : e.counts) {
      if (c < 0) throw InputError(fmt::format("{}: imatrix entry {} has a negative count {}", path, name, c));
      any = any || c > 0;
    }
    if (!any) throw InputError(fmt::format("{}: imatrix entry {} has no tokens (count 0)", path, name));
  }
}

}  // namespace

const ImatrixEntry* Imatrix::find(const std::string& tensor) const {
  auto it = entries.find(tensor);
  return it == entries.end() ? nullptr : &it->second;
}

std::vector<float> Imatrix::weights_for(const std::string& tensor) const {
  const ImatrixEntry* e = find(tensor);
  if (!e || e->counts.empty()) return {};
  std::vector<float> w(e->sums.size());
  if (legacy) {
    // Same arithmetic as llama-quantize's loader for .dat files.
    const int64_t ncall = e->counts[0];
    for (size_t i = 0; i < w.size(); ++i) w[i] = ncall > 0 ? e->sums[i] / ncall : e->sums[i];
    return w;
  }
  const int64_t n_cols = e->n_cols();
  for (int64_t j = 0; j < e->n_matrices(); ++j) {
    const float count = static_cast<float>(e->counts[j]);
    for (int64_t i = 0; i < n_cols; ++i) {
      w[j * n_cols + i] = count > 0.0f ? e->sums[j * n_cols + i] / count : 1.0f;
    }
  }
  return w;
}

Imatrix read_imatrix(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw InputError(fmt::format("{}: no such imatrix file", path));
  }
  Imatrix im;
  if (engine::is_gguf_file(path)) {
    engine::read_imatrix_gguf(path, im);
  } else {
    im = read_legacy(path);
  }
  check_values(im, path);
  return im;
}

std::shared_ptr<const Imatrix> load_imatrix(const std::string& path) {
  const std::string key = file_identity(path);
  if (key.empty()) return std::make_shared<const Imatrix>(read_imatrix(path));  // read_imatrix names the problem
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const Imatrix>> cache;
  {
    const std::lock_guard<std::mutex> lock(mutex);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  auto im = std::make_shared<const Imatrix>(read_imatrix(path));
  const std::lock_guard<std::mutex> lock(mutex);
  return cache.emplace(key, std::move(im)).first->second;
}

std::shared_ptr<const Imatrix> read_imatrix_for(const std::string& path, const ModelInfo& model,
                                                const Logger& logger) {
  std::shared_ptr<const Imatrix> loaded = load_imatrix(path);
  const Imatrix& im = *loaded;
  int n_coverable = 0, n_covered = 0;
  for (const auto& t : model.tensors) {
    const ImatrixEntry* e = im.find(t.name);
    const int64_t n_matrices = t.shape.size() >= 3 ? t.shape[2] : 1;
    if (e && static_cast<int64_t>(e->sums.size()) != t.row_elems() * n_matrices) {
      throw MismatchError(fmt::format("{}: imatrix entry {} has {} values, but that tensor of {} needs {} "
                                      "({} columns x {} matrices): an imatrix of another model", path, t.name,
                                      e->sums.size(), model.path, t.row_elems() * n_matrices, t.row_elems(),
                                      n_matrices));
    }
    // What llama-imatrix collects: matrix-multiplied weights, output.weight by request only.
    if (!t.stock_quantizable || t.shape.size() < 2 || t.role == "token_embd" || t.name == "output.weight") continue;
    ++n_coverable;
    n_covered += e != nullptr;
  }
  if (n_coverable > 0 && n_covered * 10 < n_coverable * 9) {
    logger.warn(fmt::format("{} covers {} of the {} tensors of {} an imatrix can cover ({:.0f}%): made on another "
                            "model, or a partial run? Uncovered tensors are quantized unweighted",
                            path, n_covered, n_coverable, model.path, 100.0 * n_covered / n_coverable));
  }
  return loaded;
}

ImatrixFormat imatrix_format_for(const std::string& path, const std::string& format) {
  if (format == "gguf") return ImatrixFormat::kGguf;
  if (format == "dat") return ImatrixFormat::kDat;
  if (!format.empty()) throw UsageError(fmt::format("--format '{}': expected gguf or dat", format));
  return std::filesystem::path(path).extension() == ".dat" ? ImatrixFormat::kDat : ImatrixFormat::kGguf;
}

void write_imatrix_gguf(const Imatrix& imatrix, const std::string& path) {
  if (!imatrix.legacy) {
    engine::write_imatrix_gguf_file(imatrix, path);
    return;
  }
  // Legacy sums are (sum/count)*ncall with one ncall: stored with counts={ncall}
  // they give stock the same weights (sums/ncall). A zero ncall means "use sums".
  Imatrix copy = imatrix;
  copy.legacy = false;
  for (auto& [name, e] : copy.entries) {
    if (e.counts.empty() || e.counts[0] <= 0) e.counts = {1};
  }
  engine::write_imatrix_gguf_file(copy, path);
}

void write_imatrix_dat(const Imatrix& imatrix, const std::string& path) {
  std::string buf;
  auto put = [&buf](const auto& v) { buf.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  const auto n_entries = static_cast<int32_t>(imatrix.entries.size());
  put(n_entries);
  const int64_t chunk = std::max<int64_t>(1, imatrix.chunk_size);
  for (const auto& [name, e] : imatrix.entries) {
    put(static_cast<int32_t>(name.size()));
    buf += name;
    int32_t ncall = 0;
    std::vector<float> vals;
    if (imatrix.legacy) {
      ncall = e.counts.empty() ? 0 : static_cast<int32_t>(e.counts[0]);
      vals = e.sums;
    } else {
      // As llama-imatrix: ncall = ceil(max count / chunk size), values scaled by it.
      const int64_t max_count = e.counts.empty() ? 0 : *std::max_element(e.counts.begin(), e.counts.end());
      ncall = static_cast<int32_t>((max_count + chunk - 1) / chunk);
      vals = imatrix.weights_for(name);
      for (auto& v : vals) v *= static_cast<float>(ncall);
    }
    put(ncall);
    put(static_cast<int32_t>(vals.size()));
    buf.append(reinterpret_cast<const char*>(vals.data()), vals.size() * sizeof(float));
  }
  put(static_cast<int32_t>(imatrix.chunk_count));
  const std::string ds = imatrix.datasets.empty() ? std::string() : imatrix.datasets.back();
  put(static_cast<int32_t>(ds.size()));
  buf += ds;
  write_file_atomic(path, buf);
}

}  // namespace cb
