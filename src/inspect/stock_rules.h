// What stock llama-quantize (the pinned version) refuses to quantize, as data.
// Mirrors tensor_allows_quantization() in llama.cpp's src/llama-quant.cpp;
// RecipeResolve.StockPresetsMatchStockFiles (tests/recipe_parse_test.cc) and the
// build parity tests check it against real stock runs, tensor by tensor.
#pragma once

#include <string>

namespace cb {

bool stock_would_quantize(const std::string& name, int n_dims);

}  // namespace cb
