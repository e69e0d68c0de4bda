#include "cerebellum/bench/tasks.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "common/json_int.h"
#include "cerebellum/common/io.h"

namespace cb::bench {
namespace fs = std::filesystem;
namespace {

std::string path_in(const TaskOptions& o, const std::string& rel) { return (fs::path(o.data_dir) / rel).string(); }

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line, '\n')) lines.push_back(line);
  return lines;
}

template <class T>
void apply_limit(std::vector<T>& v, int64_t limit) {
  if (limit > 0 && static_cast<int64_t>(v.size()) > limit) v.resize(limit);
}

// ---- HellaSwag: llama-perplexity's 6-line format ----
std::vector<Question> load_hellaswag(const TaskOptions& o) {
  const std::string path = path_in(o, "hellaswag/hellaswag_val_full.txt");
  const auto lines = split_lines(read_file(path));
  if (lines.size() % 6 != 0) throw InputError(fmt::format("{}: {} lines, not a multiple of 6", path, lines.size()));
  const size_t n_all = lines.size() / 6;
  size_t n = n_all;
  if (o.limit > 0 && static_cast<size_t>(o.limit) < n) n = o.limit;
  std::vector<size_t> order;
  if (o.hellaswag_stock_order) {
    // Same draw as hellaswag_score(): mt19937(1), a fresh uniform
    // distribution over the remaining tasks each time, drawn task erased.
    std::vector<size_t> remaining(n_all);
    for (size_t i = 0; i < n_all; ++i) remaining[i] = i;
    std::mt19937 rng(1);
    for (size_t i = 0; i < n; ++i) {
      std::uniform_int_distribution<size_t> dist(0, remaining.size() - 1);
      const size_t j = dist(rng);
      order.push_back(remaining[j]);
      remaining.erase(remaining.begin() + j);
    }
  } else {
    for (size_t i = 0; i < n; ++i) order.push_back(i);
  }
  std::vector<Question> out;
  for (size_t idx : order) {
    Question q;
    q.id = fmt::format("hellaswag/{}", idx);
    q.prompt = lines[idx * 6];
    try {
      q.gold = std::stoi(lines[idx * 6 + 1]);
    } catch (const std::exception&) {
      throw InputError(fmt::format("{}:{}: bad gold label '{}'", path, idx * 6 + 2, lines[idx * 6 + 1]));
    }
    for (int j = 0; j < 4; ++j) q.choices.push_back(lines[idx * 6 + 2 + j]);
    out.push_back(std::move(q));
  }
  return out;
}

// ---- llm-foundry ICL jsonl ----
using Json = nlohmann::json;
std::vector<Json> read_jsonl(const std::string& path, int64_t limit) {
  std::vector<Json> rows;
  std::istringstream in(read_file(path));
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      rows.push_back(Json::parse(line));
    } catch (const std::exception& e) {
      throw InputError(fmt::format("{}:{}: bad JSON: {}", path, line_no, e.what()));
    }
    if (limit > 0 && static_cast<int64_t>(rows.size()) >= limit) break;
  }
  return rows;
}

// {query, choices, gold} → prompt = query (trailing newlines trimmed) + suffix.
std::function<std::vector<Question>(const TaskOptions&)> foundry_mc(std::string rel, std::string suffix,
                                                                    std::string tag) {
  return [rel, suffix, tag](const TaskOptions& o) {
    const std::string path = path_in(o, rel);
    std::vector<Question> out;
    int64_t i = 0;
    for (const auto& r : read_jsonl(path, o.limit)) {
      Question q;
      q.id = fmt::format("{}/{}", tag, i++);
      try {
        q.prompt = r.at("query").get<std::string>();
        while (!q.prompt.empty() && (q.prompt.back() == '\n' || q.prompt.back() == ' ')) q.prompt.pop_back();
        q.prompt += suffix;
        q.choices = r.at("choices").get<std::vector<std::string>>();
        q.gold = json_integer<int>(r.at("gold"));
      } catch (const std::exception& e) {
        throw InputError(fmt::format("{}:{}: {}", path, i, e.what()));
      }
      out.push_back(std::move(q));
    }
    return out;
  };
}

std::vector<Question> load_winogrande(const TaskOptions& o) {
  const std::string path = path_in(o, "llm-foundry-icl/winogrande.jsonl");
  std::vector<Question> out;
  int64_t i = 0;
  for (const auto& r : read_jsonl(path, o.limit)) {
    Question q;
    q.id = fmt::format("winogrande/{}", i++);
    try {
      q.choices = r.at("context_options").get<std::vector<std::string>>();
      q.continuation = r.at("continuation").get<std::string>();
      q.gold = json_integer<int>(r.at("gold"));
    } catch (const std::exception& e) {
      throw InputError(fmt::format("{}:{}: {}", path, i, e.what()));
    }
    out.push_back(std::move(q));
  }
  return out;
}

