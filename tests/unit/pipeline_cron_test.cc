#include <catch2/catch.hpp>
#include <string>

#include "absl/time/time.h"
#include "common/pipeline/cron.h"

namespace assay {
namespace {

absl::Time At(const std::string& text) {
  absl::Time t;
  std::string err;
  REQUIRE(absl::ParseTime("%Y-%m-%d %H:%M:%S", text, absl::UTCTimeZone(), &t, &err));
  return t;
}

std::string Fmt(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M %a", t, absl::UTCTimeZone());
}

std::string Next(const std::string& cron, const std::string& after) {
  absl::StatusOr<CronSchedule> s = CronSchedule::Parse(cron);
  REQUIRE(s.ok());
  return Fmt(s->Next(At(after)));
}

std::string Err(const std::string& cron) {
  absl::StatusOr<CronSchedule> s = CronSchedule::Parse(cron);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(s.status().message());
}

TEST_CASE("cron: next is strictly after") {
  CHECK(Next("* * * * *", "2024-03-10 12:00:00") == "2024-03-10 12:01 Sun");
  CHECK(Next("* * * * *", "2024-03-10 12:00:59") == "2024-03-10 12:01 Sun");
  CHECK(Next("30 12 * * *", "2024-03-10 12:30:00") == "2024-03-11 12:30 Mon");
  CHECK(Next("30 12 * * *", "2024-03-10 12:29:59") == "2024-03-10 12:30 Sun");
}

TEST_CASE("cron: steps, lists and ranges") {
  CHECK(Next("*/15 * * * *", "2024-03-10 12:00:00") == "2024-03-10 12:15 Sun");
  CHECK(Next("*/15 * * * *", "2024-03-10 12:45:00") == "2024-03-10 13:00 Sun");
  CHECK(Next("1-10/2 * * * *", "2024-03-10 12:03:00") == "2024-03-10 12:05 Sun");
  CHECK(Next("1-10/2 * * * *", "2024-03-10 12:09:00") == "2024-03-10 13:01 Sun");
  CHECK(Next("5/20 * * * *", "2024-03-10 12:26:00") == "2024-03-10 12:45 Sun");
  CHECK(Next("0 8,17 * * *", "2024-03-10 09:00:00") == "2024-03-10 17:00 Sun");
  CHECK(Next("0 9-17 * * MON-FRI", "2024-03-09 12:00:00") == "2024-03-11 09:00 Mon");
}

TEST_CASE("cron: monthly, month ends and Feb 29") {
  CHECK(Next("0 3 1 * *", "2024-01-15 00:00:00") == "2024-02-01 03:00 Thu");
  CHECK(Next("0 3 1 * *", "2024-02-01 03:00:00") == "2024-03-01 03:00 Fri");
  CHECK(Next("0 0 31 * *", "2024-01-31 00:00:00") == "2024-03-31 00:00 Sun");
  CHECK(Next("0 0 31 * *", "2024-04-01 00:00:00") == "2024-05-31 00:00 Fri");
  CHECK(Next("0 0 30 * *", "2024-01-30 00:00:00") == "2024-03-30 00:00 Sat");
  CHECK(Next("0 0 29 2 *", "2024-03-01 00:00:00") == "2028-02-29 00:00 Tue");
  CHECK(Next("0 0 29 FEB *", "2023-01-01 00:00:00") == "2024-02-29 00:00 Thu");
}

TEST_CASE("cron: year rollover") {
  CHECK(Next("0 0 1 1 *", "2024-12-31 23:59:00") == "2025-01-01 00:00 Wed");
  CHECK(Next("59 23 31 12 *", "2024-12-31 23:59:00") == "2025-12-31 23:59 Wed");
  CHECK(Next("*/15 * * * *", "2024-12-31 23:50:00") == "2025-01-01 00:00 Wed");
}

TEST_CASE("cron: Sunday as 0 and 7, names, Vixie day semantics") {
  CHECK(Next("0 0 * * 0", "2024-03-05 00:00:00") == "2024-03-10 00:00 Sun");
  CHECK(Next("0 0 * * 7", "2024-03-05 00:00:00") == "2024-03-10 00:00 Sun");
  CHECK(Next("0 0 * * sun", "2024-03-05 00:00:00") == "2024-03-10 00:00 Sun");
  CHECK(Next("0 0 * * 5-7", "2024-03-05 00:00:00") == "2024-03-08 00:00 Fri");
  CHECK(Next("0 0 * jun *", "2024-03-05 00:00:00") == "2024-06-01 00:00 Sat");
  // Both restricted: the 13th OR any Friday.
  CHECK(Next("0 0 13 * FRI", "2024-03-09 00:00:00") == "2024-03-13 00:00 Wed");
  CHECK(Next("0 0 13 * FRI", "2024-03-13 00:00:00") == "2024-03-15 00:00 Fri");
  // Day-of-month star: only the weekday restricts.
  CHECK(Next("0 0 * * MON", "2024-03-09 00:00:00") == "2024-03-11 00:00 Mon");
  // Day-of-week star: only the day restricts.
  CHECK(Next("0 0 13 * *", "2024-03-09 00:00:00") == "2024-03-13 00:00 Wed");
}

TEST_CASE("cron: text is normalised") {
  absl::StatusOr<CronSchedule> s = CronSchedule::Parse("  0   3 1 *  *\t");
  REQUIRE(s.ok());
  CHECK(s->text() == "0 3 1 * *");
}

TEST_CASE("cron: exact error messages") {
  CHECK(Err("* * * *") ==
        "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 4");
  CHECK(Err("") == "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 0");
  CHECK(Err("0 24 * * *") == "cron field 2 (hour): 24 is out of range 0-23");
  CHECK(Err("60 * * * *") == "cron field 1 (minute): 60 is out of range 0-59");
  CHECK(Err("0 0 0 * *") == "cron field 3 (day-of-month): 0 is out of range 1-31");
  CHECK(Err("0 0 * 13 *") == "cron field 4 (month): 13 is out of range 1-12");
  CHECK(Err("0 0 * * 8") == "cron field 5 (day-of-week): 8 is out of range 0-7");
  CHECK(Err("x * * * *") == "cron field 1 (minute): 'x' is not a number");
  CHECK(Err("0 0 * FOO *") == "cron field 4 (month): 'FOO' is not a known name");
  CHECK(Err("0 0 * * JAN") == "cron field 5 (day-of-week): 'JAN' is not a known name");
  CHECK(Err("1,,2 * * * *") == "cron field 1 (minute): empty list item");
  CHECK(Err("*/0 * * * *") == "cron field 1 (minute): step must be at least 1, got 0");
  CHECK(Err("*/ * * * *") == "cron field 1 (minute): missing step after '/'");
  CHECK(Err("*/x * * * *") == "cron field 1 (minute): step 'x' is not a number");
  CHECK(Err("0 5-3 * * *") == "cron field 2 (hour): range 5-3 is reversed");
  CHECK(Err("0 - * * *") == "cron field 2 (hour): missing number");
  CHECK(Err("0 0 30 2 *") ==
        "cron field 3 (day-of-month): day 30 never occurs in the months of field 4");
  CHECK(Err("0 0 31 4,6 *") ==
        "cron field 3 (day-of-month): day 31 never occurs in the months of field 4");
}

}  // namespace
}  // namespace assay
