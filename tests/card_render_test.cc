// Integration: a run dir built here around the real cb-dense-12l-F16 model
// (synthetic journal / plan / eval / bench following their schemas), rendered
// into a card; links must resolve, SVGs must be well-formed XML with the
// expected elements, memory must match llama.cpp's own report.
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cerebellum/card/card.h"
#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "cerebellum/inspect/inspect.h"
#include "cerebellum/measure/journal.h"
#include "test_paths.h"

namespace cb {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

const std::string kModel = "cb-dense-12l-F16.gguf";

void write(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << s;
}

// A journal with tensor ablations of attn_v and ffn_down (two domains) and one layer unit.
void write_journal(const fs::path& path, const ModelInfo& m) {
  JournalHeader h;
  h.tool_version = "test";
  h.model_path = m.path;
  h.model_sha256 = "0";
  h.base_name = "Q4_K_M";
  JournalWriter w(path.string(), h);
  for (const char* dom : {"en", "code"}) {
    w.append(JournalBaseline{dom, "base", {40, 10240, 0.01, 0.001, 27.9, 0.3, {}, {}}});
    for (const auto& t : m.tensors) {
      if (t.role != "attn_v" && t.role != "ffn_down") continue;
      JournalMeasurement x;
      x.domain = dom;
      x.unit = {t.name, "tensor", {t.name}};
      x.types[t.name] = "q2_K";
      x.delta_kld = 0.001 * (t.layer + 1) * (t.role == "ffn_down" ? 2 : 1);
      x.delta_kld_se = 0.0002;
      w.append(x);
    }
  }
  JournalMeasurement layer;
  layer.domain = "en";
  layer.unit = {"blk.3", "layer", {"blk.3.attn_q.weight", "blk.3.ffn_up.weight"}};
  layer.types = {{"blk.3.attn_q.weight", "q2_K"}, {"blk.3.ffn_up.weight", "q2_K"}};
  layer.delta_kld = 0.05;
  w.append(layer);
}

// eval.json: stock sizes/PPL from shared/README.md's table; KLD values synthetic.
json eval_json() {
  json models = json::array();
  const std::vector<std::tuple<std::string, int64_t, double, double>> stock = {
      {"Q8_0", 14691904, 27.69, 0.0005}, {"Q6_K", 11390528, 27.74, 0.002}, {"Q4_K_M", 8771648, 27.90, 0.012},
      {"Q3_K_M", 7363136, 28.69, 0.04}, {"Q2_K", 6072896, 32.56, 0.17}};
  models.push_back({{"name", "F16"}, {"kind", "reference"}, {"size_bytes", 27471424}, {"ppl", 27.68},
                    {"ppl_se", 0.3}, {"kld_mean", 0.0}, {"kld_se", 0.0}});
  for (const auto& [n, b, p, k] : stock) {
    models.push_back({{"name", n}, {"kind", "stock"}, {"size_bytes", b}, {"ppl", p}, {"ppl_se", 0.3},
                      {"kld_mean", k}, {"kld_se", k / 20}});
  }
  models.push_back({{"name", "cerebellum"}, {"kind", "build"}, {"size_bytes", 8000000}, {"ppl", 27.85},
                    {"ppl_se", 0.3}, {"kld_mean", 0.009}, {"kld_se", 0.0005}});
  return {{"schema", "cerebellum.runeval/1"}, {"models", models}};
}

json bench_json() {
  auto task = [](double acc, const std::string& jsonl) {
    return json{{"accuracy", acc}, {"n", 100}, {"n_correct", static_cast<int>(acc * 100)},
                {"ci95", {acc - 0.09, acc + 0.09}}, {"jsonl", jsonl}};
  };
  return {{"schema", "cerebellum.bench/1"},
          {"model", {{"path", "model.gguf"}, {"tasks", {{"arc-easy", task(0.31, "arc-easy.jsonl")}}}}},
          {"baseline", {{"path", "Q4_K_M.gguf"}, {"tasks", {{"arc-easy", task(0.30, "baseline/arc-easy.jsonl")}}}}},
          {"comparison", {{"arc-easy", {{"n_paired", 100}, {"delta", 0.01}, {"mcnemar_p", 0.81}, {"regression", false}}}}},
          {"verdict", {{"ships", true}, {"alpha", 0.05}, {"reason", ""}}}};
}

std::string make_full_run(const ModelInfo& m) {
  const fs::path dir = test::temp_dir("card_full");
  card::RunInfo ri;
  ri.source_path = test::model(kModel);
  ri.source_sha256 = "abc";
  ri.output_path = test::model(kModel);  // the model lives outside: run.json points to it
  ri.output_size_bytes = m.file_size_bytes;
  ri.budget = "8MB";
  ri.budget_bytes = 8000000;
  ri.llama_cpp_version = "de3ff815";
  ri.flags = {"use_extra_bufts=false", "--objective general"};
  write(dir / "run.json", card::to_json(ri).dump(2));
  write_journal(dir / "measurements.jsonl", m);
  write(dir / "plan.json", json{{"schema", "cerebellum.plan/1"}, {"method", "mckp"}, {"base", "Q4_K_M"},
                                {"budget_bytes", 8000000}, {"size_bytes", 7990000}, {"predicted_delta_kld", 0.0091}}
                               .dump());
  write(dir / "tensor_types.txt", "^blk\\.0\\.attn_v\\.weight$=q6_K\n");
  write(dir / "eval.json", eval_json().dump(2));
  write(dir / "bench/summary.json", bench_json().dump(2));
  write(dir / "bench/arc-easy.jsonl", "{\"id\":\"1\",\"correct\":true}\n");
  write(dir / "bench/baseline/arc-easy.jsonl", "{\"id\":\"1\",\"correct\":false}\n");
  write(dir / "commands.txt", "cerebellum quantize --source m.gguf --budget 8MB --out run\n");
  return dir.string();
}

// Every relative link target of the Markdown, decoded.
std::vector<std::string> relative_links(const std::string& md) {
  std::vector<std::string> out;
  const std::regex link(R"(\]\(([^)\s]+)\))");
  for (auto it = std::sregex_iterator(md.begin(), md.end(), link); it != std::sregex_iterator(); ++it) {
    std::string t = (*it)[1].str();
    if (t.rfind("http", 0) == 0 || t[0] == '#') continue;
    for (size_t p; (p = t.find("%20")) != std::string::npos;) t.replace(p, 3, " ");
    out.push_back(t);
  }
  return out;
}

// Parses an SVG with python3's xml.etree (fails on malformed XML) and prints
// counts: cells, titled cells, series polylines, x/y axis label texts.
json svg_facts(const std::string& svg_path, const std::string& work_dir) {
  const std::string script = work_dir + "/svg_facts.py";
  write(script,
        "import sys, json, xml.etree.ElementTree as ET\n"
        "ns = '{http://www.w3.org/2000/svg}'\n"
        "root = ET.parse(sys.argv[1]).getroot()\n"
        "assert root.tag == ns + 'svg', root.tag\n"
        "cells = [r for r in root.iter(ns + 'rect') if r.get('class') == 'cell']\n"
        "titled = [r for r in cells if r.find(ns + 'title') is not None and r.find(ns + 'title').text]\n"
        "series = [p for p in root.iter(ns + 'polyline') if p.get('class') == 'series']\n"
        "texts = {t.get('class'): t.text for t in root.iter(ns + 'text') if t.get('class')}\n"
        "print(json.dumps({'cells': len(cells), 'titled': len(titled), 'series': len(series),\n"
        "  'x_label': texts.get('x-label'), 'y_label': texts.get('y-label'),\n"
        "  'legend': len([g for g in root.iter(ns + 'g') if g.get('class') == 'legend'])}))\n");
  const auto r = test::run_command(fmt::format("python3 {} {}", script, svg_path));
  EXPECT_EQ(r.exit_code, 0) << svg_path << ": " << r.output;
  return r.exit_code == 0 ? json::parse(r.output) : json::object();
}

card::CardOptions small_options() {
  card::CardOptions o;
  o.speed = {.n_threads = 2, .pp_tokens = 64, .tg_tokens = 16, .repetitions = 1};
  o.memory_ctx = {2048, 8192, 16384, 32768};
  return o;
}

TEST(CardRender, FullRunDirGivesResolvingLinksValidSvgsAndCheckedMemory) {
  const ModelInfo m = inspect_model(test::model(kModel));
  const std::string dir = make_full_run(m);
  const std::string card_path = dir + "/out/CARD.md";
  const card::CardResult r = card::render_card(dir, card_path, small_options());
  EXPECT_TRUE(r.not_run.empty()) << r.not_run.front();
  const std::string md = read_file(card_path);
  EXPECT_EQ(md, r.markdown);

  // Every relative link resolves, and the important ones are there.
  const auto links = relative_links(md);
  for (const auto& l : links) EXPECT_TRUE(fs::exists(fs::path(card_path).parent_path() / l)) << l;
  std::set<std::string> names;
  for (const auto& l : links) names.insert(fs::path(l).filename().string());
  for (const char* want : {"cb-dense-12l-F16.gguf", "measurements.jsonl", "plan.json", "tensor_types.txt",
                           "eval.json", "summary.json", "arc-easy.jsonl", "commands.txt", "run.json", "MANIFEST",
                           "sensitivity_heatmap.svg", "kld_vs_size.svg", "ppl_vs_size.svg"}) {
    EXPECT_TRUE(names.count(want)) << want;
  }

  // Figures: well-formed, with the expected elements.
  ASSERT_EQ(r.svg_paths.size(), 3u);
  std::set<std::string> roles;
  for (const auto& t : m.tensors) roles.insert(t.role);
  const json heat = svg_facts(r.svg_paths[0], dir);
  EXPECT_EQ(heat["cells"], (m.n_layers + 1) * static_cast<int>(roles.size() + 1));  // + "(layer)" column
  EXPECT_EQ(heat["titled"], heat["cells"]);
  EXPECT_EQ(heat["legend"], 1);
  const json kld = svg_facts(r.svg_paths[1], dir);
  EXPECT_EQ(kld["series"], 2);  // stock + build (the reference's KLD 0 has no place on a log axis)
  EXPECT_EQ(kld["x_label"], "file size (MB, 10^6 bytes)");
  EXPECT_EQ(kld["y_label"], "mean KLD (nats) (log scale)");
  const json ppl = svg_facts(r.svg_paths[2], dir);
  EXPECT_EQ(ppl["series"], 3);
  EXPECT_EQ(ppl["y_label"], "perplexity");

  // Memory: llama.cpp's KV cache at 2048 tokens, 12 layers × (2 KV heads × 64)
  // × (K + V) = 3072 f16 elements per token, in the table.
  ASSERT_EQ(r.memory.rows.size(), 4u);
  EXPECT_EQ(r.memory.rows.at(0).pools.front().context_bytes, 2048LL * 3072 * 2);
  EXPECT_NE(md.find("| 2048 | CPU | "), std::string::npos) << md;
  ASSERT_TRUE(r.speed.has_value());
  EXPECT_GT(r.speed->pp_tokens_per_s, 0);
  EXPECT_GT(r.speed->tg_tokens_per_s, 0);
  // Timed next to the stock mix nearest in size (eval.json's Q8_0 for this
  // 27 MB "build"), built from the source here: a real file of its size.
  ASSERT_TRUE(r.stock_speed.has_value());
  EXPECT_EQ(r.stock_speed->preset, "Q8_0");
  EXPECT_EQ(r.stock_speed->size_bytes, 14691904);  // shared/README.md's Q8_0 size
  ASSERT_TRUE(r.stock_speed->speed.has_value()) << r.stock_speed->note;
  EXPECT_GT(r.stock_speed->speed->tg_tokens_per_s, 0);
  EXPECT_NE(md.find("| test | this build, tokens/s | stock Q8_0, tokens/s | ratio |"), std::string::npos) << md;
  EXPECT_NE(md.find("| pp64 (prompt, one batch) |"), std::string::npos);
  for (const auto& e : fs::directory_iterator(fs::path(card_path).parent_path())) {
    EXPECT_EQ(e.path().filename().string().rfind(".stock-", 0), std::string::npos) << "left behind: " << e.path();
  }
  EXPECT_NE(md.find("| arc-easy | 100 | 0.310 [0.220, 0.400] | 0.300 [0.210, 0.390] | +0.010 | 0.81 | no |"),
            std::string::npos);

  // The bundle checks out with the standard tool.
  const auto check = test::run_command(fmt::format("cd {} && sha256sum -c MANIFEST ARTIFACTS.sha256", r.bundle_dir));
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("plan.json: OK"), std::string::npos);
  EXPECT_NE(check.output.find("cb-dense-12l-F16.gguf: OK"), std::string::npos);
}

