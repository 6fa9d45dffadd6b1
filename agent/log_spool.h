#pragma once
// The log chunks of one job attempt that the server has not acknowledged yet, in seq order:
// in memory up to a bound, then in a file (the agent's work dir) — so a long disconnect, or a
// server that acknowledges slowly, costs disk, not memory. Acknowledged chunks are dropped;
// the file is removed once it holds none, and when the spool is destroyed.
//
// Not thread-safe: the agent calls it under its state mutex.

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"

namespace assay {

class LogSpool {
 public:
  // `path`: the spill file, created when first needed. `memory_limit`: bytes of chunk data
  // held in memory; once a chunk does not fit, it and every later chunk go to the file until
  // the file's chunks are all acknowledged (so memory always holds the oldest ones).
  LogSpool(std::string path, size_t memory_limit);
  ~LogSpool();
  LogSpool(const LogSpool&) = delete;
  LogSpool& operator=(const LogSpool&) = delete;

  // Adds chunk `seq` (greater than every seq added before), read from the job's output at
  // `read_unix_us` (0: unknown). When the file cannot be written the chunk is kept in memory
  // instead and the error returned (nothing is lost).
  absl::Status Append(uint64_t seq, std::string_view data, int64_t read_unix_us = 0);
  // The read time given to Append for a chunk still held; 0 when unknown or not held.
  int64_t ReadTimeOf(uint64_t seq) const;
  // Drops every chunk with seq <= `seq` (the server stored them).
  void AckUpTo(uint64_t seq);
  // Drops everything (the attempt is stale).
  void Clear();
  // The first chunk with seq > `after`; nullopt when there is none. kDataLoss when the file
  // cannot be read back.
  absl::StatusOr<std::optional<std::pair<uint64_t, std::string>>> Next(uint64_t after) const;

  bool empty() const { return mem_.empty() && disk_.empty(); }
  size_t memory_bytes() const { return mem_bytes_; }
  size_t disk_chunks() const { return disk_.size(); }

 private:
  struct DiskChunk {
    uint64_t seq = 0;
    uint64_t offset = 0;
    size_t size = 0;
  };
  void CloseFile();
  void DropStampsUpTo(uint64_t seq);

  const std::string path_;
  const size_t memory_limit_;
  std::deque<std::pair<uint64_t, std::string>> mem_;
  size_t mem_bytes_ = 0;
  std::deque<DiskChunk> disk_;
  // Chunks that belong behind those on disk but could not be written (a full disk): kept in
  // memory, marked in disk_ by offset UINT64_MAX.
  std::map<uint64_t, std::string> overflow_;
  // (seq, read time) of every chunk held, in seq order (16 bytes a chunk, in memory even for
  // chunks on disk).
  std::deque<std::pair<uint64_t, int64_t>> stamps_;
  int fd_ = -1;
  uint64_t file_end_ = 0;
};

}  // namespace assay
