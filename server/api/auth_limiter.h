#pragma once
// Rate limit on failed authentications, per client address: a token bucket per address that
// each failure drains and that refills at `per_minute` tokens a minute (burst `per_minute`).
// An address whose bucket is empty is answered 429 for every authenticated request (even
// with the right token: otherwise guessing would just continue), until a token refills.
//
// The table is bounded: at `max_addresses` it first drops addresses whose bucket is full
// again (at most once a second); if none is, new addresses share one overflow bucket, so a
// flood of addresses cannot grow memory without limit (only make those addresses share one).
// Thread-safe. *clock must outlive the limiter.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/base/clock.h"

namespace assay {

class AuthLimiter {
 public:
  AuthLimiter(const Clock* clock, int per_minute, size_t max_addresses = 10000)
      : clock_(clock),
        per_minute_(per_minute < 1 ? 1 : per_minute),
        max_addresses_(max_addresses < 1 ? 1 : max_addresses) {}

  // Zero when `remote` ("ip:port" or "[v6]:port"; the port is ignored) may try to
  // authenticate; otherwise how long until it may (for Retry-After).
  absl::Duration Blocked(std::string_view remote) ABSL_LOCKS_EXCLUDED(mu_);
  // Records one failed authentication from `remote`.
  void Failed(std::string_view remote) ABSL_LOCKS_EXCLUDED(mu_);
  // Addresses in the table (for tests).
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

  // "203.0.113.7:4242" → "203.0.113.7", "[::1]:80" → "::1"; anything else as given.
  static std::string AddressOf(std::string_view remote);

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time updated;
  };
  // The bucket `address` uses now (refilled to now), creating or sharing one as above.
  // REQUIRES: mu_ held.
  Bucket& BucketFor(const std::string& address, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Refill(Bucket& b, absl::Time now) const;

  const Clock* clock_;
  const int per_minute_;
  const size_t max_addresses_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  Bucket overflow_ ABSL_GUARDED_BY(mu_);
  bool overflow_init_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_prune_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace assay
