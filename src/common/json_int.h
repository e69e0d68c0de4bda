// Integers from JSON we did not write ourselves (journals, run files, task data).
// nlohmann's get<int>() static_casts a float (undefined behaviour when out of
// range: found by the journal fuzzer) and silently narrows a wide integer.
#pragma once

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace cb {

// The integer `v` holds, or std::range_error (a float with a fraction, or a
// value outside T) / nlohmann::json::type_error (not a number). Callers add
// the file and line.
template <typename T>
T json_integer(const nlohmann::json& v) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  using L = std::numeric_limits<T>;
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!(d >= static_cast<double>(L::min()) && d <= static_cast<double>(L::max())) || d != std::floor(d))
      throw std::range_error(v.dump() + " is not an integer in range");
    return static_cast<T>(d);
  }
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(L::max())) throw std::range_error(v.dump() + " is out of range");
    return static_cast<T>(u);
  }
  if (v.is_number_integer()) {
    const auto i = v.get<int64_t>();
    if constexpr (std::is_unsigned_v<T>) {
      if (i < 0) throw std::range_error(v.dump() + " is negative");
      if (static_cast<uint64_t>(i) > static_cast<uint64_t>(L::max()))
        throw std::range_error(v.dump() + " is out of range");
    } else if (i < static_cast<int64_t>(L::min()) || i > static_cast<int64_t>(L::max())) {
      throw std::range_error(v.dump() + " is out of range");
    }
    return static_cast<T>(i);
  }
  return v.get<T>();  // not a number: nlohmann's type_error names the JSON type
}

}  // namespace cb
