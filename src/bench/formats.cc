// Readers for the messy real-world formats of the task data (CSV with
// quoted newlines, Python list literals, cp1252 files).
#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "cerebellum/bench/tasks.h"
#include "cerebellum/common/error.h"

namespace cb::bench {

std::vector<std::vector<std::string>> parse_csv(const std::string& text, char delimiter) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
      any = true;
    } else if (c == delimiter) {
      row.push_back(std::move(field));
      field.clear();
      any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !field.empty()) {
        row.push_back(std::move(field));
        rows.push_back(std::move(row));
      }
      row.clear();
      field.clear();
      any = false;
    } else {
      field += c;
      any = true;
    }
  }
  if (any || !field.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<std::string> parse_python_str_list(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0;
  auto skip_ws = [&] { while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i; };
  skip_ws();
  if (i >= text.size() || text[i] != '[') throw InputError(fmt::format("not a list literal: '{}'", text.substr(0, 60)));
  ++i;
  for (;;) {
    skip_ws();
    if (i >= text.size()) throw InputError("unterminated list literal");
    if (text[i] == ']') break;
    std::string item;
    if (text[i] == '\'' || text[i] == '"') {
      const char q = text[i++];
      while (i < text.size() && text[i] != q) {
        if (text[i] == '\\' && i + 1 < text.size()) {
          const char e = text[++i];
          item += e == 'n' ? '\n' : e == 't' ? '\t' : e;
        } else {
          item += text[i];
        }
        ++i;
      }
      if (i >= text.size()) throw InputError("unterminated string in list literal");
      ++i;
    } else {  // a bare literal (number, True, None)
      while (i < text.size() && text[i] != ',' && text[i] != ']') item += text[i++];
      while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.pop_back();
    }
    out.push_back(std::move(item));
    skip_ws();
    if (i < text.size() && text[i] == ',') ++i;
  }
  return out;
}

namespace {

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    const int n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
    if (n < 0 || i + n >= s.size() + (n == 0)) return false;
    for (int k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += n + 1;
  }
  return true;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Windows-1252 0x80..0x9F (0 = undefined, kept as the C1 code point).
constexpr uint16_t kCp1252High[32] = {
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
    0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178};

}  // namespace

std::string to_utf8(const std::string& bytes, bool* was_cp1252) {
  if (was_cp1252) *was_cp1252 = false;
  if (valid_utf8(bytes)) return bytes;
  if (was_cp1252) *was_cp1252 = true;
  std::string out;
  out.reserve(bytes.size() + bytes.size() / 8);
  for (unsigned char c : bytes) {
    uint32_t cp = c;
    if (c >= 0x80 && c < 0xA0 && kCp1252High[c - 0x80]) cp = kCp1252High[c - 0x80];
    append_utf8(out, cp);
  }
  return out;
}

std::string normalize_error_type(const std::string& raw) {
  std::string s;
  for (char c : raw) {
    if (c == ' ' || c == '-') c = '_';
    s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  while (!s.empty() && s.back() == '_') s.pop_back();
  while (!s.empty() && s.front() == '_') s.erase(s.begin());
  if (s.empty()) return "unknown";
  return s;
}

}  // namespace cb::bench
