// What stock llama-quantize (the pinned version) refuses to quantize, as data.
// Mirrors tensor_allows_quantization() in llama.cpp's src/llama-quant.cpp;
// tests/stock_parity_test.cc checks it against a real stock run.
#pragma once

#include <string>

namespace cb {

bool stock_would_quantize(const std::string& name, int n_dims);

}  // namespace cb
