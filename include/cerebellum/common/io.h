// File output that never leaves a half-written file: write to a temporary
// next to the target, fsync, rename on commit(); removed if never committed.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cerebellum/common/log.h"

namespace cb {

class AtomicOutputFile {
 public:
  // Opens "<path>.tmp.<pid>" for writing, flock()ed while it lives, and
  // registered for removal on SIGINT/SIGTERM/SIGHUP (install_interrupt_cleanup).
  // Stale "<path>.tmp.*" that no live writer holds (left by kill -9, a crash)
  // are removed first, with a notice to the io log. Throws IoError naming `path`.
  explicit AtomicOutputFile(const std::string& path);
  ~AtomicOutputFile();  // removes the temporary unless committed
  AtomicOutputFile(const AtomicOutputFile&) = delete;
  AtomicOutputFile& operator=(const AtomicOutputFile&) = delete;

  void write(const void* data, size_t size_bytes);
  void write(const std::string& s) { write(s.data(), s.size()); }
  void seek(uint64_t offset_bytes);
  uint64_t tell() const;
  FILE* handle() { return file_; }
  // Flush, fsync, close and rename over the target.
  void commit();
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  std::string path_;
  std::string temp_path_;
  FILE* file_ = nullptr;
  bool committed_ = false;
  int cleanup_slot_ = -1;
};

// Exclusive lock on `path` for this object's lifetime: "<path>.lock" holds the
// owner's pid and is flock()ed (released by the kernel if the process dies).
// A second holder gets a UsageError naming `what` and the holder's pid.
class ExclusiveLock {
 public:
  ExclusiveLock(const std::string& path, const std::string& what);
  ~ExclusiveLock();  // unlocks and removes the lock file
  ExclusiveLock(const ExclusiveLock&) = delete;
  ExclusiveLock& operator=(const ExclusiveLock&) = delete;

 private:
  std::string lock_path_;
  int fd_ = -1;
  int cleanup_slot_ = -1;
};

// The CLI's handler for SIGINT, SIGTERM and SIGHUP: removes the temporaries
// and lock files this process holds, then dies of the signal as before.
void install_interrupt_cleanup();

// Where file-level notices go (a stale temporary removed); silent by default.
void set_io_logger(const Logger& logger);

// Writes the whole content atomically.
void write_file_atomic(const std::string& path, const std::string& content);

// "absolute path|size|mtime": names an unchanged file, for per-process
// memos of work on multi-GB models (hashes, dry runs, built files); "" when
// the file cannot be stat'ed (then nothing is remembered).
std::string file_identity(const std::string& path);

// Input is sacred: throws UsageError when `out` names the same file as one of
// `inputs` (same device and inode, links resolved), or exists and is not a
// regular file (a device, a FIFO, a directory). `flag` names the option.
void check_output_path(const std::string& out, const std::vector<std::string>& inputs,
                       const std::string& flag = "--out");

// Reads a whole file; throws InputError naming it.
std::string read_file(const std::string& path);

// $CEREBELLUM_CACHE, else ~/.cache/cerebellum: what survives between runs
// (the speed tables, the hashes below).
std::string cache_root();

// Hex sha256 of a file's bytes (streamed). Files of kHashCacheMinBytes or
// more are also remembered across processes, in cache_root()/sha256/, keyed
// by path, size, inode, mtime and ctime (ns): every stage, resume and shard
// of a run on a 16–70 GB model would otherwise read it all again (~10 s per
// 16 GB at OpenSSL's speed). ctime cannot be set back by a user, so a file
// rewritten in place is hashed again.
inline constexpr int64_t kHashCacheMinBytes = int64_t{64} << 20;
std::string sha256_file(const std::string& path);
std::string sha256_bytes(const void* data, size_t size_bytes);

}  // namespace cb
