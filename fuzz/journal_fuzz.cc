// Measurement journals (JSON lines) as read by allocate and --resume.
#include "cerebellum/measure/journal.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cb::fuzz::expect_clean([&] { cb::parse_journal(cb::fuzz::text(data, size), "fuzz"); });
  return 0;
}
