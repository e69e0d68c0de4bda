#include "cerebellum/common/pattern.h"

#include <algorithm>
#include <cctype>
#include <string_view>

#include <fmt/format.h>
#include <re2/re2.h>

#include "cerebellum/common/error.h"

namespace cb {
namespace {

RE2::Options options() {
  RE2::Options o;
  o.set_log_errors(false);  // the library never prints; the error is thrown
  o.set_case_sensitive(true);
  return o;
}

}  // namespace

Pattern::Pattern(const std::string& pattern, const std::string& where)
    : text_(pattern), re_(std::make_unique<re2::RE2>(pattern, options())) {
  if (!re_->ok()) {
    throw RecipeError(fmt::format("{}: '{}' is not a valid regex ({})", where,
                                  pattern.size() > 80 ? pattern.substr(0, 80) + "…" : pattern, re_->error()));
  }
}

Pattern::~Pattern() = default;
Pattern::Pattern(Pattern&&) noexcept = default;
Pattern& Pattern::operator=(Pattern&&) noexcept = default;

bool Pattern::search(const std::string& s) const { return RE2::PartialMatch(s, *re_); }
bool Pattern::full_match(const std::string& s) const { return RE2::FullMatch(s, *re_); }

std::string escape_pattern(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view(".^$|()[]{}*+?\\").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

void check_pattern(const std::string& pattern, const std::string& where) {
  // A tensor name ([A-Za-z0-9_.-]: '.' is the only metacharacter) is always a
  // valid pattern: recipes of thousands of exact names skip the compile.
  const bool plain_name = std::all_of(pattern.begin(), pattern.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
  if (!plain_name) Pattern(pattern, where);
}

}  // namespace cb
