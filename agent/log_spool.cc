#include "agent/log_spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace assay {

LogSpool::LogSpool(std::string path, size_t memory_limit)
    : path_(std::move(path)), memory_limit_(memory_limit) {}

LogSpool::~LogSpool() { CloseFile(); }

void LogSpool::CloseFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  fd_ = -1;
  file_end_ = 0;
}

absl::Status LogSpool::Append(uint64_t seq, std::string_view data, int64_t read_unix_us) {
  stamps_.emplace_back(seq, read_unix_us);
  if (disk_.empty() && mem_bytes_ + data.size() <= memory_limit_) {
    mem_.emplace_back(seq, std::string(data));
    mem_bytes_ += data.size();
    return absl::OkStatus();
  }
  absl::Status failed;
  if (fd_ < 0) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0)
      failed =
          absl::UnavailableError(absl::StrCat("cannot create ", path_, ": ", std::strerror(errno)));
  }
  if (failed.ok()) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done,
                           static_cast<off_t>(file_end_ + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        failed = absl::UnavailableError(
            absl::StrCat("cannot write ", path_, ": ", std::strerror(errno)));
        break;
      }
      done += static_cast<size_t>(n);
    }
  }
  if (!failed.ok()) {
    // Why keep it in memory: order must hold, so only while no chunk waits on disk.
    if (disk_.empty()) {
      mem_.emplace_back(seq, std::string(data));
      mem_bytes_ += data.size();
      return failed;
    }
    // Chunks already wait on disk: keep this one in memory, indexed in order behind them
    // (rare: a full disk).
    disk_.push_back({seq, UINT64_MAX, data.size()});
    overflow_.emplace(seq, std::string(data));
    return failed;
  }
  disk_.push_back({seq, file_end_, data.size()});
  file_end_ += data.size();
  return absl::OkStatus();
}

int64_t LogSpool::ReadTimeOf(uint64_t seq) const {
  auto it = std::lower_bound(stamps_.begin(), stamps_.end(), seq,
                             [](const auto& s, uint64_t v) { return s.first < v; });
  return it != stamps_.end() && it->first == seq ? it->second : 0;
}

void LogSpool::DropStampsUpTo(uint64_t seq) {
  while (!stamps_.empty() && stamps_.front().first <= seq) stamps_.pop_front();
}

void LogSpool::AckUpTo(uint64_t seq) {
  DropStampsUpTo(seq);
  while (!mem_.empty() && mem_.front().first <= seq) {
    mem_bytes_ -= mem_.front().second.size();
    mem_.pop_front();
  }
  while (!disk_.empty() && disk_.front().seq <= seq) {
    overflow_.erase(disk_.front().seq);
    disk_.pop_front();
  }
  if (disk_.empty()) CloseFile();
}

void LogSpool::Clear() {
  stamps_.clear();
  mem_.clear();
  mem_bytes_ = 0;
  disk_.clear();
  overflow_.clear();
  CloseFile();
}

absl::StatusOr<std::optional<std::pair<uint64_t, std::string>>> LogSpool::Next(
    uint64_t after) const {
  auto m = std::upper_bound(mem_.begin(), mem_.end(), after,
                            [](uint64_t v, const auto& c) { return v < c.first; });
  if (m != mem_.end()) return std::make_optional(*m);
  auto d = std::upper_bound(disk_.begin(), disk_.end(), after,
                            [](uint64_t v, const DiskChunk& c) { return v < c.seq; });
  if (d == disk_.end()) return std::nullopt;
  if (d->offset == UINT64_MAX) return std::make_optional(*overflow_.find(d->seq));
  std::string data(d->size, '\0');
  size_t done = 0;
  while (done < d->size) {
    ssize_t n =
        ::pread(fd_, data.data() + done, d->size - done, static_cast<off_t>(d->offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::DataLossError(
          absl::StrCat("cannot read back ", path_, ": ", n < 0 ? std::strerror(errno) : "EOF"));
    }
    done += static_cast<size_t>(n);
  }
  return std::make_optional(std::make_pair(d->seq, std::move(data)));
}

}  // namespace assay
