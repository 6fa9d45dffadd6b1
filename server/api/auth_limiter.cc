#include "server/api/auth_limiter.h"

#include <algorithm>
#include <cmath>

namespace assay {

std::string AuthLimiter::AddressOf(std::string_view remote) {
  if (!remote.empty() && remote.front() == '[') {
    const size_t close = remote.find(']');
    if (close != std::string_view::npos) return std::string(remote.substr(1, close - 1));
  }
  const size_t colon = remote.rfind(':');
  if (colon != std::string_view::npos && remote.find(':') == colon) {
    return std::string(remote.substr(0, colon));
  }
  return std::string(remote);
}

void AuthLimiter::Refill(Bucket& b, absl::Time now) const {
  if (now > b.updated) {
    const double minutes = absl::ToDoubleMinutes(now - b.updated);
    b.tokens = std::min<double>(per_minute_, b.tokens + minutes * per_minute_);
    b.updated = now;
  }
}

AuthLimiter::Bucket& AuthLimiter::BucketFor(const std::string& address, absl::Time now) {
  auto it = buckets_.find(address);
  if (it != buckets_.end()) {
    Refill(it->second, now);
    return it->second;
  }
  if (buckets_.size() >= max_addresses_ && now - last_prune_ >= absl::Seconds(1)) {
    // Full buckets carry no information: forget them. At most once a second, so that a
    // flood of new addresses does not scan the table on every request.
    last_prune_ = now;
    for (auto i = buckets_.begin(); i != buckets_.end();) {
      Refill(i->second, now);
      if (i->second.tokens >= per_minute_) {
        buckets_.erase(i++);
      } else {
        ++i;
      }
    }
  }
  if (buckets_.size() >= max_addresses_) {
    if (!overflow_init_) {
      overflow_ = Bucket{static_cast<double>(per_minute_), now};
      overflow_init_ = true;
    }
    Refill(overflow_, now);
    return overflow_;
  }
  return buckets_.emplace(address, Bucket{static_cast<double>(per_minute_), now}).first->second;
}

absl::Duration AuthLimiter::Blocked(std::string_view remote) {
  const std::string address = AddressOf(remote);
  const absl::Time now = clock_->Now();
  absl::MutexLock l(&mu_);
  auto it = buckets_.find(address);
  Bucket* b = nullptr;
  if (it != buckets_.end()) {
    b = &it->second;
  } else if (overflow_init_ && buckets_.size() >= max_addresses_) {
    b = &overflow_;
  }
  if (b == nullptr) return absl::ZeroDuration();
  Refill(*b, now);
  if (b->tokens >= 1) return absl::ZeroDuration();
  return absl::Minutes((1 - b->tokens) / per_minute_);
}

void AuthLimiter::Failed(std::string_view remote) {
  const std::string address = AddressOf(remote);
  const absl::Time now = clock_->Now();
  absl::MutexLock l(&mu_);
  Bucket& b = BucketFor(address, now);
  b.tokens = std::max(0.0, b.tokens - 1);
}

size_t AuthLimiter::size() const {
  absl::MutexLock l(&mu_);
  return buckets_.size();
}

}  // namespace assay
