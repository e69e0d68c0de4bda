// Bad input through the CLI: clear message naming the culprit, non-zero exit,
// no output or temporary file left behind.
#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "build_test_util.h"
#include "cerebellum/common/io.h"
#include "cerebellum/imatrix/imatrix.h"

namespace cb {
namespace {

namespace fs = std::filesystem;

struct Case {
  std::string tag;
  std::string args;          // after "build" / "surgery"
  int exit_code;
  std::vector<std::string> mentions;
};

int n_files(const std::string& dir) {
  int n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

void expect_clean_failure(const Case& c, const std::string& dir) {
  const auto r = test::run_command(fmt::format("{} {}", test::cli_path(), c.args));
  EXPECT_EQ(r.exit_code, c.exit_code) << c.tag << ": " << r.output;
  for (const auto& m : c.mentions) EXPECT_NE(r.output.find(m), std::string::npos) << c.tag << " lacks '" << m << "': " << r.output;
  EXPECT_EQ(n_files(dir), 0) << c.tag << ": left files behind";
}

TEST(BuildBadInput, CliFailsCleanly) {
  const std::string in = test::temp_dir("bad-in");
  const std::string out = test::temp_dir("bad-out");
  const std::string dense = test::model("cb-dense-12l-F16.gguf");
  const std::string stories = test::model("stories260K.gguf");
  const std::string bytes = read_file(dense);
  write_file_atomic(in + "/trunc.gguf", bytes.substr(0, bytes.size() / 2));
  write_file_atomic(in + "/corrupt.gguf", "GGUF\x03\x00\x00\x00" + std::string(64, '\xff'));
  write_file_atomic(in + "/r-unknown-name.txt", "blk.99.attn_q.weight=q4_K\n");
  write_file_atomic(in + "/r-nothing.txt", "# comment\nno_such_tensor_\\d+=q4_K\n");
  write_file_atomic(in + "/r-badtype.txt", "blk.0.attn_q.weight=Q9_K\n");
  write_file_atomic(in + "/r-misfit.txt", "blk.0.ffn_down.weight=q4_K\n");
  write_file_atomic(in + "/r-iq.txt", "blk.0.ffn_up.weight=iq2_xxs\n");
  const std::string o = out + "/out.gguf";
  const std::vector<Case> cases = {
      {"truncated", fmt::format("build --source {}/trunc.gguf --base Q4_K_M --out {}", in, o), 3, {"trunc.gguf", "truncated"}},
      {"corrupt", fmt::format("build --source {}/corrupt.gguf --base Q4_K_M --out {}", in, o), 3, {"corrupt.gguf"}},
      {"gguf-v1", fmt::format("build --source {} --base Q4_K_M --out {}",
                              test::model("fixtures/tinyllamas-stories-260k-f32.ggufv1.gguf"), o), 3, {"version 1"}},
      {"unknown-name", fmt::format("build --source {} --recipe {}/r-unknown-name.txt --out {}", dense, in, o), 4,
       {"blk.99.attn_q.weight", "r-unknown-name.txt:1"}},
      {"no-match", fmt::format("build --source {} --recipe {}/r-nothing.txt --out {}", dense, in, o), 4,
       {"no_such_tensor_", "matches no"}},
      {"bad-type", fmt::format("build --source {} --recipe {}/r-badtype.txt --out {}", dense, in, o), 4, {"Q9_K"}},
      {"misfit", fmt::format("build --source {} --recipe {}/r-misfit.txt --out {}", stories, in, o), 4,
       {"blk.0.ffn_down.weight", "q4_K", "172"}},
      {"needs-imatrix", fmt::format("build --source {} --recipe {}/r-iq.txt --out {}", dense, in, o), 4,
       {"blk.0.ffn_up.weight", "iq2_xxs", "imatrix"}},
      {"unwritable", fmt::format("build --source {} --base Q8_0 --out /nonexistent-dir/x.gguf", dense), 6,
       {"/nonexistent-dir/x.gguf"}},
      {"surgery-unknown", fmt::format("surgery --in {} --set nope.weight=q8_0 --out {}", dense, o), 4, {"nope.weight"}},
      {"missing-imatrix", fmt::format("build --source {} --base Q4_K_M --imatrix {}/none.dat --out {}", dense, in, o), 3,
       {"none.dat"}},
  };
  for (const auto& c : cases) expect_clean_failure(c, out);
}

TEST(BuildBadInput, FailureMidWriteLeavesNothing) {
  // The imatrix size is checked when its tensor is reached: an entry of the
  // wrong size (imatrix of another model) aborts mid-write; the temp file must go.
  const std::string out = test::temp_dir("bad-mid");
  const std::string good = test::dense_imatrix();
  ASSERT_FALSE(good.empty());
  Imatrix im = read_imatrix(good);
  im.entries["blk.11.ffn_down.weight"] = {std::vector<float>(100, 1.0f), {1}};
  write_imatrix_gguf(im, out + "/../bad-im.gguf");
  const auto r = test::run_command(fmt::format("{} build --source {} --base Q4_K_M --imatrix {}/../bad-im.gguf --out {}/x.gguf",
                                               test::cli_path(), test::model("cb-dense-12l-F16.gguf"), out, out));
  EXPECT_EQ(r.exit_code, 8) << r.output;
  EXPECT_NE(r.output.find("blk.11.ffn_down.weight"), std::string::npos) << r.output;
  EXPECT_EQ(n_files(out), 0) << r.output;
}

}  // namespace
}  // namespace cb

namespace cb {
namespace {

// Input is sacred: an output path that is an input of the same run (directly,
// through "./", or through a symlink) or is not a regular file is refused
// before anything is written, and the input's bytes are unchanged.
TEST(BuildBadInput, OutputThatIsAnInputIsRefused) {
  const std::string dir = test::temp_dir("out-is-input");
  const std::string src = dir + "/m.gguf";
  std::filesystem::copy_file(test::model("cb-dense-12l-F16.gguf"), src,
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::create_symlink(src, dir + "/link.gguf");
  const std::string sha = sha256_bytes(read_file(src).data(), read_file(src).size());
  const std::string calib = test::data("docs-en-calib.txt");
  for (const std::string& out : {src, dir + "/./m.gguf", dir + "/link.gguf"}) {
    const auto r = test::run_command(fmt::format("{} build --source {} --base Q4_K_M --out {}", test::cli_path(), src, out));
    EXPECT_EQ(r.exit_code, 2) << out << "\n" << r.output;
  }
  auto r = test::run_command(fmt::format("{} imatrix --model {} --text {} --chunks 1 --ctx 64 --out {}",
                                         test::cli_path(), src, calib, src));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = test::run_command(fmt::format("{} build --source {} --base Q4_K_M --out /dev/null", test::cli_path(), src));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = test::run_command(fmt::format("{} measure --source {} --text {} --out {}", test::cli_path(), src, calib, calib));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = test::run_command(fmt::format("{} quantize --source {} --text {} --budget Q4_K_M --out {}", test::cli_path(), src,
                                    calib, src));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  const std::string journal = dir + "/j.jsonl";
  write_file_atomic(journal, "{}\n");
  for (const std::string& outs : {"--out " + journal, "--out " + dir + "/p.json --tensor-types " + journal}) {
    r = test::run_command(fmt::format("{} allocate --measurements {} --source {} --budget 8MB {}", test::cli_path(),
                                      journal, src, outs));
    EXPECT_EQ(r.exit_code, 2) << outs << "\n" << r.output;
    EXPECT_NE(r.output.find("refusing to overwrite an input"), std::string::npos) << r.output;
  }
  EXPECT_EQ(read_file(journal), "{}\n");
  ASSERT_EQ(mkfifo((dir + "/fifo").c_str(), 0644), 0);
  r = test::run_command(fmt::format("{} build --source {} --base Q4_K_M --out {}/fifo", test::cli_path(), src, dir));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(std::filesystem::is_fifo(dir + "/fifo"));
  const std::string after = read_file(src);
  EXPECT_EQ(sha256_bytes(after.data(), after.size()), sha);
  EXPECT_TRUE(std::filesystem::is_character_file("/dev/null"));
}

}  // namespace
}  // namespace cb
