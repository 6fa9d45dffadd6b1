#pragma once
// `assay logs -f JOB`: follows GET /api/v1/jobs/{id}/log?follow=1 over plain HTTP/1.1,
// printing bytes as they arrive; after a cut (or the server's idle end while the job still
// runs) it reconnects with ?offset= the raw log bytes it has printed, so each byte is printed
// once. With timestamps the server's 28-byte line stamps are not counted as log bytes, and a
// stamp cut in half is dropped (the server sends it again).

#include <functional>
#include <ostream>
#include <string>
#include <string_view>

namespace assay::cli {

struct FollowRequest {
  std::string server;  // http://host:port[/]
  std::string token;
  std::string job_id;
  bool timestamps = false;
  int max_reconnects = 100;
  // Whether the job is still live (asked after a clean end of the stream); true → reconnect.
  std::function<bool()> job_live;
};

// Exit code: 0 once the stream ended with the job; 1 on an HTTP error (message on `err`) or
// when max_reconnects were used up.
int FollowLog(const FollowRequest& req, std::ostream& out, std::ostream& err);

// Counts the log bytes in stamped output (exposed for tests).
class StampedCounter {
 public:
  explicit StampedCounter(bool timestamps, bool at_line_start = true)
      : timestamps_(timestamps), pending_(at_line_start) {}
  // Feeds received bytes; returns those to print now (a stamp is held until complete).
  std::string Feed(std::string_view bytes);
  // The connection was cut: a partial stamp is dropped.
  void Cut() {
    stamp_.clear();
    pending_ = pending_ || in_stamp_;
    in_stamp_ = false;
  }
  long long raw() const { return raw_; }

 private:
  bool timestamps_;
  bool pending_;  // the next byte starts a line (its stamp comes first)
  bool in_stamp_ = false;
  std::string stamp_;
  long long raw_ = 0;
};

}  // namespace assay::cli