std::vector<Question> load_lambada(const TaskOptions& o) {
  const std::string path = path_in(o, "llm-foundry-icl/lambada_openai.jsonl");
  std::vector<Question> out;
  int64_t i = 0;
  for (const auto& r : read_jsonl(path, o.limit)) {
    Question q;
    q.id = fmt::format("lambada/{}", i++);
    try {
      q.prompt = r.at("context").get<std::string>();
      q.continuation = r.at("continuation").get<std::string>();
    } catch (const std::exception& e) {
      throw InputError(fmt::format("{}:{}: {}", path, i, e.what()));
    }
    out.push_back(std::move(q));
  }
  return out;
}

// ---- code identifiers: cloze on held-out Python ----
// The second half of docs-code-calib.txt (CPython source the cb models never
// trained on; calibrate on the first half at most). A question is a line's
// last identifier of 4+ characters that already occurs in the text before it
// (the model can find it in its context); the prompt is up to kContextChars
// of text before the line (from a line start) plus the line up to the
// identifier; correct when greedy decoding gives every token of it. Whole
// next lines were tried first: cb-dense-12l F16 matched 0.3% of them.
constexpr size_t kContextChars = 768;

std::vector<Question> load_code_identifiers(const TaskOptions& o) {
  const std::string path = path_in(o, "docs-code-calib.txt");
  const std::string text = read_file(path);
  const size_t half = text.find('\n', text.size() / 2);
  if (half == std::string::npos) throw InputError(fmt::format("{}: too short for held-out lines", path));
  static const std::regex kIdentifier(R"([A-Za-z_][A-Za-z0-9_]{3,})");
  std::vector<Question> out;
  for (size_t start = half + 1; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    size_t from = start > kContextChars ? start - kContextChars : 0;
    from = from == 0 ? 0 : text.find('\n', from) + 1;  // a whole first line
    const std::string context = text.substr(from, start - from);
    std::smatch last;
    for (auto it = std::sregex_iterator(line.begin(), line.end(), kIdentifier); it != std::sregex_iterator(); ++it) {
      if (it->position() > 0 && context.find(it->str()) != std::string::npos) last = *it;
    }
    if (start - (half + 1) >= kContextChars && !last.empty()) {
      Question q;
      q.id = fmt::format("code-identifiers/{}", start);
      q.prompt = context + line.substr(0, static_cast<size_t>(last.position()));
      q.continuation = last.str();
      q.joiner = "";
      out.push_back(std::move(q));
      if (o.limit > 0 && static_cast<int64_t>(out.size()) >= o.limit) break;
    }
    start = end + 1;
  }
  return out;
}

// ---- MMLU / MMLU-Redux ----
std::string subject_title(std::string s) {
  std::replace(s.begin(), s.end(), '_', ' ');
  return s;
}

std::string mc_cloze(const std::string& question) { return "Question: " + question + "\nAnswer:"; }

// --limit N samples across subjects: questions interleaved round-robin
// (row 0 of every subject, then row 1, ...), so a small N is not one subject.
std::vector<Question> interleave(std::map<std::string, std::vector<Question>>& by_subject, int64_t limit) {
  std::vector<Question> out;
  for (size_t row = 0;; ++row) {
    bool any = false;
    for (auto& [s, qs] : by_subject) {
      if (row >= qs.size()) continue;
      any = true;
      out.push_back(std::move(qs[row]));
    }
    if (!any) break;
  }
  apply_limit(out, limit);
  return out;
}

std::vector<std::string> csv_files(const std::string& dir, const std::string& prefix, const std::string& suffix) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() > prefix.size() + suffix.size() && n.starts_with(prefix) && n.ends_with(suffix)) files.push_back(n);
  }
  if (ec || files.empty()) throw InputError(fmt::format("{}: no {}*{} files", dir, prefix, suffix));
  std::sort(files.begin(), files.end());
  return files;
}

std::string mmlu_shots_prefix(const TaskOptions& o, const std::string& subject) {
  if (o.mmlu_shots <= 0) return {};
  const std::string path = path_in(o, "mmlu/dev/" + subject + "_dev.csv");
  const auto rows = parse_csv(to_utf8(read_file(path)), ',');
  std::string prefix;
  for (size_t r = 1; r < rows.size() && static_cast<int>(r) <= o.mmlu_shots; ++r) {
    if (rows[r].size() < 6) throw InputError(fmt::format("{}: row {} has {} fields", path, r + 1, rows[r].size()));
    const int gold = std::stoi(rows[r][5]);
    prefix += mc_cloze(rows[r][0]) + " " + rows[r][1 + gold] + "\n\n";
  }
  return prefix;
}

