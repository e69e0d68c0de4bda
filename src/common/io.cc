#include "cerebellum/common/io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "cerebellum/common/error.h"
#include "common/sha256.h"

#ifdef CB_HAVE_OPENSSL
#include <openssl/evp.h>
#endif

namespace cb {

AtomicOutputFile::AtomicOutputFile(const std::string& path) : path_(path) {
  temp_path_ = fmt::format("{}.tmp.{}", path, static_cast<long>(getpid()));
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (!file_) {
    throw IoError(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
  }
}

AtomicOutputFile::~AtomicOutputFile() {
  if (file_) std::fclose(file_);
  if (!committed_) std::remove(temp_path_.c_str());
}

void AtomicOutputFile::write(const void* data, size_t size_bytes) {
  if (size_bytes && std::fwrite(data, 1, size_bytes, file_) != size_bytes) {
    throw IoError(fmt::format("{}: write failed ({})", path_, std::strerror(errno)));
  }
}

void AtomicOutputFile::seek(uint64_t offset_bytes) {
  if (fseeko(file_, static_cast<off_t>(offset_bytes), SEEK_SET) != 0) {
    throw IoError(fmt::format("{}: seek failed ({})", path_, std::strerror(errno)));
  }
}

uint64_t AtomicOutputFile::tell() const { return static_cast<uint64_t>(ftello(file_)); }

void AtomicOutputFile::commit() {
  if (std::fflush(file_) != 0 || fsync(fileno(file_)) != 0) {
    throw IoError(fmt::format("{}: flush failed ({})", path_, std::strerror(errno)));
  }
  std::fclose(file_);
  file_ = nullptr;
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    throw IoError(fmt::format("{}: rename failed ({})", path_, std::strerror(errno)));
  }
  committed_ = true;
}

void check_output_path(const std::string& out, const std::vector<std::string>& inputs, const std::string& flag) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (out.empty() || !fs::exists(out, ec)) return;
  if (!fs::is_regular_file(out, ec)) {
    throw UsageError(fmt::format("{} {} exists and is not a regular file: refusing to replace it", flag, out));
  }
  for (const std::string& in : inputs) {
    if (!in.empty() && fs::exists(in, ec) && fs::equivalent(out, in, ec)) {
      throw UsageError(fmt::format("{} {} is the input {}: refusing to overwrite an input", flag, out, in));
    }
  }
}

void write_file_atomic(const std::string& path, const std::string& content) {
  AtomicOutputFile out(path);
  out.write(content);
  out.commit();
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError(fmt::format("{}: is a directory, not a file", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open for reading", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string file_identity(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code e1, e2, e3;
  const auto size = fs::file_size(path, e1);
  const auto mtime = fs::last_write_time(path, e2).time_since_epoch().count();
  const std::string abs = fs::absolute(path, e3).string();
  if (e1 || e2 || e3) return "";
  return fmt::format("{}|{}|{}", abs, size, mtime);
}

std::string sha256_file(const std::string& path) {
  // Hashing a model of tens of GB takes minutes: remembered per process for
  // an unchanged file.
  static std::mutex mutex;
  static std::map<std::string, std::string> memo;
  const std::string key = file_identity(path);
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = memo.find(key); !key.empty() && it != memo.end()) return it->second;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open for reading", path));
  std::vector<char> buf(4 << 20);
#ifdef CB_HAVE_OPENSSL
  // OpenSSL's SHA-256 uses the CPU's SHA instructions: ~10x ours.
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &md_len);
  std::string hex;
  for (unsigned int i = 0; i < md_len; ++i) hex += fmt::format("{:02x}", md[i]);
#else
  Sha256 h;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  const std::string hex = h.hex();
#endif
  std::lock_guard<std::mutex> lock(mutex);
  if (!key.empty()) memo[key] = hex;
  return hex;
}

std::string sha256_bytes(const void* data, size_t size_bytes) {
  Sha256 h;
  h.update(data, size_bytes);
  return h.hex();
}

}  // namespace cb
