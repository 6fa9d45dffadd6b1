// AuthLimiter: failed authentications per client address, on a simulated clock.

#include "server/api/auth_limiter.h"

#include <catch2/catch.hpp>
#include <string>

#include "common/base/clock.h"

namespace assay {
namespace {

TEST_CASE("auth limiter: N failures a minute, then blocked until a token refills", "[security]") {
  SimulatedClock clock(absl::FromUnixSeconds(1'000'000));
  AuthLimiter limiter(&clock, 3);
  const std::string a = "203.0.113.7:4000";
  for (int i = 0; i < 3; ++i) {
    CHECK(limiter.Blocked(a) == absl::ZeroDuration());
    limiter.Failed(a);
  }
  CHECK(limiter.Blocked(a) == absl::Seconds(20));  // one token every 20 s
  // Another port of the same address is the same client; another address is not.
  CHECK(limiter.Blocked("203.0.113.7:5000") == absl::Seconds(20));
  CHECK(limiter.Blocked("203.0.113.8:4000") == absl::ZeroDuration());
  clock.Advance(absl::Seconds(20));
  CHECK(limiter.Blocked(a) == absl::ZeroDuration());
  limiter.Failed(a);
  CHECK(limiter.Blocked(a) == absl::Seconds(20));
  // IPv6 addresses lose their port and brackets.
  CHECK(AuthLimiter::AddressOf("[::1]:8080") == "::1");
  CHECK(AuthLimiter::AddressOf("10.0.0.1:1") == "10.0.0.1");
  CHECK(AuthLimiter::AddressOf("") == "");
}

TEST_CASE("auth limiter: a flood of addresses cannot grow the table past its bound", "[security]") {
  SimulatedClock clock(absl::FromUnixSeconds(1'000'000));
  AuthLimiter limiter(&clock, 2, /*max_addresses=*/100);
  for (int i = 0; i < 100000; ++i) {
    const std::string remote = "10." + std::to_string(i / 65536) + "." +
                               std::to_string(i / 256 % 256) + "." + std::to_string(i % 256) + ":1";
    limiter.Failed(remote);
    limiter.Failed(remote);
  }
  CHECK(limiter.size() == 100);
  // Beyond the bound, new addresses share one bucket: drained by the flood, so blocked.
  CHECK(limiter.Blocked("192.0.2.1:1") > absl::ZeroDuration());
  // Once their buckets are full again the table makes room for new addresses.
  clock.Advance(absl::Minutes(2));
  CHECK(limiter.Blocked("192.0.2.1:1") == absl::ZeroDuration());
  limiter.Failed("192.0.2.1:1");
  CHECK(limiter.size() == 1);
}

}  // namespace
}  // namespace assay
