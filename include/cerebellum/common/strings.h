// The library's small text helpers (ASCII; names and flags, not prose).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cb {

std::string ascii_lower(std::string_view s);
std::string ascii_upper(std::string_view s);
// Without leading and trailing spaces, tabs, CR and LF.
std::string trim(std::string_view s);
// "a,b,,c" -> {"a", "b", "c"}: the comma lists of flags (empty parts dropped).
std::vector<std::string> split_commas(std::string_view s);

}  // namespace cb
