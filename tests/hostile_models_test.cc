// Issue 15: malformed but parseable model metadata aborted the process inside
// llama.cpp (SIGABRT) or threw from its internals; corrupted weights printed
// "PPL nan" with exit 0. Each case is now an error naming the key or tensor.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "cerebellum/common/io.h"
#include "engine/engine.h"
#include "test_paths.h"

namespace cb {
namespace {

std::string source_bytes() { return read_file(test::model("cb-dense-12l-F16.gguf")); }

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Sets the u32 value of metadata key `key` in place.
std::string with_u32(std::string gguf, const std::string& key, uint32_t value) {
  std::string needle(8, '\0');
  const uint64_t n = key.size();
  std::memcpy(needle.data(), &n, 8);
  needle += key;
  const size_t at = gguf.find(needle);
  EXPECT_NE(at, std::string::npos) << key;
  std::memcpy(gguf.data() + at + needle.size() + 4, &value, 4);  // after the u32 type tag
  return gguf;
}

std::string replaced(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  s.replace(at, from.size(), to);
  return s;
}

struct Case {
  const char* name;
  std::string bytes;
  const char* says;  // in the error
};

TEST(HostileModels, MalformedMetadataIsAnInputErrorNamingTheKey) {
  const std::string dir = test::temp_dir("hostile_models");
  const std::string src = source_bytes();
  const std::vector<Case> cases = {
      {"blocks0", with_u32(src, "llama.block_count", 0), "llama.block_count is 0"},
      {"blocks1000", with_u32(src, "llama.block_count", 1000), "llama.block_count is 1000"},
      {"blocks11", with_u32(src, "llama.block_count", 11), "the tensors have 12 layers"},
      {"heads0", with_u32(src, "llama.attention.head_count", 0), "llama.attention.head_count is 0"},
      {"dup_token", replaced(src, "<0x0B>", "<0x0A>"), "has token '<0x0A>' twice"},
      {"no_byte", replaced(src, "<0x0A>", "<0xZZ>"), "no token for byte 0x0A"},
  };
  const std::string text = test::data("wikitext-2-raw/wiki.test.raw");
  for (const Case& c : cases) {
    const std::string path = fmt::format("{}/{}.gguf", dir, c.name);
    write_bytes(path, c.bytes);
    for (const std::string& cmd :
         {fmt::format("{} inspect {}", test::cli_path(), path),
          fmt::format("{} build --source {} --base Q4_K_M --dry-run", test::cli_path(), path),
          fmt::format("{} eval --model {} --text {} --chunks 1 --ctx 128 --threads 2", test::cli_path(), path, text)}) {
      const auto r = test::run_command(cmd);
      EXPECT_EQ(r.exit_code, 3) << cmd << "\n" << r.output;
      EXPECT_NE(r.output.find(c.says), std::string::npos) << cmd << "\n" << r.output;
    }
  }
}

TEST(HostileModels, NonFiniteWeightsAreAnErrorNamingTheTensor) {
  const std::string dir = test::temp_dir("hostile_weights");
  std::string bytes = source_bytes();
  {
    const engine::GgufFile f(test::model("cb-dense-12l-F16.gguf"));
    const int64_t i = f.find_tensor("blk.3.ffn_up.weight");
    ASSERT_GE(i, 0);
    const size_t at = f.data_offset() + f.tensor_offset(i);
    for (size_t b = 0; b < 64; ++b) bytes[at + b] = static_cast<char>(0xFF);  // f16 0xFFFF: NaN
  }
  const std::string path = dir + "/corrupt.gguf";
  write_bytes(path, bytes);
  const auto r = test::run_command(fmt::format("{} eval --model {} --text {} --chunks 1 --ctx 128 --threads 2",
                                               test::cli_path(), path,
                                               test::data("wikitext-2-raw/wiki.test.raw")));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("tensor blk.3.ffn_up.weight holds NaN/Inf"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("nan"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace cb