std::vector<Question> load_mmlu(const TaskOptions& o) {
  const std::string dir = path_in(o, "mmlu/test");
  std::map<std::string, std::vector<Question>> by_subject;
  for (const auto& file : csv_files(dir, "", "_test.csv")) {
    const std::string subject = file.substr(0, file.size() - 9);
    const std::string path = dir + "/" + file;
    const std::string header = fmt::format("The following are questions about {}.\n\n", subject_title(subject));
    const std::string shots = mmlu_shots_prefix(o, subject);
    const auto rows = parse_csv(to_utf8(read_file(path)), ',');
    for (size_t r = 1; r < rows.size(); ++r) {
      const auto& f = rows[r];
      if (f.size() < 6) throw InputError(fmt::format("{}: row {} has {} fields, want 6", path, r + 1, f.size()));
      Question q;
      q.id = fmt::format("mmlu/{}/{}", subject, r - 1);
      q.prompt = header + shots + mc_cloze(f[0]);
      q.choices = {f[1], f[2], f[3], f[4]};
      try {
        q.gold = std::stoi(f[5]);
      } catch (const std::exception&) {
        throw InputError(fmt::format("{}: row {}: bad answer '{}'", path, r + 1, f[5]));
      }
      q.meta["subject"] = subject;
      by_subject[subject].push_back(std::move(q));
    }
  }
  return interleave(by_subject, o.limit);
}

char sniff_delimiter(const std::string& text) {
  const std::string first = text.substr(0, text.find('\n'));
  return std::count(first.begin(), first.end(), ';') > std::count(first.begin(), first.end(), ',') ? ';' : ',';
}

Question redux_row(const std::vector<std::string>& f, const std::map<std::string, size_t>& col,
                   const std::string& path, size_t r, const std::string& subject) {
  auto get = [&](const char* name) -> std::string {
    auto it = col.find(name);
    return it != col.end() && it->second < f.size() ? f[it->second] : std::string();
  };
  Question q;
  q.id = fmt::format("mmlu-redux/{}/{}", subject, r - 1);
  q.prompt = fmt::format("The following are questions about {}.\n\n", subject_title(subject)) + mc_cloze(get("question"));
  try {
    q.choices = parse_python_str_list(get("choices"));
    q.gold = std::stoi(get("answer"));
  } catch (const std::exception& e) {
    throw InputError(fmt::format("{}: row {}: {}", path, r + 1, e.what()));
  }
  if (q.gold < 0 || q.gold >= static_cast<int>(q.choices.size())) {
    throw InputError(fmt::format("{}: row {}: answer {} outside {} choices", path, r + 1, q.gold, q.choices.size()));
  }
  q.meta["subject"] = subject;
  q.meta["error_type"] = normalize_error_type(get("error_type"));
  q.meta["flagged"] = q.meta["error_type"] != "ok";
  if (!get("correct_answer").empty()) q.meta["correct_answer"] = get("correct_answer");
  return q;
}

std::vector<Question> load_mmlu_redux(const TaskOptions& o) {
  const std::string dir = path_in(o, "mmlu-redux");
  std::map<std::string, std::vector<Question>> by_subject;
  for (const auto& file : csv_files(dir, "mmlu_", ".csv")) {
    const std::string subject = file.substr(5, file.size() - 9);
    const std::string path = dir + "/" + file;
    const std::string text = to_utf8(read_file(path));
    const auto rows = parse_csv(text, sniff_delimiter(text));
    if (rows.empty()) throw InputError(fmt::format("{}: empty", path));
    std::map<std::string, size_t> col;  // columns are found by name: files reorder them
    for (size_t c = 0; c < rows[0].size(); ++c) col[rows[0][c]] = c;
    for (const char* need : {"question", "choices", "answer", "error_type"}) {
      if (!col.count(need)) throw InputError(fmt::format("{}: no '{}' column", path, need));
    }
    for (size_t r = 1; r < rows.size(); ++r) {
      if (rows[r].size() == 1 && rows[r][0].empty()) continue;
      by_subject[subject].push_back(redux_row(rows[r], col, path, r, subject));
    }
  }
  return interleave(by_subject, o.limit);
}

// ---- HumanEval(+): gzip'd jsonl, read through gzip(1) (no zlib dependency) ----
std::string gunzip(const std::string& path) {
  if (!fs::is_regular_file(path)) throw InputError(fmt::format("{}: no such file", path));
  std::string cmd = "gzip -dc '" + path + "' 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw IoError(fmt::format("{}: cannot run gzip", path));
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  if (pclose(p) != 0) throw InputError(fmt::format("{}: not a valid gzip file", path));
  return out;
}