TEST(CardRender, BareRunDirListsMissingPartsAsNotRun) {
  const fs::path dir = test::temp_dir("card_bare");
  fs::create_symlink(test::model(kModel), dir / "model.gguf");
  card::CardOptions o = small_options();
  o.measure_speed = false;
  const card::CardResult r = card::render_card(dir.string(), (dir / "CARD.md").string(), o);
  EXPECT_EQ(r.not_run.size(), 8u);  // run.json … commands.txt, + speed
  EXPECT_TRUE(r.svg_paths.empty());
  for (const auto& l : relative_links(r.markdown)) EXPECT_TRUE(fs::exists(dir / l)) << l;
  EXPECT_NE(r.markdown.find("Not run: no `eval.json`."), std::string::npos);
  EXPECT_NE(r.markdown.find("- `plan.json` (allocate: the plan)"), std::string::npos);
}

// quantize with two --eval-text: eval.json's "domains", one table each.
TEST(CardRender, EveryEvalTextGetsItsOwnTable) {
  const fs::path dir = test::temp_dir("card_domains");
  fs::create_symlink(test::model(kModel), dir / "model.gguf");
  json e = eval_json();
  json code = e["models"];
  for (auto& m : code) m["kld_mean"] = m["kld_mean"].get<double>() * 0.5;
  e["domains"] = {{{"domain", "prose"}, {"eval_text", "/x/wiki.test.raw"}, {"models", e["models"]}},
                  {{"domain", "code"}, {"eval_text", "/y/code-heldout.txt"}, {"models", code}}};
  write(dir / "eval.json", e.dump(2));
  card::CardOptions o = small_options();
  o.measure_speed = false;
  const std::string md = card::render_card(dir.string(), (dir / "CARD.md").string(), o).markdown;
  const size_t prose = md.find("### prose (`wiki.test.raw`)"), code_at = md.find("### code (`code-heldout.txt`)");
  ASSERT_NE(prose, std::string::npos) << md;
  ASSERT_NE(code_at, std::string::npos) << md;
  EXPECT_LT(prose, code_at);
  EXPECT_NE(md.find("| **cerebellum** | build | 8.00 MB (8000000 B) | 27.850 ± 0.300 | 0.00900 ± 0.00050 |", prose), std::string::npos) << md;
  EXPECT_NE(md.find("| **cerebellum** | build | 8.00 MB (8000000 B) | 27.850 ± 0.300 | 0.00450 ± 0.00050 |", code_at), std::string::npos) << md;
}

