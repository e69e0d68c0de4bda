// Minimal streaming SHA-256 (FIPS 180-4) for model and text hashes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace cb {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size_bytes);
  std::string hex();  // finalises

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buf_len_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace cb
