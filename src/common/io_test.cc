// The cross-process hash cache of large files (issue 16: every process of a
// sweep hashed the 16 GB source again).
#include "cerebellum/common/io.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace cb {
namespace {

namespace fs = std::filesystem;

void write_bytes(const std::string& path, int64_t n, char fill) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const std::string block(1 << 20, fill);
  for (int64_t done = 0; done < n; done += static_cast<int64_t>(block.size())) {
    out.write(block.data(), static_cast<std::streamsize>(std::min<int64_t>(block.size(), n - done)));
  }
}

// Runs `fn` in a forked process (its own memo); true if it exited 0.
template <typename Fn>
bool in_child(Fn fn) {
  const pid_t child = ::fork();
  if (child == 0) {
    fn();
    ::_exit(0);
  }
  int status = 0;
  return ::waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(HashCache, LargeFilesAreRememberedAcrossProcessesUntilTheyChange) {
  const fs::path dir = fs::temp_directory_path() / ("cb-hash-cache-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  ::setenv("CEREBELLUM_CACHE", (dir / "cache").c_str(), 1);
  const std::string big = (dir / "big.bin").string(), small = (dir / "small.bin").string();
  write_bytes(big, kHashCacheMinBytes, 'a');
  write_bytes(small, 1000, 'a');
  // Another process hashes both (it writes the entries; this one has no memo of them).
  ASSERT_TRUE(in_child([&] { sha256_file(big), sha256_file(small); }));
  const fs::path entries = dir / "cache" / "sha256";
  ASSERT_TRUE(fs::is_directory(entries));
  int n = 0;
  fs::path entry;
  for (const auto& e : fs::directory_iterator(entries)) ++n, entry = e.path();
  ASSERT_EQ(n, 1) << "only the large file has an entry";
  std::string stored;
  std::getline(std::ifstream(entry), stored);
  EXPECT_EQ(stored.size(), 64u);
  // This process reads the entry instead of the file: a forged one shows it.
  const std::string forged(64, 'f');
  std::ofstream(entry) << forged << "\n";
  EXPECT_EQ(sha256_file(big), forged);
  // The same bytes under another identity (a copy) are hashed: the true digest.
  const std::string copy = (dir / "copy.bin").string();
  fs::copy_file(big, copy);
  EXPECT_EQ(sha256_file(copy), stored);
  // Rewritten in place, same size (new ctime): hashed again, not looked up.
  write_bytes(big, kHashCacheMinBytes, 'b');
  const std::string h2 = sha256_file(big);
  EXPECT_NE(h2, forged);
  EXPECT_NE(h2, stored);
  // A damaged entry is not trusted: the file is hashed again.
  write_bytes(copy, kHashCacheMinBytes, 'a');  // a new identity, not in this process's memo
  ASSERT_TRUE(in_child([&] { sha256_file(copy); }));
  for (const auto& e : fs::directory_iterator(entries)) std::ofstream(e.path()) << "garbage\n";
  EXPECT_EQ(sha256_file(copy), stored);
  ::unsetenv("CEREBELLUM_CACHE");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace cb
