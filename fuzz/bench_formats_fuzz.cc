// The bench's data formats: CSV (MMLU), Python string lists (HumanEval+),
// cp1252/UTF-8 text; and the budget grammar.
#include "cerebellum/allocate/allocate.h"
#include "cerebellum/bench/tasks.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s = cb::fuzz::text(data, size);
  cb::fuzz::expect_clean([&] { cb::bench::parse_csv(s, ','); });
  cb::fuzz::expect_clean([&] { cb::bench::parse_python_str_list(s); });
  cb::fuzz::expect_clean([&] { cb::bench::to_utf8(s); });
  cb::fuzz::expect_clean([&] { cb::parse_budget_bytes(s, 1'000'000'000); });
  return 0;
}
