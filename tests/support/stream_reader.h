#pragma once
// Reads an endless HTTP response (Server-Sent Events) as it arrives, for tests: a plain TCP
// connection to 127.0.0.1, one GET, and reads that wait for a given text with a deadline.
// The bytes are kept raw (status line, headers, chunk sizes and all): tests look for text
// the server writes in one piece.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace assay::testing {

class StreamReader {
 public:
  // Connects to 127.0.0.1:`port` and sends GET `path` with `headers`.
  static absl::StatusOr<StreamReader> Open(
      int port, const std::string& path,
      const std::vector<std::pair<std::string, std::string>>& headers);
  StreamReader(StreamReader&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)), data_(std::move(o.data_)) {}
  StreamReader& operator=(StreamReader&&) = delete;
  ~StreamReader();

  // Reads until `text` has arrived after byte `from` of what was received; returns the offset
  // just past it. kDeadlineExceeded (naming what arrived) when it has not within `timeout`;
  // kUnavailable when the server closed the connection first.
  absl::StatusOr<size_t> WaitFor(std::string_view text, size_t from, absl::Duration timeout);
  // Everything received so far.
  const std::string& data() const { return data_; }

 private:
  explicit StreamReader(int fd) : fd_(fd) {}
  int fd_ = -1;
  std::string data_;
};

}  // namespace assay::testing
