// The gate on two held-out domains at once (issue 14): prose (wiki.test.raw)
// and code (the second half of docs-code-calib.txt, as code-identifiers cuts
// it). Each text has its own reference and its own verdict against the
// baseline and every rival; "ships" is all of them. quantize.json and
// eval.json carry every text, the first mirrored at the top level.
#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cerebellum/common/io.h"
#include "test_paths.h"

namespace cb {
namespace {

using nlohmann::json;

// The held-out half of the code text, cut where the code-identifiers task cuts.
std::string heldout_code(const std::string& dir) {
  const std::string text = read_file(test::data("docs-code-calib.txt"));
  const size_t cut = text.find('\n', text.size() / 2) + 1;
  write_file_atomic(dir + "/code-heldout.txt", text.substr(cut));
  return dir + "/code-heldout.txt";
}

bool beats_all(const json& d) {
  const double ours = d["ours"]["kld_mean"].get<double>();
  bool beats = ours < d["baseline"]["kld_mean"].get<double>() &&
               d["ours"]["size_bytes"].get<int64_t>() <= d["baseline"]["size_bytes"].get<int64_t>();
  for (const auto& r : d["rivals"]) beats = beats && ours < r["kld_mean"].get<double>();
  return beats;
}

TEST(QuantizeGate, EveryEvalTextIsGatedOnItsOwn) {
  const std::string dir = test::temp_dir("gate_domains");
  // Stock Q4_K_M's rule with attn_v/ffn_down at q6_K everywhere: larger than
  // Q4_K_M, so the baseline is the next preset up and the rivals are at or under our bytes.
  write_file_atomic(dir + "/r.txt",
                    "blk\\.[0-9]+\\.(attn_q|attn_k|attn_output|ffn_gate|ffn_up)\\.weight=q4_K\n"
                    "blk\\.[0-9]+\\.(attn_v|ffn_down)\\.weight=q6_K\ntoken_embd.weight=q4_K\noutput.weight=q6_K\n");
  const std::string prose = test::data("wikitext-2-raw/wiki.test.raw"), code = heldout_code(dir);
  const auto r = test::run_command(fmt::format(
      "{} quantize --source {} --recipe-from {}/r.txt --budget Q4_K_M --eval-text {} --eval-text {} "
      "--eval-domain prose,code --eval-chunks 4 --threads 2 --out {}/o.gguf",
      test::cli_path(), test::model("cb-dense-12l-F16.gguf"), dir, prose, code, dir));
  const json q = json::parse(read_file(dir + "/o.run/quantize.json"));
  const auto& domains = q.at("domains");
  ASSERT_EQ(domains.size(), 2u) << r.output;
  EXPECT_EQ(domains[0]["domain"], "prose");
  EXPECT_EQ(domains[1]["domain"], "code");
  EXPECT_EQ(domains[1]["eval_text"], code);
  // Each text is scored on its own: different texts, different KLDs, same rivals.
  EXPECT_NE(domains[0]["ours"]["kld_mean"], domains[1]["ours"]["kld_mean"]);
  ASSERT_GE(domains[0]["rivals"].size(), 1u);
  ASSERT_EQ(domains[0]["rivals"].size(), domains[1]["rivals"].size());
  for (size_t i = 0; i < domains[0]["rivals"].size(); ++i) {
    EXPECT_EQ(domains[0]["rivals"][i]["name"], domains[1]["rivals"][i]["name"]);
  }
  bool all = true;
  for (const auto& d : domains) {
    EXPECT_EQ(d["ships"].get<bool>(), beats_all(d)) << d.dump();
    all = all && d["ships"].get<bool>();
  }
  EXPECT_EQ(q["ships"].get<bool>(), all);
  EXPECT_EQ(r.exit_code, all ? 0 : 9) << r.output;
  EXPECT_EQ(q["ours"], domains[0]["ours"]) << "the top level mirrors the first text";
  const json e = json::parse(read_file(dir + "/o.run/eval.json"));
  ASSERT_EQ(e.at("domains").size(), 2u);
  EXPECT_EQ(e["models"], e["domains"][0]["models"]);
  EXPECT_EQ(e["domains"][1]["models"].size(), 2 + domains[1]["rivals"].size() + 1);  // + the reference
  EXPECT_TRUE(std::filesystem::exists(dir + "/o.run/eval-reference-code.bin"));
  // A name per file, or none.
  const auto bad = test::run_command(fmt::format(
      "{} quantize --source {} --recipe-from {}/r.txt --eval-text {} --eval-text {} --eval-domain prose --out {}/p.gguf",
      test::cli_path(), test::model("cb-dense-12l-F16.gguf"), dir, prose, code, dir));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--eval-domain"), std::string::npos) << bad.output;
  // Nothing to gate on: no calibration text and no eval text.
  const auto none = test::run_command(fmt::format("{} quantize --source {} --recipe-from {}/r.txt --out {}/p.gguf",
                                                  test::cli_path(), test::model("cb-dense-12l-F16.gguf"), dir, dir));
  EXPECT_EQ(none.exit_code, 2) << none.output;
  EXPECT_NE(none.output.find("--eval-text"), std::string::npos) << none.output;
}

}  // namespace
}  // namespace cb