std::function<std::vector<Question>(const TaskOptions&)> humaneval_loader(std::string rel, std::string tag) {
  return [rel, tag](const TaskOptions& o) {
    const std::string path = path_in(o, rel);
    std::istringstream in(gunzip(path));
    std::vector<Question> out;
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      Json r;
      try {
        r = Json::parse(line);
        Question q;
        q.id = r.at("task_id").get<std::string>();
        q.prompt = r.at("prompt").get<std::string>();
        q.meta = r;
        q.meta.erase("prompt");
        out.push_back(std::move(q));
      } catch (const std::exception& e) {
        throw InputError(fmt::format("{}: problem {}: {}", path, out.size() + 1, e.what()));
      }
      if (o.limit > 0 && static_cast<int64_t>(out.size()) >= o.limit) break;
    }
    return out;
  };
}

}  // namespace

const std::vector<TaskSpec>& task_table() {
  static const std::vector<TaskSpec> table = {
      {"hellaswag", "HellaSwag validation (10,042), llama-perplexity --hellaswag",
       "hellaswag/hellaswag_val_full.txt", Scoring::kMeanLogprob, load_hellaswag},
      {"arc-challenge", "ARC-Challenge test (1,172), multiple choice", "llm-foundry-icl/arc_challenge.jsonl",
       Scoring::kMeanLogprob, foundry_mc("llm-foundry-icl/arc_challenge.jsonl", "\nAnswer:", "arc-challenge")},
      {"arc-easy", "ARC-Easy test (2,376), multiple choice", "llm-foundry-icl/arc_easy.jsonl",
       Scoring::kMeanLogprob, foundry_mc("llm-foundry-icl/arc_easy.jsonl", "\nAnswer:", "arc-easy")},
      {"winogrande", "WinoGrande dev (1,267), llama-perplexity --winogrande", "llm-foundry-icl/winogrande.jsonl",
       Scoring::kWinogrande, load_winogrande},
      {"mmlu", "MMLU test (14,042), cloze multiple choice, optional k-shot from dev", "mmlu/test",
       Scoring::kMeanLogprob, load_mmlu},
      {"mmlu-redux", "MMLU-Redux (5,700), flagged questions reported separately", "mmlu-redux",
       Scoring::kMeanLogprob, load_mmlu_redux},
      {"lambada", "LAMBADA OpenAI (5,153), last-word greedy accuracy + log-likelihood",
       "llm-foundry-icl/lambada_openai.jsonl", Scoring::kGreedyContinuation, load_lambada},
      {"code-identifiers", "identifier cloze on held-out Python (second half of docs-code-calib.txt), greedy",
       "docs-code-calib.txt", Scoring::kGreedyContinuation, load_code_identifiers},
      {"piqa", "PIQA validation (1,838), multiple choice", "llm-foundry-icl/piqa.jsonl", Scoring::kMeanLogprob,
       foundry_mc("llm-foundry-icl/piqa.jsonl", "\nAnswer:", "piqa")},
      {"openbookqa", "OpenBookQA test (500), multiple choice", "llm-foundry-icl/openbook_qa.jsonl",
       Scoring::kMeanLogprob, foundry_mc("llm-foundry-icl/openbook_qa.jsonl", "", "openbookqa")},
      {"copa", "COPA (100), multiple choice", "llm-foundry-icl/copa.jsonl", Scoring::kMeanLogprob,
       foundry_mc("llm-foundry-icl/copa.jsonl", "", "copa")},
      {"humaneval", "HumanEval (164), greedy generation + execution", "humaneval/HumanEval.jsonl.gz",
       Scoring::kCodeExecution, humaneval_loader("humaneval/HumanEval.jsonl.gz", "humaneval")},
      {"humanevalplus", "HumanEval+ v0.1.10 (164), base + plus tests",
       "humanevalplus/HumanEvalPlus-v0.1.10.jsonl.gz", Scoring::kCodeExecution,
       humaneval_loader("humanevalplus/HumanEvalPlus-v0.1.10.jsonl.gz", "humanevalplus")},
  };
  return table;
}

const TaskSpec& find_task(const std::string& name) {
  std::string known;
  for (const auto& t : task_table()) {
    if (t.name == name) return t;
    known += (known.empty() ? "" : ", ") + t.name;
  }
  throw UsageError(fmt::format("unknown task '{}' (known: {})", name, known));
}

std::vector<std::string> default_task_names() {
  std::vector<std::string> names;
  for (const auto& t : task_table()) {
    if (t.scoring != Scoring::kCodeExecution) names.push_back(t.name);
  }
  return names;
}

}  // namespace cb::bench
