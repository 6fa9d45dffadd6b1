#include <catch2/catch.hpp>
#include <string>

#include "common/pipeline/duration.h"

namespace assay {
namespace {

std::string ErrorOf(std::string_view text) {
  absl::StatusOr<int64_t> result = ParseDurationSeconds(text);
  REQUIRE_FALSE(result.ok());
  REQUIRE(result.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(result.status().message());
}

TEST_CASE("ParseDurationSeconds accepts seconds, minutes, hours and combinations") {
  CHECK(ParseDurationSeconds("90").value() == 90);
  CHECK(ParseDurationSeconds("90s").value() == 90);
  CHECK(ParseDurationSeconds("10m").value() == 600);
  CHECK(ParseDurationSeconds("1h").value() == 3600);
  CHECK(ParseDurationSeconds("1h30m").value() == 5400);
  CHECK(ParseDurationSeconds("2h5m10s").value() == 7510);
  CHECK(ParseDurationSeconds("1h10s").value() == 3610);
  CHECK(ParseDurationSeconds("0h1s").value() == 1);
  CHECK(ParseDurationSeconds("007m").value() == 420);
  CHECK(ParseDurationSeconds("9223372036854775807").value() == INT64_MAX);
  CHECK(ParseDurationSeconds("9223372036854775807s").value() == INT64_MAX);
}

TEST_CASE("ParseDurationSeconds rejects malformed text with one message") {
  const std::string expected_tail =
      "\": expected a number followed by s, m or h (e.g. 30s, 10m, 1h30m)";
  for (const char* text : {"", "10x", "-5m", "+5m", "m", "1.5h", " 10m", "10m ", "10 m", "10M",
                           "1h30", "h1", "1hm", "10ms", "1d"}) {
    INFO(text);
    CHECK(ErrorOf(text) == std::string("invalid duration \"") + text + expected_tail);
  }
}

TEST_CASE("ParseDurationSeconds rejects units out of order or repeated") {
  CHECK(ErrorOf("30m1h") ==
        "invalid duration \"30m1h\": units must appear in the order h, m, s, each at most once");
  CHECK(ErrorOf("1h1h") ==
        "invalid duration \"1h1h\": units must appear in the order h, m, s, each at most once");
  CHECK(ErrorOf("5s5s") ==
        "invalid duration \"5s5s\": units must appear in the order h, m, s, each at most once");
}

TEST_CASE("ParseDurationSeconds rejects zero") {
  CHECK(ErrorOf("0") == "invalid duration \"0\": must be greater than zero");
  CHECK(ErrorOf("0s") == "invalid duration \"0s\": must be greater than zero");
  CHECK(ErrorOf("0h0m0s") == "invalid duration \"0h0m0s\": must be greater than zero");
}

TEST_CASE("ParseDurationSeconds rejects values beyond int64") {
  CHECK(ErrorOf("9223372036854775808") == "invalid duration \"9223372036854775808\": too large");
  CHECK(ErrorOf("99999999999999999999s") ==
        "invalid duration \"99999999999999999999s\": too large");
  CHECK(ErrorOf("2562047788015216h") == "invalid duration \"2562047788015216h\": too large");
  CHECK(ErrorOf("2562047788015215h59m59s") ==
        "invalid duration \"2562047788015215h59m59s\": too large");
  // The largest sum that fits: 2562047788015215h 30m 7s == INT64_MAX.
  CHECK(ParseDurationSeconds("2562047788015215h30m7s").value() == INT64_MAX);
  // A syntax error is reported even after an overflowing group.
  CHECK(ErrorOf("99999999999999999999sx") ==
        "invalid duration \"99999999999999999999sx\": expected a number followed by s, m or h "
        "(e.g. 30s, 10m, 1h30m)");
}

}  // namespace
}  // namespace assay
