// Engine side of imatrix I/O: the GGUF container (the only part that needs gguf.h).
#pragma once

#include <string>

#include "cerebellum/imatrix/imatrix.h"

namespace cb::engine {

// True if the file starts with the GGUF magic.
bool is_gguf_file(const std::string& path);

// Reads a GGUF imatrix into `out`; throws InputError naming the file and entry.
void read_imatrix_gguf(const std::string& path, Imatrix& out);

// Writes `imatrix` as a GGUF imatrix (layout of llama-imatrix), atomically.
void write_imatrix_gguf_file(const Imatrix& imatrix, const std::string& path);

}  // namespace cb::engine
