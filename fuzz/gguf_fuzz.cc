// Model files: our header pre-validation, ggml's reader behind it, then the
// metadata checks that keep llama.cpp's asserts unreachable (inspect).
#include "cerebellum/inspect/inspect.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = cb::fuzz::as_file(data, size, ".gguf");
  cb::fuzz::expect_clean([&] { cb::inspect_model(path); });
  return 0;
}
