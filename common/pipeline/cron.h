#pragma once
// Five-field cron schedules for `on.schedule[].cron`, evaluated by the server in UTC.
// Pure; no I/O, no clock (the caller passes the time).
//
//   minute hour day-of-month month day-of-week
//   0-59   0-23 1-31         1-12  0-7 (0 and 7 are Sunday)
//
// Each field is '*' or a comma-separated list of items; an item is N, A-B, *, and any
// of these may carry a step "/S" (N/S means N-max/S). Months accept JAN-DEC and days
// SUN-SAT, case-insensitive, wherever a number is allowed. Vixie semantics: when both
// day-of-month and day-of-week are restricted (neither starts with '*'), a day matches
// when EITHER matches; otherwise both must.

#include <bitset>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace assay {

class CronSchedule {
 public:
  // kInvalidArgument with an exact message on error, e.g.
  //   "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 4"
  //   "cron field 2 (hour): 24 is out of range 0-23"
  //   "cron field 1 (minute): 'x' is not a number"
  //   "cron field 1 (minute): empty list item"
  //   "cron field 1 (minute): step must be at least 1, got 0"
  //   "cron field 2 (hour): range 5-3 is reversed"
  //   "cron field 3 (day-of-month): day 30 never occurs in the months of field 4"
  static absl::StatusOr<CronSchedule> Parse(std::string_view five_fields);

  // The first whole minute strictly after `after` (UTC) that the schedule matches.
  // Always found for a schedule from Parse (its days are checked to exist).
  absl::Time Next(absl::Time after) const;

  // The text given to Parse, with whitespace runs collapsed to one space.
  const std::string& text() const { return text_; }

 private:
  CronSchedule() = default;
  bool DayMatches(int day, int weekday) const;

  std::string text_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;     // 1-31.
  std::bitset<13> months_;   // 1-12.
  std::bitset<7> weekdays_;  // 0-6, Sunday = 0.
  bool days_star_ = false;
  bool weekdays_star_ = false;
};

}  // namespace assay
