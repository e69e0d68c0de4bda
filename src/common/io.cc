#include "cerebellum/common/io.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <csignal>

#include <cctype>
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

namespace {

// Paths this process must remove if a signal ends it: fixed slots, so the
// handler only reads memory and calls unlink (async-signal-safe).
constexpr size_t kMaxCleanup = 64, kMaxPathBytes = 4096;
std::array<std::array<char, kMaxPathBytes>, kMaxCleanup> g_cleanup_paths;
std::array<std::atomic<bool>, kMaxCleanup> g_cleanup_used{};

int register_cleanup(const std::string& path) {
  if (path.size() >= kMaxPathBytes) return -1;
  for (size_t i = 0; i < kMaxCleanup; ++i) {
    bool expected = false;
    if (g_cleanup_used[i].load() || !g_cleanup_used[i].compare_exchange_strong(expected, true)) continue;
    std::memcpy(g_cleanup_paths[i].data(), path.c_str(), path.size() + 1);
    return static_cast<int>(i);
  }
  return -1;  // more than 64 files at once: those beyond are cleaned at the next run
}

void unregister_cleanup(int slot) {
  if (slot >= 0) g_cleanup_used[static_cast<size_t>(slot)].store(false);
}

void on_interrupt(int sig) {
  for (size_t i = 0; i < kMaxCleanup; ++i) {
    if (g_cleanup_used[i].load()) unlink(g_cleanup_paths[i].data());
  }
  std::signal(sig, SIG_DFL);
  raise(sig);
}

std::mutex g_io_log_mutex;
Logger g_io_log;

void io_notice(const std::string& msg) {
  std::lock_guard<std::mutex> lock(g_io_log_mutex);
  g_io_log.warn(msg);
}

// "<path>.tmp.*" siblings whose writer is gone (its flock is released by the
// kernel whatever way it died) are removed; live writers' are left alone.
void remove_stale_temps(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path target(path);
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const std::string prefix = target.filename().string() + ".tmp.";
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(prefix) || !it->is_regular_file(ec)) continue;
    const int fd = open(it->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      const auto size_bytes = it->file_size(ec);
      if (unlink(it->path().c_str()) == 0) {
        io_notice(fmt::format("removed {} ({} bytes), left by an interrupted run", it->path().string(),
                              static_cast<long long>(size_bytes)));
      }
    }
    close(fd);
  }
}

}  // namespace

void install_interrupt_cleanup() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, on_interrupt);
}

void set_io_logger(const Logger& logger) {
  std::lock_guard<std::mutex> lock(g_io_log_mutex);
  g_io_log = logger;
}

AtomicOutputFile::AtomicOutputFile(const std::string& path) : path_(path) {
  remove_stale_temps(path);
  temp_path_ = fmt::format("{}.tmp.{}", path, static_cast<long>(getpid()));
  cleanup_slot_ = register_cleanup(temp_path_);
  file_ = std::fopen(temp_path_.c_str(), "wbe");
  if (!file_) {
    unregister_cleanup(cleanup_slot_);
    throw IoError(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
  }
  flock(fileno(file_), LOCK_EX | LOCK_NB);  // marks it live for other processes' stale scan
}

AtomicOutputFile::~AtomicOutputFile() {
  if (file_) std::fclose(file_);
  if (!committed_) std::remove(temp_path_.c_str());
  unregister_cleanup(cleanup_slot_);
}

ExclusiveLock::ExclusiveLock(const std::string& path, const std::string& what) : lock_path_(path + ".lock") {
  for (int attempt = 0; attempt < 8; ++attempt) {
    const int fd = open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw IoError(fmt::format("{}: cannot create lock ({})", lock_path_, std::strerror(errno)));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      char buf[64] = {};
      const ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
      close(fd);
      std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
      while (!holder.empty() && std::isspace(static_cast<unsigned char>(holder.back()))) holder.pop_back();
      throw UsageError(fmt::format("{} is in use by another run (pid {}, lock {}): wait for it to finish, "
                                   "or write to another path", what, holder, lock_path_));
    }
    // A holder that just finished may have unlinked the file we opened: only
    // the lock on the file the path names now counts.
    struct stat held{}, named{};
    if (fstat(fd, &held) == 0 && stat(lock_path_.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev) {
      const std::string pid = std::to_string(static_cast<long>(getpid())) + "\n";
      if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) < 0) {
        close(fd);
        throw IoError(fmt::format("{}: cannot write lock ({})", lock_path_, std::strerror(errno)));
      }
      fd_ = fd;
      cleanup_slot_ = register_cleanup(lock_path_);
      return;
    }
    close(fd);
  }
  throw IoError(fmt::format("{}: cannot take the lock (it keeps being replaced)", lock_path_));
}

ExclusiveLock::~ExclusiveLock() {
  unlink(lock_path_.c_str());  // before unlocking, so a waiter re-checks the inode
  close(fd_);
  unregister_cleanup(cleanup_slot_);
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

std::string cache_root() {
  const char* env = std::getenv("CEREBELLUM_CACHE");
  const char* home = std::getenv("HOME");
  return env && *env ? env : std::string(home ? home : "/tmp") + "/.cache/cerebellum";
}

namespace {

std::string hash_stream(std::ifstream& in) {
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
  return hex;
#else
  Sha256 h;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return h.hex();
#endif
}

// The cross-process entry of a large file: cache_root()/sha256/<sha256 of its
// identity>, holding the hex digest. "" for a small or unstat-able file.
std::string hash_cache_entry(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < kHashCacheMinBytes) return "";
  std::error_code ec;
  const std::string id = fmt::format("{}|{}|{}|{}|{}.{}|{}.{}", std::filesystem::absolute(path, ec).string(),
                                     st.st_size, st.st_dev, st.st_ino, st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                                     st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
  return cache_root() + "/sha256/" + sha256_bytes(id.data(), id.size());
}

bool is_hex_digest(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

std::string sha256_file(const std::string& path) {
  // Hashing a model of tens of GB takes minutes: remembered per process for
  // an unchanged file, and across processes for a large one.
  static std::mutex mutex;
  static std::map<std::string, std::string> memo;
  const std::string key = file_identity(path);
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = memo.find(key); !key.empty() && it != memo.end()) return it->second;
  }
  const std::string entry = hash_cache_entry(path);
  std::string hex;
  std::error_code ec;
  if (!entry.empty() && std::filesystem::is_regular_file(entry, ec)) {
    std::ifstream c(entry);
    std::getline(c, hex);
    if (!is_hex_digest(hex)) hex.clear();  // damaged: hashed again below
  }
  if (hex.empty()) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(fmt::format("{}: cannot open for reading", path));
    hex = hash_stream(in);
    if (!entry.empty()) {
      try {  // a cache we cannot write only costs the next run the time
        std::filesystem::create_directories(std::filesystem::path(entry).parent_path());
        write_file_atomic(entry, hex + "\n");
      } catch (const Error&) {
      } catch (const std::filesystem::filesystem_error&) {
      }
    }
  }
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
