// imatrix files: legacy .dat and GGUF (our reader runs before ggml's).
#include "cerebellum/imatrix/imatrix.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = cb::fuzz::as_file(data, size, ".imatrix");
  cb::fuzz::expect_clean([&] { cb::read_imatrix(path); });
  return 0;
}
