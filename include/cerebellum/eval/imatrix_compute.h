// In-process importance matrix from calibration text (what llama-imatrix
// computes): the text is tokenized and chunked as for perplexity, each chunk
// decoded whole, and every block weight's input activations accumulated.
#pragma once

#include <map>
#include <string>

#include "cerebellum/common/log.h"
#include "cerebellum/imatrix/imatrix.h"

namespace cb::eval {

struct ImatrixOptions {
  int ctx = 512;            // tokens per chunk (llama-imatrix -c)
  int max_chunks = -1;      // -1 = all chunks of the text
  int n_threads = 0;        // 0 = every CPU this run may use (its affinity)
  int n_batch = 2048;       // tokens per decode (packs n_batch/ctx chunks)
  bool include_output = false;  // also output.weight (llama-imatrix --process-output)
  // Non-empty: the model is loaded as a build with these types (any cheap
  // type, e.g. q4_0 for every matrix: a skeleton whose bytes are never read)
  // and computes with every weight pointed at the model file's own bytes, a
  // layer at a time (engine::TensorSwapper::view_file): the same activations,
  // so the same imatrix, with the skeleton's size held instead of the
  // model's. Built as a temporary file in `work_dir` (system temp if empty).
  std::map<std::string, std::string> skeleton_types;
  std::string work_dir;
};

// Throws InputError (text shorter than one chunk, bad model), EngineError.
Imatrix compute_imatrix(const std::string& model_path, const std::string& text,
                        const std::string& dataset_name, const ImatrixOptions& opts = {},
                        const Logger& logger = {}, const ProgressFn& progress = {});

}  // namespace cb::eval
