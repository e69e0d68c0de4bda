// Tensor-name patterns from users (recipes, constraints, --tensors, imported
// groups), compiled by RE2: linear-time matching and no stack recursion, so a
// hostile pattern ("(.*)*Z", 20,000 nested groups) is an error or a fast
// answer, never a hang or a crash. Semantics (docs/errors.md): case-sensitive,
// search() is unanchored like stock llama-quantize's std::regex_search;
// RE2 has no backreferences or lookaround, which ECMAScript has.
#pragma once

#include <memory>
#include <string>

namespace re2 {
class RE2;
}

namespace cb {

class Pattern {
 public:
  // Throws RecipeError "<where>: '<pattern>' is not a valid regex (<why>)".
  explicit Pattern(const std::string& pattern, const std::string& where = "pattern");
  ~Pattern();
  Pattern(Pattern&&) noexcept;
  Pattern& operator=(Pattern&&) noexcept;

  bool search(const std::string& s) const;      // matches anywhere in s
  bool full_match(const std::string& s) const;  // matches all of s
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::unique_ptr<re2::RE2> re_;
};

// `s` with every regex metacharacter backslash-escaped: matches s literally.
std::string escape_pattern(const std::string& s);

// The check alone (the same message as the constructor's).
void check_pattern(const std::string& pattern, const std::string& where);

}  // namespace cb
