// Importance matrices (imatrix): per-column sums of squared activations that
// llama-imatrix collects and llama-quantize uses to weight quantization error.
// Reads llama.cpp's GGUF imatrix format and the legacy .dat format; writes
// GGUF that stock llama-quantize reads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cerebellum/common/log.h"
#include "cerebellum/inspect/inspect.h"

namespace cb {

struct ImatrixEntry {
  // Sums of squared activations, expert-major: sums[e * n_cols + c] for
  // matrix (expert) e, column c. One matrix for dense weights.
  std::vector<float> sums;
  // Tokens (activation rows) accumulated, one per matrix / expert.
  std::vector<int64_t> counts;
  int64_t n_matrices() const { return static_cast<int64_t>(counts.size()); }
  int64_t n_cols() const { return counts.empty() ? 0 : static_cast<int64_t>(sums.size()) / n_matrices(); }
};

struct Imatrix {
  std::map<std::string, ImatrixEntry> entries;  // by weight tensor name, e.g. "blk.0.attn_q.weight"
  int64_t chunk_count = 0;                      // chunks the data was collected on
  int64_t chunk_size = 0;                       // tokens per chunk (0 for legacy files)
  std::vector<std::string> datasets;            // calibration text files
  // Read from a legacy .dat file: sums there are already (sum/count)*ncall and
  // counts holds the single ncall, so weights = sums/ncall as stock computes.
  bool legacy = false;

  const ImatrixEntry* find(const std::string& tensor) const;
  // What llama-quantize feeds the quantizer: sums / count per matrix (1 where
  // a matrix saw no tokens; legacy: sums / ncall). Empty if the tensor has no entry.
  std::vector<float> weights_for(const std::string& tensor) const;
};

// Reads a GGUF imatrix (tensors "<name>.in_sum2" and "<name>.counts", keys
// imatrix.datasets / imatrix.chunk_count / imatrix.chunk_size) or, if the
// file is not GGUF, a legacy .dat file. Throws InputError naming the file and
// entry for values no run can produce: a sum that is NaN, Inf or negative, a
// count that is negative or non-finite, an entry whose counts are all zero
// (single experts of a MoE may be 0: never routed to).
Imatrix read_imatrix(const std::string& path);

// read_imatrix, then checked against the model it will weight: an entry whose
// name matches but whose shape belongs to another model is a MismatchError;
// covering under 90% of the tensors an imatrix can cover is a warning.
std::shared_ptr<const Imatrix> read_imatrix_for(const std::string& path, const ModelInfo& model,
                                                const Logger& logger);

// read_imatrix once per process: every stage of a run asks for the same file,
// and a later call for the same path, size and mtime returns the same object.
std::shared_ptr<const Imatrix> load_imatrix(const std::string& path);

// The on-disk format for an output path: ".dat" legacy, anything else GGUF,
// unless `format` ("gguf" | "dat") says otherwise (UsageError for others).
enum class ImatrixFormat { kGguf, kDat };
ImatrixFormat imatrix_format_for(const std::string& path, const std::string& format = "");

// Writes the GGUF imatrix format (what llama-imatrix writes by default),
// atomically. Throws IoError.
void write_imatrix_gguf(const Imatrix& imatrix, const std::string& path);

// Writes the legacy .dat format (llama-imatrix --output-format dat).
void write_imatrix_dat(const Imatrix& imatrix, const std::string& path);

}  // namespace cb