TEST(CardRender, RunDirWithoutModelIsAnInputErrorNamingIt) {
  const fs::path dir = test::temp_dir("card_nomodel");
  write(dir / "plan.json", "{}");
  try {
    card::render_card(dir.string(), (dir / "CARD.md").string(), small_options());
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model.gguf"), std::string::npos) << e.what();
  }
}

// The table is llama.cpp's breakdown; checked here against the shapes: f16 K
// and V rows per token of every attention layer (the two of the hybrid; its
// Mamba layers hold a recurrent state that does not grow with the context).
TEST(CardRender, MemoryTableIsLlamaCppsKvCacheByContext) {
  for (const char* name : {"cb-dense-12l-F16.gguf", "cb-hybrid-moe-F16.gguf"}) {
    const std::string path = test::model(name);
    int64_t kv_row_bytes = 0;  // per token: Σ over layers of (k + v output rows) × 2 B
    for (const auto& t : inspect_model(path).tensors) {
      if (t.role == "attn_k" || t.role == "attn_v") kv_row_bytes += t.shape.at(1) * 2;
    }
    ASSERT_GT(kv_row_bytes, 0) << name;
    const card::MemoryReport r = card::measure_memory(path, {}, {512, 2048});
    ASSERT_EQ(r.rows.size(), 2u) << name;
    const auto& small = r.rows[0].pools.front(), &large = r.rows[1].pools.front();  // host: a CPU-only engine
    EXPECT_EQ(large.context_bytes - small.context_bytes, (2048 - 512) * kv_row_bytes) << name;
    EXPECT_EQ(large.model_bytes, small.model_bytes) << name;
    EXPECT_GT(small.compute_bytes, 0) << name;
    EXPECT_EQ(r.stopped, "") << name;
  }
}

// A context whose KV cache would exceed this machine's free memory is not
// attempted (on the CPU, allocating it could meet the OOM killer first): 2^24
// tokens of cb-dense's 3,072 f16 KV elements per token is 96 GiB.
TEST(CardRender, MemoryTableStopsBeforeAContextThatWouldNotFit) {
  const card::MemoryReport r = card::measure_memory(test::model(kModel), {}, {2048, 1 << 24});
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_NE(r.stopped.find("16777216 tokens would need about"), std::string::npos) << r.stopped;
  EXPECT_NE(r.stopped.find("on CPU"), std::string::npos) << r.stopped;
}

}  // namespace
}  // namespace cb
